"""One function per workflow job: files in, files out.

The Snakemake scripts in ``workflow/scripts/`` unpack ``snakemake.input/output/params`` and call
exactly one of these. Each function validates what it reads (format markers, config hashes), so a
result of another configuration is refused instead of mixed in.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np

from .errors import ConfigError, FileFormatError
from .runtime import atomic_path, configure_runtime, provenance

log = logging.getLogger("nobarriers")


def _write_json(path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _read_json(path, kind: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise FileFormatError(f"{kind} {path}: not readable JSON ({err})") from None


def _check_hash(path, found: str, expected: str) -> None:
    if expected and found != expected:
        raise ConfigError(
            f"{path} was computed with config hash {found!r}, but the current configuration "
            f"has {expected!r}; remove it (or run with the configuration that produced it)"
        )


def _pair_of(path) -> tuple[int, int]:
    a, b = Path(path).stem.split("-")
    return int(a), int(b)


# ---------------------------------------------------------------------------------- data


def prepare_dataset_job(dataset: str, data_dir: str, out_json) -> None:
    """Download (CIFAR) or check (digits) a dataset once; record its shape as evidence."""
    from .data import load_dataset, prepare_dataset

    prepare_dataset(dataset, data_dir)
    data = load_dataset(dataset, data_dir)
    _write_json(
        out_json,
        {
            "dataset": dataset,
            "num_classes": data.num_classes,
            "input_shape": list(data.input_shape),
            "n_train": int(data.x_train.shape[0]),
            "n_test": int(data.x_test.shape[0]),
            **provenance(),
        },
    )
    log.info(
        "dataset %s ready: %d train / %d test samples, %d classes",
        dataset,
        data.x_train.shape[0],
        data.x_test.shape[0],
        data.num_classes,
    )


def _load_data(dataset: str, data_dir: str, device):
    from .data import load_dataset

    return load_dataset(dataset, data_dir, device=device)


def _start_compute_job(row: dict, data_dir, device, threads):
    """Threads and device from what Snakemake/SLURM gave the job, and the row's dataset on it."""
    dev = configure_runtime(threads, device)
    return dev, _load_data(row["dataset"], data_dir, dev)


# -------------------------------------------------------------------------------- minima


def train_job(
    row: dict, seed: int, out_path, checkpoint, config_hash: str, data_dir, device, threads
) -> dict:
    """Train one minimum (resumes from ``checkpoint``); ends with its exact-BN evaluation."""
    from .train import train_minimum

    dev, data = _start_compute_job(row, data_dir, device, threads)
    return train_minimum(
        row["arch"],
        data,
        row["recipe"],
        int(seed),
        out_path,
        checkpoint,
        config_hash=config_hash,
        device=dev,
    )


def _load_minima(paths, config_hash: str | None = None):
    from .train import load_minimum

    return [load_minimum(p, expect_config_hash=config_hash or None) for p in paths]


def overlap_job(
    minima_paths,
    dataset: str,
    data_dir,
    outputs: dict,
    threshold: float,
    metric: str,
    config_hash: str,
) -> None:
    """Pairwise misclassification overlap of the minima: CSVs and a heatmap (PNG and PDF)."""
    from .overlap import overlap_matrix, plot_overlap_heatmap, write_matrix_csv, write_overlap_csv

    minima = _load_minima(minima_paths, config_hash)
    labels = _load_data(dataset, data_dir, "cpu").y_test.numpy()
    predictions = {m.seed: m.predictions.numpy() for m in minima}
    seeds, jaccard, smaller = overlap_matrix(predictions, labels)
    matrix = smaller if metric == "smaller" else jaccard
    write_overlap_csv(outputs["pairs"], predictions, labels, threshold=threshold, metric=metric)
    write_matrix_csv(outputs["matrix"], seeds, matrix)
    arch = minima[0].arch
    for key in ("png", "pdf"):
        plot_overlap_heatmap(
            outputs[key],
            seeds,
            matrix,
            threshold=threshold,
            title=f"{dataset} {arch}: misclassification overlap",
            metric_label=(
                "overlap of misclassified test samples (of the smaller set)"
                if metric == "smaller"
                else "Jaccard overlap of misclassified test samples"
            ),
        )


