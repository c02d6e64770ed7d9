"""The README's library examples run as written and print what the README says."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use the engine on your own energy", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_has_two_examples():
    assert len(readme_examples()) == 2


@pytest.mark.parametrize("index", [0, 1])
def test_readme_example_runs(index, tmp_path):
    code = "import torch; torch.set_num_threads(1)\n" + readme_examples()[index]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    if index == 0:
        saddle = float(re.search(r"saddle (\d+\.\d+)", proc.stdout).group(1))
        assert saddle == pytest.approx(1.2, rel=0.01)  # the analytic saddle of the valley
    else:
        assert "saddle" in proc.stdout and (tmp_path / "path.state.pt").exists()
