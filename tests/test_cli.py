"""The ``nobarriers`` command line: connect (resumable, the workflow's own path job), inspect,
table; bad input ends with one line and status 2."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from nobarriers.cli import main
from nobarriers.formats.pathfile import read_path
from nobarriers.settings.config import WorkflowConfig, stage_settings
from nobarriers.stages import minima
from nobarriers.stages.compute import JobRuntime

NOBARRIERS = str(Path(sys.executable).parent / "nobarriers")  # the installed console script
SCHEDULE = [{"steps": 30, "lr": 0.1}, {"steps": 30, "lr": 0.05}, {"steps": 30, "lr": 0.01}]
CONFIG = {
    "autoneb": {
        "schedule": SCHEDULE,
        "batch_size": 64,
        "eval_subset": 128,
        "mode": "loop",
        "climbing_cycles": 1,
    },  # fmt: skip
    "mst": {"weight_subset": 256},
    "rows": [{"dataset": "digits", "arch": "mlp-4"}],
}


@pytest.fixture(scope="module")
def two_minima(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cli")
    row = WorkflowConfig({"recipes": {"digits": {"epochs": 2}}, **CONFIG}).row("digits", "mlp-4")
    runtime = JobRuntime(data_dir=str(root / "data"), device="cpu")
    files = []
    for seed in (3, 5):
        path = root / f"{seed}.safetensors"
        minima.train_job(stage_settings(row, "minima"), seed, path, root / f"{seed}.ckpt", runtime)
        files.append(path)
    config = root / "mine.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "data_dir": str(root / "data"), "device": "cpu"}))
    return root, files, config


def test_connect_writes_the_path_the_workflow_would_and_resumes(two_minima, tmp_path, capsys):
    root, (a, b), config = two_minima
    out = tmp_path / "whole" / "3-5.h5"
    args = ["connect", str(a), str(b), "--config", str(config), "--threads", "1"]
    assert main([*args, "--out", str(out)]) == 0  # in this process: one torch import fewer
    whole = capsys.readouterr()
    assert whole.out.strip() == str(out)
    assert "AutoNEB cycle 3/3 done" in whole.err  # progress on stderr
    record = read_path(out, load_pivots=False)
    assert record.endpoints == (3, 5) and len(record.history) == 3
    assert record.weight_subset == 256 and record.config["autoneb"]["batch_size"] == 64

    # Killed after its first cycle (the command as a user runs it), the same command resumes
    # there and writes the same bytes.
    resumed = tmp_path / "resumed" / "3-5.h5"
    args = [*args, "--out", str(resumed)]
    first = subprocess.Popen([NOBARRIERS, *args], stderr=subprocess.PIPE, text=True)
    for line in first.stderr:
        if "AutoNEB cycle 1/3 done" in line:
            first.send_signal(signal.SIGKILL)
            break
    first.wait()
    assert first.returncode == -signal.SIGKILL and not resumed.exists()
    assert resumed.with_name("3-5.h5.state.pt").is_file()
    assert main(args) == 0
    second = capsys.readouterr().err
    assert "resuming" in second and "after cycle 1/3" in second
    assert "AutoNEB cycle 1/3 done" not in second
    assert not resumed.with_name("3-5.h5.state.pt").exists()
    assert _payload(resumed) == _payload(out)


def _payload(path) -> str:
    """The stored content checksum (everything but the provenance)."""
    return read_path(path, load_pivots=False).attrs["content_sha256"]


def test_connect_without_a_config_uses_the_papers_settings(two_minima, tmp_path, monkeypatch):
    """The paper's 16,000 steps are too long for a test: record what connect hands to the
    workflow's path job instead of running it."""
    import nobarriers.stages.paths as paths

    root, (a, b), _ = two_minima
    seen = {}
    monkeypatch.setattr(paths, "autoneb_job", lambda row, *args, **kwargs: seen.update(row))
    argv = ["connect", str(a), str(b), "--out", str(tmp_path / "p.h5"), "--data-dir", "x"]
    assert main(argv) == 0
    steps = [c["steps"] for c in seen["autoneb"]["schedule"]]
    assert sum(steps) == 16000 and len(steps) == 14 and seen["autoneb"]["batch_size"] == 512
    assert seen["autoneb"]["eval_subset"] == 2048 and seen["mst"]["weight_subset"] is None
    assert seen["recipe"]["epochs"] == 2  # the minima's own recipe, so their hash matches