# ---------------------------------------------------------------------------- exploration


def _minimum_losses(minima_paths, config_hash: str | None = None) -> dict[int, float]:
    return {m.seed: float(m.metrics["train_loss"]) for m in _load_minima(minima_paths, config_hash)}


def _computed_saddles(path_files, config_hash: str | None = None) -> dict[tuple, float]:
    from .pathfile import read_path

    computed = {}
    for p in path_files:
        record = read_path(p, load_pivots=False, expect_config_hash=config_hash or None)
        computed[_pair_of(p)] = float(record.saddle_loss)
    return computed


def select_pairs_job(
    minima_paths,
    path_files,
    out_json,
    round_index: int,
    max_paths: int,
    pairs_per_round: int,
    config_hash: str,
) -> list:
    """Algorithm 3, one round: which pairs to connect next (an empty list ends the loop)."""
    from .landscape import next_pairs

    losses = _minimum_losses(minima_paths)
    computed = _computed_saddles(path_files, config_hash)
    pairs = next_pairs(losses, computed, max_new=pairs_per_round, budget=max_paths)
    _write_json(
        out_json,
        {
            "round": int(round_index),
            "pairs": [list(map(int, p)) for p in pairs],
            "computed_before": len(computed),
            "max_paths": max_paths,
            "pairs_per_round": pairs_per_round,
            "config_hash": config_hash,
        },
    )
    log.info(
        "round %d: %d paths computed so far, selected %s",
        round_index,
        len(computed),
        pairs or "nothing (exploration done)",
    )
    return pairs


def path_seed(a: int, b: int) -> int:
    """A fixed seed per pair, so re-running a path job reproduces it."""
    return 1_000_003 * int(a) + int(b)


def autoneb_job(
    row: dict,
    minimum_a,
    minimum_b,
    out_path,
    state_path,
    config_hash: str,
    minima_hash: str,
    data_dir,
    device,
    threads,
) -> None:
    """Connect two minima with AutoNEB (resumable) and store the path as HDF5."""
    from .autoneb import AutoNEBConfig, run_autoneb
    from .energy import ModelEnergy
    from .pathfile import write_path

    dev, data = _start_compute_job(row, data_dir, device, threads)
    ma, mb = _load_minima([minimum_a, minimum_b], minima_hash)
    if ma.arch != row["arch"] or mb.arch != row["arch"]:
        raise FileFormatError(
            f"{minimum_a}, {minimum_b}: architectures {ma.arch}/{mb.arch}, expected {row['arch']}"
        )
    config = AutoNEBConfig.from_dict(row["autoneb"])
    model = ma.build(data.num_classes, data.input_shape).to(dev)
    energy = ModelEnergy(
        model,
        data.x_train,
        data.y_train,
        batch_size=config.batch_size,
        mode=config.mode,
        device=dev,
    )
    start = energy.point_of(model)
    end = energy.point_of(mb.build(data.num_classes, data.input_shape).to(dev))
    seed = path_seed(ma.seed, mb.seed)
    result = run_autoneb(energy, start, end, config, state_path=state_path, seed=seed)
    write_path(
        out_path,
        result,
        endpoints=(ma.seed, mb.seed),
        config=row,
        seed=seed,
        dataset=row["dataset"],
        arch=row["arch"],
        config_hash=config_hash,
    )
    Path(state_path).unlink(missing_ok=True)


