"""Every shell command shown in README.md and docs/*.md works as written.

Commands come from fenced ``bash`` blocks (continuation lines joined, comments dropped, ``&&``
chains split) and from inline code spans that start with ``snakemake``, ``make`` or
``nobarriers``. Each is checked the cheapest way that still catches a wrong command:

- ``snakemake ...``: run as written plus ``-n`` (a dry run plans the whole workflow: a target
  swallowed by ``--configfile``, an unknown option, a wrong profile key or an unknown row fails);
  ``--unlock`` runs for real, in a scratch working directory; ``--report`` needs a finished run,
  which the end-to-end test makes and then runs it on (here: the rest of the command dry-runs).
  Through tests/workflow_runs.py: the dry runs are forked from one process that imported
  Snakemake once.
- ``make ...``: ``make -n`` (the targets exist and their recipes expand).
- ``nobarriers ...``: parsed by the console script's own parser; a bare command name in prose
  (``nobarriers import``, ``nobarriers connect/inspect``) must name commands that exist.
- ``.venv/bin/python <script>``: the script's ``--help`` runs and lists every option used.
- SLURM commands: where SLURM is installed, the tool runs against a configuration without a
  cluster, so it parses its options and then fails to connect: an unknown option is caught;
  elsewhere only the shell syntax is checked, as for the setup commands (``git``, ``cd``, ...).
  Placeholders such as ``<SLURM run ID>`` become one word.

A program with no checker fails the test: a new kind of command needs a way to be checked.
Every documented command is a test of its own; commands that run the same check (the same
command in two documents, or one that differs only by the ``-n`` the check adds) share one run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from workflow_runs import BIN, ROOT, snakemake

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks/README.md"]
SLURM_TOOLS = {"squeue", "sacct", "scontrol", "sbatch", "sinfo", "scancel", "sacctmgr"}
#: shell setup steps: their syntax is checked, running them would change the user's machine
SETUP = {"git", "cd", "source", ".", "mkdir", "ln", "tail", "cat", "ls", "export", "$EDITOR"}
PROGRAMS = ("snakemake", "make", "nobarriers")


def _logical_lines(block: str) -> list[str]:
    lines, current = [], ""
    for raw in block.splitlines():
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip():
            lines.append(current)
        current = ""
    return lines


def shell_commands(text: str) -> list[str]:
    """The commands a Markdown text shows, as the user would type them."""
    commands = []
    fence = r"^ *```(?:bash|sh|shell|console)\n(.*?)^ *```"
    for block in re.findall(fence, text, flags=re.S | re.M):
        for line in _logical_lines(block):
            words = shlex.split(line, comments=True)
            if not words:
                continue
            # split `a && b` (shlex keeps && as its own word when spaced)
            command: list[str] = []
            for word in words + ["&&"]:
                if word == "&&":
                    if command:
                        commands.append(shlex.join(command))
                    command = []
                else:
                    command.append(word)
    for span in re.findall(r"`([^`\n]+)`", text):
        if span.split(" ", 1)[0] in PROGRAMS and " " in span:
            commands.append(span)
    return commands


#: the README section whose commands need the example's data first: the end-to-end test in
#: tests/test_open_world.py runs its block as written (own_network_commands), in order
OWN_NETWORK = "## Your own network and data"


def own_network_commands() -> list[str]:
    """The commands of the README's "Your own network and data" block, in order."""
    section = (ROOT / "README.md").read_text().split(OWN_NETWORK, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return [c for c in shell_commands(f"```bash\n{block}```")]


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for command in shell_commands(doc.read_text()):
            found.append((doc.relative_to(ROOT).as_posix(), command))
    run_elsewhere = {("README.md", c) for c in own_network_commands()}
    return sorted(set(found) - run_elsewhere)


def _run(args: list[str], cwd=ROOT, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _long_options(words: list[str]) -> list[str]:
    return [w.split("=", 1)[0] for w in words if w.startswith("--") and w != "--"]


def snakemake_check(words: list[str]) -> list[str]:
    """The arguments the check of a documented ``snakemake`` command runs: the command plus
    ``-n`` (once, before a ``--`` and its targets); ``--unlock`` as written; ``--report``
    without the report (a test runs it on a finished run)."""
    if "--report" in words:
        # a report needs a finished run: the end-to-end test runs this command after its run
        source = (ROOT / "tests" / "test_workflow.py").read_text()
        assert '"--report", str(report)' in source, "no test runs snakemake --report"
        words = [w for w in words if w != "--report" and not w.endswith(".html")]
    if "--unlock" in words:
        return words[1:]
    return ["-n", *[w for w in words[1:] if w not in ("-n", "--dry-run")]]


def check_snakemake(words: list[str], tmp_path: Path) -> None:
    args = snakemake_check(words)
    if "--unlock" in args:
        # not dry-runnable: run for real, away from the checkout's working directory
        args = [*args, "-d", str(tmp_path)]
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = snakemake(*args, env=env, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def check_make(words: list[str], tmp_path: Path) -> None:
    proc = _run(["make", "-n", *words[1:]])
    assert proc.returncode == 0, proc.stderr[-2000:]


def check_nobarriers(words: list[str], tmp_path: Path) -> None:
    from nobarriers.cli import COMMANDS, build_parser

    if len(words) == 2 and all(name in COMMANDS for name in words[1].split("/")):
        return  # prose naming a command (`nobarriers import`, `nobarriers connect/inspect`)
    try:
        build_parser().parse_args(words[1:])
    except SystemExit as exc:  # argparse's way of refusing (or of answering --version)
        if exc.code == 0:
            return
        raise AssertionError(f"the nobarriers parser refused {shlex.join(words)}") from exc


def check_python(words: list[str], tmp_path: Path) -> None:
    script = ROOT / words[1]
    assert script.is_file(), script
    proc = _run([sys.executable, str(script), "--help"], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for option in _long_options(words[2:]):
        assert option in proc.stdout, f"{script.name} has no option {option}"


#: a SLURM configuration without a cluster: the tools parse their options, then fail to connect
#: (at once: without the short timeouts each tool retries for 9-18 s)
SLURM_CONF = (
    "ClusterName=docs\nSlurmctldHost=localhost\nAccountingStorageType=accounting_storage/slurmdbd\n"
    "MessageTimeout=1\nTCPTimeout=1\n"
)


def check_slurm_tool(words: list[str], tmp_path: Path) -> None:
    check_syntax(words, tmp_path)
    if shutil.which(words[0]) is None:
        return  # SLURM is not installed here: the syntax check must do
    conf = tmp_path / "slurm.conf"
    conf.write_text(SLURM_CONF)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    proc = subprocess.run(words, capture_output=True, text=True, timeout=60, env=env)
    said = proc.stdout + proc.stderr
    for refusal in ("unrecognized option", "invalid option", "unknown option"):
        assert refusal not in said, f"{shlex.join(words)}: {said[-500:]}"


def check_syntax(words: list[str], tmp_path: Path) -> None:
    proc = subprocess.run(["bash", "-n"], input=shlex.join(words), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def checker(program: str):
    if program == "snakemake":
        return check_snakemake
    if program == "make":
        return check_make
    if program == "nobarriers":
        return check_nobarriers
    if program in (".venv/bin/python", "python"):
        return check_python
    if program in SLURM_TOOLS:
        return check_slurm_tool
    if program in SETUP:
        return check_syntax
    return None


def test_the_docs_show_the_commands_users_need():
    commands = [c for _, c in documented_commands()]
    programs = {shlex.split(c)[0] for c in commands}
    assert {"snakemake", "make", "nobarriers"} <= programs, programs
    # the one-row command as it works: the target after `--`, never swallowed by --configfile
    assert any("--configfile config/paper.yaml -- results/paper/" in c for c in commands)
    # the own-network block is run as written, in order, by its end-to-end test
    assert own_network_commands()[:2] == ["cd examples/own_network", "python make_data.py"]
    source = (ROOT / "tests" / "test_open_world.py").read_text()
    assert "own_network_commands()" in source


def test_extraction_handles_continuations_chains_and_comments():
    text = (
        "x `snakemake -n --cores 1` y `not a command` `make`\n"
        "```bash\nmake venv && source .venv/bin/activate   # comment\n"
        "snakemake --profile p \\\n    --config a='[b]'\n# only a comment\n```\n"
        "```python\nsnakemake('no')\n```\n"
    )
    assert shell_commands(text) == [
        "make venv",
        "source .venv/bin/activate",
        "snakemake --profile p --config 'a=[b]'",
        "snakemake -n --cores 1",
    ]


def test_a_wrong_command_fails_its_check(tmp_path):
    """The checks can fail: the target swallowed as a config file, an unknown make target."""
    with pytest.raises(AssertionError):
        check_snakemake(
            ["snakemake", "--configfile", "config/paper.yaml",
             "results/paper/cifar10/resnet-20/table_row.json"], tmp_path)  # fmt: skip
    with pytest.raises(AssertionError):
        check_make(["make", "no-such-target"], tmp_path)
    with pytest.raises(AssertionError):
        check_nobarriers(["nobarriers", "connect", "a.safetensors"], tmp_path)  # no --out
    with pytest.raises(AssertionError):
        check_nobarriers(["nobarriers", "conect/inspect"], tmp_path)  # no such command
    assert checker("rm") is None
    if shutil.which("squeue"):
        with pytest.raises(AssertionError):
            check_slurm_tool(["squeue", "--mee"], tmp_path)


#: the outcome of each check run so far (None: passed), by what it runs
_CHECKED: dict[tuple, AssertionError | None] = {}


def check_key(words: list[str]) -> tuple:
    """Two commands with the same key run the same check."""
    if words[0] == "snakemake":
        return ("snakemake", *snakemake_check(words))
    return tuple(words)


def test_commands_that_run_the_same_check_share_it():
    same = [["snakemake", "--profile", "profiles/slurm", "-n", "--configfile", "c.yaml"],
            ["snakemake", "--profile", "profiles/slurm", "--configfile", "c.yaml"]]  # fmt: skip
    assert len({check_key(w) for w in same}) == 1
    assert check_key(["snakemake", "--unlock"]) != check_key(["snakemake"])
    assert check_key(["make", "demo"]) != check_key(["make", "test"])


@pytest.mark.slow
@pytest.mark.parametrize(("doc", "command"), documented_commands())
def test_documented_command_works(doc, command, tmp_path):
    words = shlex.split(re.sub(r"<[^<>]+>", "PLACEHOLDER", command))  # <this repository> etc.
    check = checker(words[0])
    assert check is not None, f"{doc}: no way to check `{command}`; add a checker"
    key = check_key(words)
    if key not in _CHECKED:
        try:
            check(words, tmp_path)
            _CHECKED[key] = None
        except AssertionError as failed:
            _CHECKED[key] = failed
    if _CHECKED[key] is not None:
        raise AssertionError(f"{doc}: `{command}`") from _CHECKED[key]
