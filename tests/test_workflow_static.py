"""Static checks of the workflow files: conda environment in sync, scripts thin, logs everywhere."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_conda_environment_matches_package_dependencies():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = sorted(pyproject["project"]["dependencies"])
    env = yaml.safe_load((ROOT / "envs" / "nobarriers.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(pip) == deps
    assert (ROOT / "envs" / "nobarriers.post-deploy.sh").read_text().count("pip install") == 1


def test_every_rule_has_a_log_and_uses_a_script():
    for smk in (ROOT / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = re.split(r"\n(?=(?:rule|checkpoint) \w+:)", text)
        for block in rules:
            if not re.match(r"(?:rule|checkpoint) \w+:", block):
                continue
            name = block.split(":", 1)[0]
            assert "    log:" in block, f"{smk.name}: {name} has no log"
            assert "    script:" in block, f"{smk.name}: {name} does not use script:"
            assert "    run:" not in block, f"{smk.name}: {name} uses run:"


def test_scripts_are_thin():
    for script in (ROOT / "workflow" / "scripts").glob("*.py"):
        lines = [ln for ln in script.read_text().splitlines() if ln.strip()]
        assert len(lines) <= 20, f"{script.name} has {len(lines)} lines: move logic to the package"
        assert "from nobarriers" in script.read_text()
        assert "sys.path" not in script.read_text()


def test_code_is_formatted_and_lint_free():
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    for cmd in (
        [str(bin_dir / "ruff"), "check", "src", "tests", "workflow", "benchmarks", "examples"],
        [
            str(bin_dir / "ruff"),
            "format",
            "--check",
            "src",
            "tests",
            "workflow",
            "benchmarks",
            "examples",
        ],
        [str(bin_dir / "snakefmt"), "--check", "Snakefile", "rules"],
    ):
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd[1:])}:\n{proc.stdout}{proc.stderr}"


def test_the_table_caption_states_the_units_of_the_file_it_captions():
    """The HTML report shows table_b1.csv, whose errors are fractions: its caption must say so
    (it said "percent", true only of the Markdown and LaTeX tables)."""
    rules = (ROOT / "rules" / "report.smk").read_text()
    captioned = re.search(r'csv=report\(\s*f"\{RESULTS\}/(\S+?)",\s*caption="\.\./(\S+?)"', rules)
    assert captioned and captioned.groups() == ("table_b1.csv", "report/table_b1.rst")
    caption = (ROOT / captioned.group(2)).read_text()
    assert "errors are fractions" in caption and "percentage points" in caption


def test_only_the_heavy_rules_leave_the_main_process_and_they_request_the_gpu():
    """On SLURM every rule but the heavy ones (nobarriers.settings.config.HEAVY_RULES) runs
    inside the main Snakemake (localrules: no queue wait for bookkeeping), and exactly the heavy
    ones carry the workflow's GPU request and partition (device_resources) and take their time
    and memory from the config (job_runtime, job_memory, under their own name)."""
    from nobarriers.settings.config import HEAVY_RULES, RESOURCES_OF_RULE

    blocks, local = {}, set()
    for smk in (ROOT / "rules").glob("*.smk"):
        text = smk.read_text()
        for names in re.findall(r"^localrules:\n((?:    \w+,?\n)+)", text, re.M):
            local |= set(re.findall(r"\w+", names))
        for block in re.split(r"\n(?=(?:rule|checkpoint) \w+:)", text):
            match = re.match(r"(?:rule|checkpoint) (\w+):", block)
            if match:
                blocks[match.group(1)] = block
    assert local <= set(blocks), local - set(blocks)
    assert set(blocks) - local == set(HEAVY_RULES) == set(RESOURCES_OF_RULE)
    for name, block in blocks.items():
        heavy = name in HEAVY_RULES
        assert ("**device_resources()" in block) == heavy, name
        if heavy:
            assert f'runtime=job_runtime("{name}")' in block, name
            assert f'mem_mb=job_memory("{name}")' in block, name