def landscape_job(minima_paths, path_files, out_json, config_hash: str) -> dict:
    """MST, ultrametric bounds and single-linkage merges of all computed paths."""
    from .landscape import minimum_spanning_tree, single_linkage, ultrametric_bounds

    losses = _minimum_losses(minima_paths)
    computed = _computed_saddles(path_files, config_hash)
    mst = minimum_spanning_tree(losses, computed)
    nodes, bounds = ultrametric_bounds(losses, computed)
    merges = single_linkage(nodes, bounds)
    payload = {
        "nodes": [int(n) for n in nodes],
        "minimum_loss": {str(k): v for k, v in losses.items()},
        "computed": [[int(a), int(b), s] for (a, b), s in sorted(computed.items())],
        "mst": [[int(a), int(b), float(s)] for a, b, s in mst],
        "bounds": [[float(x) if math.isfinite(x) else None for x in row] for row in bounds],
        "merges": [[int(x), int(y), float(h), int(n)] for x, y, h, n in merges],
        "config_hash": config_hash,
        **provenance(),
    }
    _write_json(out_json, payload)
    log.info(
        "landscape: %d minima, %d paths, MST saddles %s",
        len(nodes),
        len(computed),
        [round(e[2], 4) for e in mst],
    )
    return payload


# ----------------------------------------------------------------------------- evaluation


def evaluate_path_job(
    row: dict, path_file, out_path, config_hash: str, path_hash: str, data_dir, device, threads
) -> None:
    """Dense exact-BN evaluation of one MST path and of the straight line between its ends."""
    from .evaluate import dense_positions, evaluate_line, evaluate_path
    from .models import build_model
    from .pathfile import read_path, write_evaluation
    from .progress import Progress

    dev, data = _start_compute_job(row, data_dir, device, threads)
    record = read_path(path_file, load_pivots=True, expect_config_hash=path_hash)
    model = build_model(row["arch"], data.num_classes, data.input_shape).to(dev)
    settings = row["evaluation"]
    pivots = record.pivots.to(dev)
    n_dense = len(dense_positions(pivots.shape[0], settings["n_between"]))
    progress = Progress(n_dense + settings["line_points"], "evaluate point")
    dense = evaluate_path(
        model,
        pivots,
        data,
        n_between=settings["n_between"],
        batch_size=settings["batch_size"],
        progress=progress,
    )
    line = evaluate_line(
        model,
        pivots[0],
        pivots[-1],
        settings["line_points"],
        data,
        batch_size=settings["batch_size"],
        progress=progress,
    )
    write_evaluation(
        out_path,
        dense,
        line,
        endpoints=record.endpoints,
        config=row,
        seed=record.seed,
        dataset=row["dataset"],
        arch=row["arch"],
        config_hash=config_hash,
    )
    log.info(
        "path %s: saddle train loss %.4g (AutoNEB estimate %.4g), straight line %.4g",
        path_file,
        dense["train_loss"].max(),
        record.saddle_loss,
        line["train_loss"].max(),
    )


def mst_paths_job(evaluated_files, path_files, out_json) -> None:
    """The path files and dense evaluations of the final MST, as one list for the report jobs."""
    _write_json(
        out_json,
        {"evaluated": [str(p) for p in evaluated_files], "paths": [str(p) for p in path_files]},
    )


def _mst_files(mst_json) -> tuple[list[str], list[str]]:
    listing = _read_json(mst_json, "MST path list")
    return listing["evaluated"], listing["paths"]


def _read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------- report


def _minimum_rows(minima) -> list[dict]:
    return [
        {"seed": m.seed, **{k: float(v) for k, v in m.metrics.items()}, "history": m.history}
        for m in minima
    ]


def _evaluations(evaluated_files, config_hash: str) -> dict:
    from .pathfile import read_evaluation

    records = {}
    for f in evaluated_files:
        record = read_evaluation(f, expect_config_hash=config_hash)
        records[tuple(sorted(map(int, record.endpoints)))] = record
    return records


