"""The Snakemake workflow end to end on the tiny config, plus its static checks.

The end-to-end test runs the real chain (digits download check -> minima -> overlap -> AutoNEB
loop -> MST -> dense evaluation -> Table B.1 and figures) in a temporary results folder, first
with a budget of two paths, then raised to three: the raise must add one path and leave the
finished minima and paths alone.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


def snakemake(*args, check=True, timeout=900):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [SNAKEMAKE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-6000:]}"
        )
    return proc


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_image(path: Path):
    assert path.is_file(), path
    if path.suffix == ".png":
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, path
    else:
        assert path.read_bytes()[:5] == b"%PDF-", path


def test_invalid_config_fails_before_any_job(tmp_path):
    proc = snakemake(
        "-n",
        "--cores",
        "1",
        "--configfile",
        str(TINY),
        "--config",
        "minima_per_arch=0",
        check=False,
    )
    assert proc.returncode != 0
    assert "minima_per_arch" in proc.stdout + proc.stderr
    bad = yaml.safe_load(TINY.read_text())
    bad["rows"][0]["arch"] = "resnet-banana"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = snakemake("-n", "--cores", "1", "--configfile", str(path), check=False)
    assert proc.returncode != 0
    assert "rows[0].arch" in proc.stdout + proc.stderr


def test_paper_config_plans_the_full_run():
    proc = snakemake("-n", "--cores", "1", "--configfile", "config/paper.yaml", "--quiet", "all")
    out = proc.stdout + proc.stderr
    # 28 rows x 10 minima, before the first checkpoint round is known.
    assert "train_minimum" in out and "280" in out


def test_lint_is_clean():
    proc = snakemake("--lint", "--cores", "1", check=False)
    out = proc.stdout + proc.stderr
    assert "Congratulations" in out or proc.returncode == 0 and "Lints for" not in out, out


@pytest.mark.slow
def test_tiny_workflow_end_to_end(tmp_path):
    results = tmp_path / "results"
    overrides = [f"results_dir={results}", f"data_dir={tmp_path / 'data'}"]

    def run_tiny(max_paths, *extra):
        budget = f"exploration={{max_paths: {max_paths}, pairs_per_round: 2}}"
        snakemake(*extra, "--cores", "2", "--configfile", str(TINY), "--config", *overrides, budget)

    run_tiny(2)
    row_dir = results / "digits" / "mlp-16"
    minima = sorted((row_dir / "minima").glob("*.safetensors"))
    paths = sorted((row_dir / "paths").glob("*.h5"))
    assert len(minima) == 3 and len(paths) == 2
    stamps = {p: p.stat().st_mtime_ns for p in minima + paths}

    # Raising the budget extends the loop: one more path, nothing finished is recomputed.
    run_tiny(3)
    paths_after = sorted((row_dir / "paths").glob("*.h5"))
    assert len(paths_after) == 3
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())
    assert not list((row_dir / "paths").glob("*.state.pt")), "finished jobs leave no state"

    table = read_csv(results / "table_b1.csv")
    assert len(table) == 1
    row = table[0]
    for column in ("train_min", "train_sadd", "factor", "test_min", "test_sadd",
                   "test_error_min", "test_error_sadd", "delta"):  # fmt: skip
        assert math.isfinite(float(row[column])), column
    assert float(row["train_sadd"]) >= float(row["train_min"])
    assert float(row["factor"]) == pytest.approx(
        float(row["train_sadd"]) / float(row["train_min"]), rel=1e-9
    )
    assert int(row["n_paths"]) == 3 and int(row["n_edges"]) == 2
    assert 0 < float(row["test_error_min"]) < 0.2  # digits MLPs reach > 80% accuracy

    pairs = read_csv(results / "pairs.csv")
    assert len(pairs) == 3
    for pair in pairs:
        if pair["on_mst"] == "true":
            # The dense saddle is the maximum along the path, endpoints included.
            endpoints = max(float(pair["min_i_train_loss"]), float(pair["min_j_train_loss"]))
            assert float(pair["dense_train_loss"]) >= endpoints - 1e-5
            assert float(pair["linear_train_loss"]) >= endpoints - 1e-5

    for ext in ("csv", "md", "tex"):
        assert (results / f"table_b1.{ext}").stat().st_size > 0
    figures = list((results / "figures").rglob("*.png")) + list(
        (results / "figures").rglob("*.pdf")
    )
    assert len(figures) == 2 * 7  # Figure 5 + six figures of the row, PNG and PDF
    for figure in figures + [row_dir / "overlap" / "overlap.png"]:
        assert_image(figure)
    logs = list((results / "logs").rglob("*.log"))
    assert any("ETA" in log.read_text() for log in logs if "train" in str(log))

    # The HTML report bundles the table and the figures with their captions.
    report = tmp_path / "report.html"
    run_tiny(3, "--report", str(report))
    text = report.read_text(errors="replace")
    assert "Table B.1" in text and "Figure 5" in text
