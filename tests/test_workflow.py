"""The Snakemake workflow end to end on the tiny config, plus its static checks.

The finished tiny run (``tiny_run`` in conftest.py: the real chain -- digits, minima, overlap,
the AutoNEB loop, MST, dense evaluation, the comparisons, Table B.1 and figures -- first with a
budget of two paths, then raised to three) is read by the tests below; what reruns after a
change is asked with dry runs on it, and the tests that damage or delete files work on a copy.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from workflow_runs import TINY, snakemake


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


def test_a_foreign_results_dir_is_refused_before_any_job(tmp_path):
    """results_dir pointing at a folder of the user's own: refused at start-up, naming the
    files, nothing written there (results_dir_adopt: true would take it)."""
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "table_b1.csv").write_text("my own table\n")
    given = [f"results_dir={thesis}", f"data_dir={tmp_path / 'data'}"]
    proc = snakemake("--cores", "1", "--configfile", str(TINY), "--config", *given, check=False)
    assert proc.returncode != 0
    assert "results_dir_adopt" in proc.stdout + proc.stderr
    assert sorted(p.name for p in thesis.iterdir()) == ["table_b1.csv"]
    assert (thesis / "table_b1.csv").read_text() == "my own table\n"


# ---- the finished tiny run (conftest.py: tiny_run) -------------------------------------------


@pytest.mark.slow
def test_raising_the_budget_extends_the_loop_and_keeps_what_is_finished(tiny_run):
    first = tiny_run.first
    # Algorithm 3 computed 2 paths; the off-MST sample pair (comparisons) got its own
    assert len(first["minima"]) == 3 and first["computed"] == 2 and len(first["paths"]) == 3
    # Raising the budget extends the loop: one more path (the sample's, already there, so
    # reused), nothing finished is recomputed.
    assert len(tiny_run.paths()) == 3 and len(tiny_run.landscape(3)["computed"]) == 3
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in first["stamps"].items())
    assert not list((tiny_run.row_dir / "paths").glob("*.state.pt")), "finished jobs leave no state"


@pytest.mark.slow
def test_the_tiny_run_writes_table_b1_pairs_comparisons_and_figures(tiny_run):
    results, row_dir = tiny_run.results, tiny_run.row_dir
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
    # Figure 5, the trends + 10 of the row (ensembles, alignment, families, repeats too), PNG
    # and PDF
    assert len(figures) == 2 * 12 and (results / "figures" / "trends.png").is_file()
    # the comparisons: the off-MST pair, the second AutoNEB runs, the curves, side by side
    pairs_row = {(int(r["i"]), int(r["j"])): r for r in read_csv(row_dir / "pairs.csv")}
    assert sum(r["in_sample"] == "true" for r in pairs_row.values()) == 1
    assert all(r["repeats"] == "2" for r in pairs_row.values() if r["on_mst"] == "true")
    families = read_csv(row_dir / "families.csv")
    assert {f["family"] for f in families} == {"autoneb", "bezier", "line", "aligned_line"}
    assert len({(f["i"], f["j"]) for f in families}) == 3  # 2 MST edges + the sample pair
    assert row["repeats"] == "2" and row["bezier_sadd"] != "" and row["n_sample"] == "1"
    assert row["polychain_sadd"] == ""  # a family the config leaves out has no column value
    for figure in figures + [row_dir / "overlap" / "overlap.png"]:
        assert_image(figure)
    logs = list((results / "logs").rglob("*.log"))
    assert any("ETA" in log.read_text() for log in logs if "train" in str(log))


@pytest.mark.slow
def test_the_html_report_bundles_the_table_and_the_figures(tiny_run, tmp_path):
    report = tmp_path / "report.html"
    tiny_run.run(3, "--report", str(report))
    text = report.read_text(errors="replace")
    assert "Table B.1" in text and "Figure 5" in text


@pytest.mark.slow
def test_settings_that_cannot_change_results_rerun_nothing(tiny_run, tmp_path):
    """Where the data live, the device, the threads, how GPUs are requested, runtimes and
    memory, partitions, HDF5 locking, speed options: a dry run plans nothing."""
    (tmp_path / "scratch-data").mkdir()
    unchanged = tiny_run.planned(
        f"data_dir={tmp_path / 'scratch-data'}", "device=auto", "gpu_jobs=false",
        "threads={train: 2, autoneb: 2, evaluate: 2}", "hdf5_file_locking=false",
        "resources={max_runtime: 90, retry_growth: 2, autoneb_path: {runtime: 45, mem_mb: 900}}",
        "partitions={cpu: short}", "autoneb={mode: loop, channels_last: true}",
        "recipes={digits: {epochs: 8, channels_last: true, autocast_bf16: false}}",
    )  # fmt: skip
    assert unchanged == {}, unchanged
    assert tiny_run.planned("gpu_request=gres", "gpu_model=a100") == {}


@pytest.mark.slow
def test_a_changed_setting_reruns_exactly_the_jobs_that_depend_on_it(tiny_run):
    dense = tiny_run.planned("evaluation={n_between: 4}")
    assert "train_minimum" not in dense and "autoneb_path" not in dense, dense
    # the two MST edges and the off-MST sample pair
    assert dense["evaluate_path"] == 3 and dense["table_b1"] == 1, dense
    insertion = tiny_run.planned("autoneb={insert_threshold: 0.3}")
    # (the path jobs follow once the rerun selection rounds name their pairs)
    assert insertion["select_pairs"] >= 1 and "train_minimum" not in insertion, insertion
    assert tiny_run.planned("recipes={digits: {epochs: 9}}")["train_minimum"] == 3


@pytest.mark.slow
def test_fewer_minima_are_named_at_start_up_and_never_read(tiny_run):
    """Minimum 2's files are named at start-up and never read; the table's hash (the report
    stage's) changes, so no table of 3 minima passes for one of 2."""
    smaller = [
        "minima_per_arch=2",
        "exploration={max_paths: 1, pairs_per_round: 1}",
        "comparisons={sample_pairs: 0}",
    ]
    fewer = snakemake("-n", "--cores", "1", "--configfile", TINY, "--config", *smaller,
                      workdir=tiny_run.workdir)  # fmt: skip
    said = fewer.stdout + fewer.stderr
    assert "belong to minima this configuration does not have" in said, said[-3000:]
    assert "results/digits/mlp-16/minima/2.safetensors" in said and "train_minimum" not in said