def table_row_job(
    row: dict,
    minima_paths,
    landscape_json,
    mst_json,
    overlap_csv,
    out_row_json,
    out_pairs_csv,
    minima_hash: str,
    config_hash: str,
) -> dict:
    """One row of Table B.1 (mean over minima / MST edges) and the per-pair detail table."""
    from .report.table import pair_details, table_b1_row, write_pair_details

    minima = _load_minima(minima_paths, minima_hash)
    landscape = _read_json(landscape_json, "landscape")
    evaluations = _evaluations(_mst_files(mst_json)[0], config_hash)
    mst = [tuple(e) for e in landscape["mst"]]
    missing = [(a, b) for a, b, _ in mst if (a, b) not in evaluations]
    if missing:
        raise FileFormatError(f"{landscape_json}: MST edges {missing} have no dense evaluation")
    saddles = [{"a": a, "b": b, **evaluations[(a, b)].saddles} for a, b, _ in mst]
    flagged = sum(r["above_threshold"] == "True" for r in _read_csv(overlap_csv))
    table_row = table_b1_row(
        row["dataset"],
        row["arch"],
        _minimum_rows(minima),
        saddles,
        epochs_total=row["recipe"]["epochs"],
        n_paths=len(landscape["computed"]),
        n_overlap_flagged=flagged,
        config_hash=config_hash,
    )
    _write_json(out_row_json, table_row)
    bounds = (
        landscape["nodes"],
        np.array([[math.inf if x is None else x for x in r] for r in landscape["bounds"]]),
    )
    details = pair_details(
        row["dataset"],
        row["arch"],
        {(a, b): s for a, b, s in landscape["computed"]},
        mst,
        minimum_loss={int(k): v for k, v in landscape["minimum_loss"].items()},
        bounds=bounds,
        dense={pair: rec.saddles for pair, rec in evaluations.items()},
        linear={pair: rec.line_saddles for pair, rec in evaluations.items()},
        config_hash=config_hash,
    )
    write_pair_details(details, out_pairs_csv)
    log.info(
        "%s %s: train loss min %.4g, saddle %.4g (factor %.2f), test error min %.2f%%, "
        "saddle %.2f%%",
        row["dataset"],
        row["arch"],
        table_row["train_min"],
        table_row["train_sadd"],
        table_row["factor"],
        100 * table_row["test_error_min"],
        100 * table_row["test_error_sadd"],
    )
    return table_row


def table_b1_job(row_jsons, pairs_csvs, outputs: dict, expected_hashes: dict) -> None:
    """Table B.1 (CSV, Markdown, LaTeX), all pair details, and Figure 5."""
    from .report.figures import plot_min_vs_saddle
    from .report.table import write_table_b1

    rows = [_read_json(p, "table row") for p in row_jsons]
    expected = {tuple(k.split("/")): v for k, v in expected_hashes.items()}
    write_table_b1(rows, outputs["csv"], outputs["md"], outputs["tex"], expected)
    with atomic_path(outputs["pairs"]) as tmp, open(tmp, "w", newline="") as out:
        writer = None
        for p in pairs_csvs:
            for record in _read_csv(p):
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(record))
                    writer.writeheader()
                writer.writerow(record)
    plot_min_vs_saddle(rows, Path(outputs["fig5_png"]).with_suffix(""))


def _stem(path) -> Path:
    return Path(path).with_suffix("")


def _highest_mst_path(landscape: dict, path_files, path_hash: str):
    """The MST edge with the highest saddle (the path that decides the row's barrier) and its
    path file, read with pivots."""
    from .pathfile import read_path

    a, b, _ = max(landscape["mst"], key=lambda e: e[2])
    path_of = {_pair_of(p): p for p in path_files}
    return (a, b), read_path(path_of[(a, b)], load_pivots=True, expect_config_hash=path_hash)