def test_inspect_shows_identity_saddle_and_cycles(two_minima, tmp_path, capsys):
    root, (a, b), config = two_minima
    out = tmp_path / "3-5.h5"
    assert main(["connect", str(a), str(b), "--out", str(out), "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(a), str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{a}: minimum of digits/mlp-4 (checksum verified)" in text
    assert "seed 3" in text and "2 epochs recorded" in text
    assert f"{out}: path of digits/mlp-4 (checksum verified)" in text
    record = read_path(out, load_pivots=False)
    assert f"saddle train loss {record.saddle_loss:.6g} on 256 training samples" in text
    assert text.count("\n      ") == 3  # one line per cycle
    # the last cycle climbs, or says why not (this short path peaks at an endpoint)
    assert text.count("(climbing pivot ") + text.count("(no climbing: ") == 1
    assert main(["inspect", "--json", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["endpoints"] == [3, 5] and len(info["cycles"]) == 3
    assert info["saddle_train_loss"] == pytest.approx(record.saddle_loss)
    assert main(["inspect", "--json", str(a)]) == 0
    minimum = json.loads(capsys.readouterr().out)
    assert minimum["parameters"] == info["dimensions"] == 64 * 4 + 4 + 4 * 10 + 10  # mlp-4


def test_bad_input_is_one_line_and_status_2(two_minima, tmp_path, capsys):
    root, (a, b), _ = two_minima
    damaged = tmp_path / "damaged.safetensors"
    shutil.copy(a, damaged)
    with open(damaged, "r+b") as f:
        f.seek(8 + int.from_bytes(f.read(8), "little") + 16)
        f.write(b"\xff" * 64)
    foreign = tmp_path / "foreign.h5"
    import h5py

    with h5py.File(foreign, "w") as f:
        f["x"] = [1, 2]
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(foreign.read_bytes()[:1000])
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)))
    (tmp_path / "results" / "digits" / "mlp-4").mkdir(parents=True)
    (tmp_path / "results" / "digits" / "mlp-4" / "table_row.json").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "a-folder.h5").mkdir()
    cases = [
        (["inspect", str(damaged)], "checksum mismatch"),
        (["inspect", str(foreign)], "not a nobarriers path/2"),
        (["inspect", str(tmp_path / "missing.h5")], "file not found"),
        (["inspect", str(truncated)], "not a readable HDF5 file (truncated or damaged"),
        (["table", str(tmp_path)], "no table rows"),
        (["table", str(tmp_path / "results")], "not readable JSON"),
        (["connect", str(a), str(b), "--out", str(tmp_path / "x.h5"), "--config",
          str(tmp_path / "none.yaml")], "--config"),
        (["connect", str(a), str(b), "--out", "x.h5", "--config", str(binary)], "cannot be read"),
        # checked before any AutoNEB step: a folder where the path file should go
        (["connect", str(a), str(b), "--out", str(tmp_path / "a-folder.h5")], "is a directory"),
    ]  # fmt: skip
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"nobarriers {argv[0]}: ") and expected in err, err
        assert err.count("\n") == 1 and "Traceback" not in err


def test_table_prints_the_rows_of_a_results_folder(tmp_path, capsys):
    rows = tmp_path / "results" / "digits" / "mlp-4"
    rows.mkdir(parents=True)
    from nobarriers.formats.records import TABLE_B1_COLUMNS, TableRow

    values = {c: 1.0 for c in TABLE_B1_COLUMNS}
    values.update(dataset="digits", architecture="mlp-4", config_hash="abc", epoch=3,
                  epoch_in_last_phase=False, epochs_total=8, n_minima=3, n_edges=2, n_paths=3,
                  n_edges_sadd_below_min=0, n_overlap_flagged=0, train_min=0.08, train_sadd=0.1,
                  factor=1.25)  # fmt: skip
    TableRow(**values).write(rows / "table_row.json")
    assert main(["table", str(tmp_path / "results")]) == 0
    text = capsys.readouterr().out
    assert "| Digits" in text and "MLP-4" in text and "0.1000" in text
    assert main(["table", "--format", "csv", str(tmp_path / "results")]) == 0
    csv_lines = capsys.readouterr().out.splitlines()
    assert csv_lines[0].split(",") == TABLE_B1_COLUMNS and csv_lines[1].startswith("digits,mlp-4")


def test_version_and_help_say_what_each_command_and_argument_is(capsys):
    """``--version`` prints the package version; every subcommand's help has an example and a
    help text for each argument, and none shows raw reST markup."""
    import argparse

    from nobarriers import __version__
    from nobarriers.cli import build_parser

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"nobarriers {__version__}"
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {"connect", "import", "inspect", "plan", "table"}
    for name, sub in commands.choices.items():
        text = sub.format_help()
        assert f"nobarriers {name} " in text.split("example", 1)[1], name  # an example line
        assert "``" not in text and ":func:" not in text, name
        for action in sub._actions:
            assert action.help, f"{name} {action.dest}: no help text"
    assert "``" not in parser.format_help()
