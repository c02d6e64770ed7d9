"""The report stage: a row of Table B.1 and its pair table, Table B.1 itself with Figure 5, the
figures of one row (rules/report.smk). Torch-free."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np

from ..core.errors import FileFormatError
from ..engine.overlap import read_overlap_csv
from ..formats.csv_tables import records
from ..formats.pathfile import read_path
from ..formats.records import LandscapeRecord, MSTPathsRecord, TableRow
from ..report import landscape_figures, path_figures, summary_figures
from ..report.labels import arch_label, dataset_label
from ..report.pairs import pair_details, read_pair_details, write_pair_details
from ..report.table import table_b1_row, write_table_b1
from ..settings.config import stage_hash
from .common import evaluations_of, highest_mst_path, load_row_minima

log = logging.getLogger("nobarriers")


def table_row_job(
    row: dict, minima_paths, landscape_json, mst_json, overlap_csv, out_row_json, out_pairs_csv
) -> TableRow:
    """One row of Table B.1 (mean over minima / MST edges) and the per-pair detail table.
    ``row``: the row's ``report`` stage settings."""
    minima = load_row_minima(minima_paths, row, tensors=False)
    landscape = LandscapeRecord.read(landscape_json)
    listing = MSTPathsRecord.read(mst_json)
    evaluations = evaluations_of(listing.evaluated, row)
    missing = [(a, b) for a, b, _ in landscape.mst if (a, b) not in evaluations]
    if missing:
        raise FileFormatError(f"{landscape_json}: MST edges {missing} have no dense evaluation")
    saddles = [{"a": a, "b": b, **evaluations[(a, b)].saddles} for a, b, _ in landscape.mst]
    flagged = sum(r["above_threshold"] is True for r in read_overlap_csv(overlap_csv))
    config_hash = stage_hash(row, "report")
    table_row = table_b1_row(
        row["dataset"],
        row["arch"],
        [
            {"seed": m.seed, **{k: float(v) for k, v in m.metrics.items()}, "history": m.history}
            for m in minima
        ],
        saddles,
        epochs_total=row["recipe"]["epochs"],
        n_paths=len(landscape.computed),
        n_overlap_flagged=flagged,
        config_hash=config_hash,
    )
    paths, aligned = mst_path_summaries(listing, row)
    if aligned:  # raw vs aligned, means over the MST edges
        edges = [(a, b) for a, b, _ in landscape.mst]
        table_row = dataclasses.replace(
            table_row,
            alignment_raw_saddle=_mean(paths, edges, "saddle_train_loss"),
            alignment_aligned_saddle=_mean(aligned, edges, "aligned_saddle_train_loss"),
            alignment_raw_line=_mean(aligned, edges, "raw_line_train_loss"),
            alignment_aligned_line=_mean(aligned, edges, "aligned_line_train_loss"),
        )
    at_saddle = {pair: test_at_train_max(rec.dense) for pair, rec in evaluations.items()}
    hessian = {
        pair: hessian_columns(rec) for pair, rec in evaluations.items() if "hessian" in rec.attrs
    }
    edges = [(a, b) for a, b, _ in landscape.mst]
    table_row = dataclasses.replace(
        table_row,
        test_sadd_at_saddle=_mean(at_saddle, edges, "dense_test_loss_at_saddle"),
        test_error_sadd_at_saddle=_mean(at_saddle, edges, "dense_test_error_at_saddle"),
    )
    if hessian:  # how many MST saddles are saddles of index 1 (converged, gradient aside)
        table_row = dataclasses.replace(
            table_row,
            hessian_index_1_edges=sum(h["hessian_index"] == 1 for h in hessian.values()),
            hessian_edges=len(hessian),
        )
    measured = [evaluations[(a, b)].ensembles for a, b, _ in landscape.mst]
    if all(m is not None for m in measured):  # the row's summary: mean over the MST edges
        largest = int(max(measured[0]["sizes"]))
        table_row = dataclasses.replace(
            table_row,
            ensemble_size=largest,
            ensemble_path_test_error=float(np.mean([m["test_error"][-1] for m in measured])),
            ensemble_endpoints_test_error=float(np.mean([m["test_error"][0] for m in measured])),
        )
    table_row.write(out_row_json)
    details = pair_details(
        row["dataset"],
        row["arch"],
        landscape.computed,
        landscape.mst,
        minimum_loss=landscape.minimum_loss,
        bounds=(landscape.nodes, np.array(landscape.bounds)),
        estimates=landscape.autoneb_saddle,
        dense={pair: rec.saddles for pair, rec in evaluations.items()},
        linear={pair: rec.line_saddles for pair, rec in evaluations.items()},
        ensembles={pair: rec.ensembles for pair, rec in evaluations.items()},
        paths=paths,
        aligned=aligned,
        at_saddle=at_saddle,
        hessian=hessian,
        config_hash=config_hash,
    )
    write_pair_details(details, out_pairs_csv)
    log.info(
        "%s %s: train loss min %.4g, saddle %.4g (factor %.2f), test error min %.2f%%, "
        "saddle %.2f%%",
        row["dataset"],
        row["arch"],
        table_row.train_min,
        table_row.train_sadd,
        table_row.factor,
        100 * table_row.test_error_min,
        100 * table_row.test_error_sadd,
    )
    return table_row