def row_figures_job(
    minima_paths,
    row_json,
    landscape_json,
    mst_json,
    outputs: dict,
    cycles,
    minima_hash: str,
    path_hash: str,
    config_hash: str,
) -> None:
    """Figures 4, 6, 7, the MST and the disconnectivity graph of one row."""
    from .report import figures as F
    from .report.table import display_arch, display_dataset

    minima = _load_minima(minima_paths, minima_hash)
    table_row = _read_json(row_json, "table row")
    landscape = _read_json(landscape_json, "landscape")
    evaluated_files, path_files = _mst_files(mst_json)
    evaluations = _evaluations(evaluated_files, config_hash)
    label = f"{display_dataset(table_row['dataset'])} {display_arch(table_row['architecture'])}"
    # The MST edge with the highest saddle: the path that decides the row's barrier.
    (a, b), record = _highest_mst_path(landscape, path_files, path_hash)
    last = record.history[-1].cycle
    F.plot_path_cycles(
        record.history,
        [c if c <= last else -1 for c in cycles],
        _stem(outputs["fig4_path_cycles_png"]),
        f"{label}: loss along path {a}-{b} during AutoNEB",
        config_hash=config_hash,
    )
    F.plot_learning_curves(
        [m.history for m in minima],
        table_row["train_sadd"],
        _stem(outputs["fig6_learning_curves_png"]),
        f"{label}: learning curves",
        config_hash=config_hash,
    )
    dense = evaluations[(a, b)].dense
    F.plot_parallel_coordinates(
        record.pivots.numpy(),
        None,
        dense["t"],
        dense["train_loss"],
        _stem(outputs["fig7_parallel_coordinates_png"]),
        title=f"{label}: parameters along path {a}-{b}",
        config_hash=config_hash,
    )
    nodes = landscape["nodes"]
    node_loss = {int(k): v for k, v in landscape["minimum_loss"].items()}
    F.plot_mst(
        nodes,
        node_loss,
        [tuple(e) for e in landscape["mst"]],
        _stem(outputs["mst_png"]),
        f"{label}: minimum spanning tree of {len(landscape['computed'])} paths",
        config_hash=config_hash,
    )
    F.plot_disconnectivity(
        nodes,
        node_loss,
        [tuple(m) for m in landscape["merges"]],
        _stem(outputs["disconnectivity_png"]),
        f"{label}: disconnectivity graph",
        config_hash=config_hash,
    )


def slice_job(
    row: dict,
    landscape_json,
    mst_json,
    outputs: dict,
    resolution: int,
    margin: float,
    path_hash: str,
    config_hash: str,
    data_dir,
    device,
    threads,
) -> None:
    """Figure 1 style: training loss on the plane through both minima and the path's mean."""
    import torch

    from .evaluate import evaluate_point
    from .models import build_model
    from .progress import Progress
    from .report import figures as F
    from .report.table import display_arch, display_dataset

    dev, data = _start_compute_job(row, data_dir, device, threads)
    landscape = _read_json(landscape_json, "landscape")
    evaluated_files, path_files = _mst_files(mst_json)
    (a, b), record = _highest_mst_path(landscape, path_files, path_hash)
    evaluation = _evaluations(evaluated_files, config_hash)[(a, b)]
    pivots = record.pivots.double().numpy()
    origin, end = pivots[0], pivots[-1]
    basis = F.plane_basis(origin, end, pivots.mean(axis=0))
    path_uv = F.project_to_plane(pivots, origin, basis)
    grid_u, grid_v = F.plane_grid(path_uv, n=resolution, margin=margin)
    model = build_model(row["arch"], data.num_classes, data.input_shape).to(dev)
    loss = np.empty((len(grid_v), len(grid_u)))
    progress = Progress(loss.size, "slice point")
    batch_size = row["evaluation"]["batch_size"]
    for iv, v in enumerate(grid_v):
        for iu, u in enumerate(grid_u):
            point = torch.as_tensor(F.plane_point(origin, basis, u, v), dtype=torch.float32)
            loss[iv, iu] = evaluate_point(model, point, data, batch_size)["train_loss"]
            progress.update(train_loss=float(loss[iv, iu]))
    dense, line = evaluation.dense, evaluation.line
    n_gaps = dense["t"].max()
    F.plot_plane_slice(
        grid_u,
        grid_v,
        loss,
        path_uv,
        path_uv[[0, -1]],
        _stem(outputs["png"]),
        f"{display_dataset(row['dataset'])} {display_arch(row['arch'])}: training loss on the "
        f"plane through minima {a}, {b} and the path mean",
        path_profile=(dense["t"] / n_gaps, dense["train_loss"]),
        line_profile=(line["t"], line["train_loss"]),
        config_hash=config_hash,
    )


__all__ = [
    "prepare_dataset_job",
    "train_job",
    "overlap_job",
    "select_pairs_job",
    "autoneb_job",
    "landscape_job",
    "evaluate_path_job",
    "path_seed",
    "mst_paths_job",
    "table_row_job",
    "table_b1_job",
    "row_figures_job",
    "slice_job",
]
