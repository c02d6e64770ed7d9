"""The overlap stage: how distinct are a row's minima (paper Section 4)."""

from __future__ import annotations

import logging

import numpy as np

from ..engine.overlap import flag_pairs, overlap_matrix, write_matrix_csv, write_overlap_csv
from ..report.labels import arch_label, dataset_label
from ..report.landscape_figures import plot_overlap_heatmap
from .common import load_row_minima
from .compute import JobRuntime

log = logging.getLogger("nobarriers")


def overlap_job(
    row: dict,
    minima_paths,
    runtime: JobRuntime,
    pairs_csv,
    matrix_csv,
    png,
    pdf,
    threshold: float,
    metric: str,
) -> list[dict]:
    """Pairwise misclassification overlap of the minima: the pair table, the matrix and a
    heatmap; returns the pairs above ``threshold`` (logged)."""
    minima = load_row_minima(minima_paths, row)
    labels = runtime.dataset(row["dataset"]).y_test.numpy()
    predictions = {m.seed: m.predictions.numpy() for m in minima}
    seeds, jaccard, smaller = overlap_matrix(predictions, labels)
    matrix = smaller if metric == "smaller" else jaccard
    write_overlap_csv(pairs_csv, predictions, labels, threshold=threshold, metric=metric)
    write_matrix_csv(matrix_csv, seeds, matrix)
    title = f"{dataset_label(row['dataset'])} {arch_label(row['arch'])}: misclassification overlap"
    plot_overlap_heatmap(seeds, matrix, png, pdf, title, threshold=threshold, metric=metric)
    flagged = flag_pairs(predictions, labels, threshold, metric)
    off = matrix[~np.eye(len(seeds), dtype=bool)]
    log.info(
        "misclassification overlap (%s) of %d minima: max %.3f, mean %.3f; %d pair(s) above %g",
        metric,
        len(seeds),
        float(off.max()),
        float(off.mean()),
        len(flagged),
        threshold,
    )
    for pair in flagged:
        log.warning(
            "minima %s and %s share %d of their %d/%d misclassified test samples (%s %.3f > %g)",
            pair["seed_a"],
            pair["seed_b"],
            pair["n_both"],
            pair["n_a"],
            pair["n_b"],
            metric,
            pair[metric],
            threshold,
        )
    return flagged