def hessian_columns(record) -> dict:
    """pairs.csv's Hessian columns from an evaluation file's ``hessian`` attribute."""
    spectrum = json.loads(record.attrs["hessian"])
    lowest = spectrum["lowest"]
    return {
        "hessian_index": spectrum["n_negative"],
        "hessian_lambda_min": lowest[0] if lowest else None,
        "hessian_lambda_max": spectrum["lambda_max"],
        "hessian_gap": spectrum["gap"],
        "hessian_cosine_to_path": spectrum["cosine_to_tangent"],
        "hessian_grad_norm": spectrum["grad_norm"],
        "hessian_converged": bool(spectrum["converged"]),
    }


def test_at_train_max(dense: dict) -> dict:
    """The test loss and error where a densely evaluated path's training loss is highest."""
    k = int(np.argmax(dense["train_loss"]))
    return {
        "dense_test_loss_at_saddle": float(dense["test_loss"][k]),
        "dense_test_error_at_saddle": float(dense["test_error"][k]),
    }


def _mean(values: dict, pairs, column: str) -> float:
    return float(np.mean([values[p][column] for p in pairs]))


def path_length(pivots) -> float:
    """Euclidean length of the polyline through the pivots (in parameter space)."""
    return float(
        np.linalg.norm(np.diff(np.asarray(pivots, dtype=np.float64), axis=0), axis=1).sum()
    )


def mst_path_summaries(listing: MSTPathsRecord, row: dict) -> tuple[dict, dict]:
    """``(paths, aligned)``: pivots and length of every MST path, and what its aligned twin
    records (``report.pairs.ALIGNED_COLUMNS``; empty without alignment), keyed by pair."""
    paths, aligned = {}, {}
    for f in listing.paths:
        record = read_path(f, expect_config_hash=stage_hash(row, "paths"))
        paths[tuple(sorted(record.endpoints))] = {
            "n_pivots": record.pivots.shape[0] - 2,
            "path_length": path_length(record.pivots),
            "saddle_train_loss": record.saddle_loss,
        }
    for f in listing.aligned:
        record = read_path(f, expect_config_hash=stage_hash(row, "aligned"))
        attrs = record.attrs
        aligned[tuple(sorted(record.endpoints))] = {
            "aligned_saddle_train_loss": record.saddle_loss,
            "aligned_n_pivots": record.pivots.shape[0] - 2,
            "aligned_path_length": path_length(record.pivots),
            "raw_line_train_loss": float(attrs["raw_line_saddle_loss"]),
            "aligned_line_train_loss": float(attrs["aligned_line_saddle_loss"]),
            "alignment_distance_before": float(attrs["alignment_distance_before"]),
            "alignment_distance_after": float(attrs["alignment_distance_after"]),
        }
    return paths, aligned


def alignment_figure_job(row: dict, mst_json, png, pdf) -> None:
    """Raw vs aligned MST paths of a row: straight-line barrier and AutoNEB saddle per edge.
    ``row``: the row's ``report`` stage settings."""
    listing = MSTPathsRecord.read(mst_json)
    paths, aligned = mst_path_summaries(listing, row)
    label = f"{dataset_label(row['dataset'])} {arch_label(row['arch'])}"
    path_figures.plot_alignment(
        {pair: {**aligned[pair], **paths[pair]} for pair in aligned},
        png, pdf, f"{label}: raw vs permutation-aligned MST paths",
        config_hash=stage_hash(row, "aligned"),
    )  # fmt: skip


