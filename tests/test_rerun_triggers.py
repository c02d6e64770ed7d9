"""Updating the workflow does not recompute finished results because a script's text changed:
the workflow profile drops Snakemake's code trigger (the algorithm versions in the rules'
params are the trigger for a change in what a stage computes, nobarriers.settings.versions;
that a bumped version reruns its stage is tested on the tiny run, tests/test_workflow.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
WORKFLOW = ("Snakefile", "rules", "workflow", "profiles", "config", "report", "envs")


def snakemake(workflow: Path, *args: str) -> subprocess.CompletedProcess:
    command = [SNAKEMAKE, *args, "--cores", "1", "--config", "results_dir=results", "data_dir=data"]
    proc = subprocess.run(command, cwd=workflow, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.mark.slow
def test_an_edited_script_reruns_nothing(tmp_path):
    workflow = tmp_path / "workflow-copy"
    workflow.mkdir()
    for name in WORKFLOW:
        source = ROOT / name
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        copy(source, workflow / name)
    target = "results/data/digits.json"
    snakemake(workflow, target)  # the digits dataset record: seconds
    script = workflow / "workflow" / "scripts" / "prepare_dataset.py"
    script.write_text(script.read_text() + "# a comment: what the job computes is unchanged\n")

    assert "Nothing to be done" in snakemake(workflow, "-n", target).stdout
    # the control: with Snakemake's default triggers the same edit would rerun the job
    forced = snakemake(workflow, "-n", target, "--rerun-triggers", "code", "mtime")
    assert "prepare_dataset" in forced.stdout and "Code has changed" in forced.stdout
