"""The report stage: a row of Table B.1 and its pair table, Table B.1 itself with Figure 5, the
figures of one row (rules/report.smk). Torch-free."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from ..config import stage_hash
from ..errors import FileFormatError
from ..formats.csv_tables import records
from ..formats.records import LandscapeRecord, MSTPathsRecord, TableRow
from ..overlap import read_overlap_csv
from ..report import landscape_figures, path_figures, summary_figures
from ..report.labels import arch_label, dataset_label
from ..report.pairs import pair_details, read_pair_details, write_pair_details
from ..report.table import table_b1_row, write_table_b1
from .common import evaluations_of, highest_mst_path, load_row_minima

log = logging.getLogger("nobarriers")


def table_row_job(
    row: dict, minima_paths, landscape_json, mst_json, overlap_csv, out_row_json, out_pairs_csv
) -> TableRow:
    """One row of Table B.1 (mean over minima / MST edges) and the per-pair detail table.
    ``row``: the row's ``evaluation`` stage settings."""
    minima = load_row_minima(minima_paths, row, tensors=False)
    landscape = LandscapeRecord.read(landscape_json)
    evaluations = evaluations_of(MSTPathsRecord.read(mst_json).evaluated, row)
    missing = [(a, b) for a, b, _ in landscape.mst if (a, b) not in evaluations]
    if missing:
        raise FileFormatError(f"{landscape_json}: MST edges {missing} have no dense evaluation")
    saddles = [{"a": a, "b": b, **evaluations[(a, b)].saddles} for a, b, _ in landscape.mst]
    flagged = sum(r["above_threshold"] is True for r in read_overlap_csv(overlap_csv))
    config_hash = stage_hash(row, "evaluation")
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


def table_b1_job(
    row_jsons, pairs_csvs, csv, md, tex, pairs, fig5_png, fig5_pdf, expected_hashes: dict
) -> None:
    """Table B.1 (CSV, Markdown, LaTeX), all pair details, and Figure 5.
    ``expected_hashes``: ``"dataset/arch"`` -> the row's evaluation config hash."""
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
    summary_figures.plot_learning_curves(
        [m.history for m in minima],
        table_row.train_sadd,
        fig6_png,
        fig6_pdf,
        f"{label}: learning curves",
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