def table_b1_job(
    row_jsons, pairs_csvs, csv, md, tex, pairs, fig5_png, fig5_pdf, expected_hashes: dict
) -> None:
    """Table B.1 (CSV, Markdown, LaTeX), all pair details, and Figure 5.
    ``expected_hashes``: ``"dataset/arch"`` -> the row's report config hash."""
    rows = [TableRow.read(p) for p in row_jsons]
    expected = {tuple(k.split("/")): v for k, v in expected_hashes.items()}
    write_table_b1(rows, csv, md, tex, expected)
    write_pair_details([d for p in pairs_csvs for d in read_pair_details(p)], pairs)
    summary_figures.plot_min_vs_saddle(records(rows), fig5_png, fig5_pdf)


def row_figures_job(
    row: dict,
    minima_paths,
    row_json,
    landscape_json,
    mst_json,
    cycles,
    fig4_png,
    fig4_pdf,
    fig6_png,
    fig6_pdf,
    fig7_png,
    fig7_pdf,
    mst_png,
    mst_pdf,
    disconnectivity_png,
    disconnectivity_pdf,
) -> None:
    """Figures 4, 6, 7, the MST and the disconnectivity graph of one row.
    ``row``: the row's ``evaluation`` stage settings."""
    minima = load_row_minima(minima_paths, row, tensors=False)
    table_row = TableRow.read(row_json)
    landscape = LandscapeRecord.read(landscape_json)
    listing = MSTPathsRecord.read(mst_json)
    evaluations = evaluations_of(listing.evaluated, row)
    config_hash = stage_hash(row, "evaluation")
    label = f"{dataset_label(row['dataset'])} {arch_label(row['arch'])}"
    (a, b), record = highest_mst_path(landscape, listing.paths, row)
    last = record.history[-1].cycle
    path_figures.plot_path_cycles(
        record.history,
        [c if c <= last else -1 for c in cycles],
        fig4_png,
        fig4_pdf,
        f"{label}: loss along path {a}-{b} during AutoNEB",
        config_hash=config_hash,
    )
    if any(m.history for m in minima):
        summary_figures.plot_learning_curves(
            [m.history for m in minima],
            table_row.train_sadd,
            fig6_png,
            fig6_pdf,
            f"{label}: learning curves",
            config_hash=config_hash,
        )
    else:  # minima trained elsewhere
        summary_figures.plot_minima_levels(
            [m.metrics["train_loss"] for m in minima],
            table_row.train_sadd,
            fig6_png,
            fig6_pdf,
            label,
            config_hash=config_hash,
        )
    dense = evaluations[(a, b)].dense
    path_figures.plot_parallel_coordinates(
        record.pivots,
        None,
        dense["t"],
        dense["train_loss"],
        fig7_png,
        fig7_pdf,
        title=f"{label}: parameters along path {a}-{b}",
        config_hash=config_hash,
    )
    landscape_figures.plot_mst(
        landscape.nodes,
        landscape.minimum_loss,
        landscape.mst,
        mst_png,
        mst_pdf,
        f"{label}: minimum spanning tree of {len(landscape.computed)} paths",
        config_hash=config_hash,
    )
    landscape_figures.plot_disconnectivity(
        landscape.nodes,
        landscape.minimum_loss,
        landscape.merges,
        disconnectivity_png,
        disconnectivity_pdf,
        f"{label}: disconnectivity graph",
        config_hash=config_hash,
    )


def ensemble_figure_job(row: dict, mst_json, png, pdf) -> None:
    """Test error of the ensembles along the row's MST paths vs K (evaluation.ensemble_sizes).
    ``row``: the row's ``evaluation`` stage settings."""
    evaluations = evaluations_of(MSTPathsRecord.read(mst_json).evaluated, row)
    curves = {pair: rec.ensembles for pair, rec in evaluations.items() if rec.ensembles}
    label = f"{dataset_label(row['dataset'])} {arch_label(row['arch'])}"
    path_figures.plot_path_ensembles(
        curves, png, pdf, f"{label}: ensembles along the MST paths",
        config_hash=stage_hash(row, "evaluation"),
    )  # fmt: skip
