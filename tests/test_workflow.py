"""The Snakemake workflow end to end on the tiny config, plus its static checks.

The end-to-end test runs the real chain (digits download check -> minima -> overlap -> AutoNEB
loop -> MST -> dense evaluation -> Table B.1 and figures) in a temporary results folder, first
with a budget of two paths, then raised to three: the raise must add one path and leave the
finished minima and paths alone.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


def snakemake(*args, check=True, timeout=900, env=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
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


@pytest.mark.slow
def test_tiny_workflow_end_to_end(tmp_path):
    results = tmp_path / "results"
    overrides = [f"results_dir={results}", f"data_dir={tmp_path / 'data'}"]

    def run_tiny(max_paths, *extra, check=True):
        budget = f"exploration={{max_paths: {max_paths}, pairs_per_round: 2}}"
        return snakemake(*extra, "--cores", "2", "--configfile", str(TINY), "--config",
                         *overrides, budget, check=check)  # fmt: skip

    run_tiny(2)
    row_dir = results / "digits" / "mlp-16"
    minima = sorted((row_dir / "minima").glob("*.safetensors"))
    paths = sorted((row_dir / "paths").glob("*.h5"))

    def landscape_paths(budget):
        record = json.loads((row_dir / "rounds" / f"max{budget}-per2" / "landscape.json")
                            .read_text())  # fmt: skip
        return len(record["computed"])

    # Algorithm 3 computed 2 paths; the off-MST sample pair (comparisons) got its own
    assert len(minima) == 3 and landscape_paths(2) == 2 and len(paths) == 3
    stamps = {p: p.stat().st_mtime_ns for p in minima + paths}

    # Raising the budget extends the loop: one more path (the sample's, already there, so
    # reused), nothing finished is recomputed.
    run_tiny(3)
    paths_after = sorted((row_dir / "paths").glob("*.h5"))
    assert len(paths_after) == 3 and landscape_paths(3) == 3
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
    # Figure 5 + 10 of the row (ensembles, alignment, families, repeats too), PNG and PDF
    assert len(figures) == 2 * 11
    # the comparisons: the off-MST pair, the second AutoNEB runs, the curves, side by side
    pairs_row = {(int(r["i"]), int(r["j"])): r for r in read_csv(row_dir / "pairs.csv")}
    assert sum(r["in_sample"] == "true" for r in pairs_row.values()) == 1
    assert all(r["repeats"] == "2" for r in pairs_row.values() if r["on_mst"] == "true")
    families = read_csv(row_dir / "families.csv")
    assert {f["family"] for f in families} == {"autoneb", "bezier", "polychain", "line",
                                               "aligned_line"}  # fmt: skip
    assert len({(f["i"], f["j"]) for f in families}) == 3  # 2 MST edges + the sample pair
    assert row["repeats"] == "2" and row["bezier_sadd"] != "" and row["n_sample"] == "1"
    for figure in figures + [row_dir / "overlap" / "overlap.png"]:
        assert_image(figure)
    logs = list((results / "logs").rglob("*.log"))
    assert any("ETA" in log.read_text() for log in logs if "train" in str(log))

    # The HTML report bundles the table and the figures with their captions.
    report = tmp_path / "report.html"
    run_tiny(3, "--report", str(report))
    text = report.read_text(errors="replace")
    assert "Table B.1" in text and "Figure 5" in text

    def planned(*config, env=None) -> dict[str, int]:
        """Jobs per rule that a plain dry run of the tiny config (budget 3) would run."""
        budget = "exploration={max_paths: 3, pairs_per_round: 2}"
        out = snakemake("-n", "--cores", "2", "--configfile", str(TINY), "--config", *overrides,
                        budget, *config, env=env).stdout  # fmt: skip
        if "Nothing to be done" in out:
            return {}
        stats = out.split("Job stats:", 1)[1].split("total", 1)[0]
        return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)}

    # Settings that cannot change results rerun nothing: where the data live, the device, the
    # threads, how GPUs are requested, runtimes and memory, partitions, HDF5 locking, speed options.
    (tmp_path / "scratch-data").mkdir()
    unchanged = planned(
        f"data_dir={tmp_path / 'scratch-data'}", "device=auto", "gpu_jobs=false",
        "threads={train: 2, autoneb: 2, evaluate: 2}", "hdf5_file_locking=false",
        "resources={max_runtime: 90, retry_growth: 2, autoneb_path: {runtime: 45, mem_mb: 900}}",
        "partitions={cpu: short}", "autoneb={mode: loop, channels_last: true}",
        "recipes={digits: {epochs: 8, channels_last: true, autocast_bf16: false}}",
    )  # fmt: skip
    assert unchanged == {}, unchanged
    assert planned("gpu_request=gres", "gpu_model=a100") == {}
    # A hyper-parameter reruns exactly the jobs that depend on it.
    dense = planned("evaluation={n_between: 4}")
    assert "train_minimum" not in dense and "autoneb_path" not in dense, dense
    # the two MST edges and the off-MST sample pair
    assert dense["evaluate_path"] == 3 and dense["table_b1"] == 1, dense
    insertion = planned("autoneb={insert_threshold: 0.3}")
    # (the path jobs follow once the rerun selection rounds name their pairs)
    assert insertion["select_pairs"] >= 1 and "train_minimum" not in insertion, insertion
    assert planned("recipes={digits: {epochs: 9}}")["train_minimum"] == 3

    # A bumped algorithm version (nobarriers.settings.versions: a code change that changes what a
    # stage computes) reruns exactly that stage's jobs and what depends on them.
    def bumped(stage):
        folder = tmp_path / f"bump-{stage}"
        folder.mkdir()
        (folder / "sitecustomize.py").write_text(
            f"import nobarriers.settings.versions as v\nv.ALGORITHM_VERSIONS[{stage!r}] += 1\n"
        )
        path = os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
        return planned(env={"PYTHONPATH": path})

    evaluation = bumped("evaluation")
    assert evaluation["evaluate_path"] == 3 and evaluation["table_b1"] == 1, evaluation
    assert evaluation["slice_figure"] == 1 and evaluation["row_figures"] == 1, evaluation
    assert not {"train_minimum", "autoneb_path", "aligned_path", "select_pairs", "landscape",
                "prepare_dataset"} & set(evaluation), evaluation  # fmt: skip
    report_only = bumped("report")
    assert report_only["table_row"] == 1 and "evaluate_path" not in report_only, report_only
    path_stage = bumped("paths")
    assert path_stage["select_pairs"] >= 1 and path_stage["landscape"] == 1, path_stage
    assert not {"train_minimum", "prepare_dataset"} & set(path_stage), path_stage
    data_stage = bumped("data")
    assert data_stage["prepare_dataset"] == 1 and data_stage["train_minimum"] == 3, data_stage

    # Fewer minima than before: minimum 2's files are named at start-up and never read; the
    # table's hash (the report stage's) changes, so no table of 3 minima passes for one of 2.
    smaller = [
        "minima_per_arch=2",
        "exploration={max_paths: 1, pairs_per_round: 1}",
        "comparisons={sample_pairs: 0}",
    ]
    fewer = snakemake("-n", "--cores", "1", "--configfile", str(TINY), "--config", *overrides,
                      *smaller)  # fmt: skip
    said = fewer.stdout + fewer.stderr
    assert "belong to minima this configuration does not have" in said, said[-3000:]
    assert f"{row_dir}/minima/2.safetensors" in said and "train_minimum" not in said

    # A deleted file is an input Snakemake sees: a plain run plans its job and what depends on
    # it, nothing else (the MST edge's evaluation and the overlap table here).
    rounds = row_dir / "rounds" / "max3-per2"
    a, b = sorted(json.loads((rounds / "landscape.json").read_text())["mst"][0][:2])
    evaluated = row_dir / "evaluated" / f"{a}-{b}.h5"
    overlap = row_dir / "overlap" / "overlap.csv"
    for f in (evaluated, overlap):
        f.rename(f.with_suffix(".moved"))
    only = planned()
    assert only["evaluate_path"] == 1 and only["overlap"] == 1 and only["table_b1"] == 1, only
    assert not {"train_minimum", "autoneb_path", "select_pairs", "landscape"} & set(only), only
    for f in (evaluated, overlap):
        f.with_suffix(".moved").rename(f)
    assert planned() == {}

    # A minimum damaged in place (header intact, 224 bytes of its weights overwritten) is refused
    # by the first job that reads its tensors, with the file named in that job's log; nothing
    # downstream is rewritten from it.
    table_bytes = (results / "table_b1.csv").read_bytes()
    damaged = minima[1]
    with open(damaged, "r+b") as f:
        f.seek(8 + int.from_bytes(f.read(8), "little") + 64)
        f.write(bytes(range(224)))
    assert run_tiny(3, check=False).returncode != 0
    refusals = [p.read_text() for p in (results / "logs").rglob("*.log")]
    refusals = [text for text in refusals if f"failed: minimum {damaged}: checksum" in text]
    assert refusals, "the refusal must be in the failed job's log"
    first_error = next(line for line in refusals[0].splitlines() if " ERROR " in line)
    assert "delete it and rerun the workflow" in first_error, first_error
    assert "Traceback" in refusals[0] and "weights_only" not in refusals[0]
    assert (results / "table_b1.csv").read_bytes() == table_bytes

    # Deleted files of every kind come back with a plain rerun, and the table is the same.
    deleted = [damaged, evaluated, paths_after[0], rounds / "1.json", rounds / "landscape.json",
               overlap]  # fmt: skip
    for f in deleted:
        f.unlink(missing_ok=True)  # the failed path jobs' outputs are gone already
    run_tiny(3)
    for f in deleted:
        assert f.is_file(), f
    assert (results / "table_b1.csv").read_bytes() == table_bytes


CIFAR_TINY = ROOT / "tests" / "configs" / "cifar_tiny.yaml"


@pytest.mark.slow
def test_cifar_format_batchnorm_networks_end_to_end(tmp_path):
    """The paper's ground: BatchNorm conv nets (CNN, ResNet with option-A shortcuts, DenseNet) on
    a CIFAR10 archive in CIFAR's own format, through the real torchvision loader and its checksum
    verification, training, overlap, the AutoNEB loop, exact-BN evaluation, figures, Table B.1."""
    import torch
    from cifar_archive import write_cifar_archive

    from nobarriers.datasets import load_dataset
    from nobarriers.formats.minimum import load_minimum
    from nobarriers.formats.pathfile import read_evaluation, read_path
    from nobarriers.models import build_model, parameter_count
    from nobarriers.nn.points import evaluate_model, recompute_bn_statistics

    data_dir = tmp_path / "data"
    archive, checksums, _ = write_cifar_archive(data_dir, "cifar10", per_file=24, classes=4)
    config = yaml.safe_load(CIFAR_TINY.read_text())
    config |= {"results_dir": str(tmp_path / "results"), "data_dir": str(data_dir),
               "dataset_checksums": {"cifar10": checksums}}  # fmt: skip
    path = tmp_path / "cifar.yaml"
    path.write_text(yaml.safe_dump(config))
    snakemake("--cores", "2", "--configfile", str(path), timeout=1500)
    results = tmp_path / "results"
    assert (data_dir / "cifar-10-batches-py" / "data_batch_5").is_file()  # verified, extracted
    data = load_dataset("cifar10", data_dir, checksums=checksums)
    assert data.x_train.shape == (120, 3, 32, 32)

    table = {r["architecture"]: r for r in read_csv(results / "table_b1.csv")}
    assert set(table) == {"cnn-4", "resnet-8", "densenet-7-4"}
    for arch, row in table.items():
        for column, value in row.items():
            if column in ("epoch", "epoch_fraction", "epoch_in_last_phase"):
                continue
            # alignment is on for the ResNet row only: its columns are empty elsewhere
            assert (value != "") == (arch == "resnet-8" or not column.startswith("alignment")), (
                arch, column)  # fmt: skip
        assert math.isfinite(float(row["train_sadd"])) and int(row["n_edges"]) == 1
        minima = [load_minimum(p) for p in sorted((results / "cifar10" / arch / "minima")
                                                   .glob("*.safetensors"))]  # fmt: skip
        # BatchNorm buffers are stored, and they are the exact statistics of the training set
        for m in minima:
            means = [k for k in m.state_dict if k.endswith("running_mean")]
            assert means, arch
            model = m.build()
            stored = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
            loss_stored = evaluate_model(model, data.x_train, data.y_train, 256)["loss"]
            recompute_bn_statistics(model, data.x_train, 256)
            for k, v in stored.items():
                torch.testing.assert_close(model.state_dict()[k], v, atol=1e-4, rtol=1e-4)
            assert loss_stored == pytest.approx(m.metrics["train_loss"], rel=1e-5)
            # default (unrecomputed) statistics would give another loss: what the table uses
            fresh = build_model(arch, 10, (3, 32, 32))
            fresh.load_state_dict({k: v for k, v in m.state_dict.items() if "running" not in k
                                   and "num_batches" not in k}, strict=False)  # fmt: skip
            loss_default = evaluate_model(fresh, data.x_train, data.y_train, 256)["loss"]
            assert abs(loss_default - loss_stored) > 1e-3 * loss_stored, arch
        assert float(row["train_min"]) == pytest.approx(
            sum(m.metrics["train_loss"] for m in minima) / len(minima), rel=1e-9
        )
        # path files of BN nets round-trip with the trainable parameters only as coordinates
        for p in (results / "cifar10" / arch / "paths").glob("*.h5"):
            record = read_path(p)
            assert record.pivots.shape[1] == parameter_count(build_model(arch, 10, (3, 32, 32)))
            assert record.saddle_loss == pytest.approx(record.saddle["train_loss"].max())
        # the dense exact-BN evaluation starts and ends at the minima's own numbers
        for p in (results / "cifar10" / arch / "evaluated").glob("*.h5"):
            ev = read_evaluation(p)
            a, b = ev.endpoints
            first = next(m for m in minima if m.seed == a)
            assert ev.dense["train_loss"][0] == pytest.approx(first.metrics["train_loss"], rel=1e-4)
    # the ResNet's MST edge after weight matching: the same function, a shorter straight line
    (aligned,) = (results / "cifar10" / "resnet-8" / "aligned").glob("*.h5")
    record = read_path(aligned)
    assert record.attrs["alignment"] == "weight_matching"
    assert record.attrs["alignment_max_output_diff"] < 1e-3
    assert record.attrs["alignment_distance_after"] < record.attrs["alignment_distance_before"]
    assert record.endpoints == read_path(results / "cifar10" / "resnet-8" / "paths"
                                         / aligned.name).endpoints  # fmt: skip
    figures = list((results / "figures").rglob("*.png"))
    assert len(figures) == 1 + 3 * 7 + 1  # Figure 5, 6 + ensembles per row, ResNet alignment
    for figure in figures:
        assert_image(figure)


@pytest.mark.slow
def test_a_second_run_on_the_same_results_dir_is_refused(tmp_path):
    """Two working directories (Snakemake's own lock covers one each) and one results_dir: the
    second run stops before any job, naming the first, and the first finishes untouched."""
    results = tmp_path / "results"
    common = ["--cores", "1", "--configfile", str(TINY), "--config", f"results_dir={results}",
              f"data_dir={tmp_path / 'data'}", "recipes={digits: {epochs: 80}}"]  # fmt: skip
    minimum = results / "digits" / "mlp-16" / "minima"
    first = subprocess.Popen([SNAKEMAKE, *common, "--", str(minimum / "0.safetensors")],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)  # fmt: skip
    lock = results / ".nobarriers.lock"
    deadline = time.monotonic() + 60
    while not (lock.is_file() and lock.stat().st_size) and first.poll() is None:
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.2)
    other = tmp_path / "other-checkout"
    other.mkdir()
    second = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "-d", str(other), *common, "--",
         str(minimum / "1.safetensors")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out_first = first.communicate(timeout=300)[0]
    assert first.returncode == 0, out_first[-3000:]
    assert second.returncode != 0
    message = second.stdout + second.stderr
    assert f"results_dir {results} is in use by another run (pid {first.pid}" in message, message
    assert str(ROOT) in message  # the other run's working directory
    assert (minimum / "0.safetensors").is_file() and not (minimum / "1.safetensors").exists()
    # the lock goes with its run: the next one takes it
    snakemake(*common, "--", str(minimum / "1.safetensors"))
