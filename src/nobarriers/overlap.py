"""Overlap of the test samples misclassified at two minima (paper, Section 4).

The paper shows that its minima are distinct: "on the ResNet and DenseNet architectures, we observe
a maximum 70% overlap of the samples that are misclassified at two minima". The paper does not say
how the overlap is normalised, so both usual definitions are computed. For minima ``a`` and ``b``
with misclassified test sets ``W_a`` and ``W_b``:

* ``jaccard = |W_a ∩ W_b| / |W_a ∪ W_b|`` (intersection over union), and
* ``smaller = |W_a ∩ W_b| / min(|W_a|, |W_b|)`` (overlap coefficient: the share of the smaller
  error set that the other minimum also gets wrong).

``smaller >= jaccard`` always, so ``smaller`` is the stricter test of distinctness and is the
default metric of :func:`flag_pairs`; a pair is *flagged* when its overlap is strictly above the
threshold (default 0.7, the paper's maximum).

Edge case: if a minimum misclassifies no test sample, its error set is empty; the intersection is
then empty too and both overlaps are defined as 0 (no shared mistakes) instead of 0/0. The same
holds for ``jaccard`` when both sets are empty. The diagonal of the matrices (a minimum with
itself) is 1 unless the minimum has no errors (then 0 by the same rule).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .runtime import atomic_path

METRICS = ("smaller", "jaccard")
DEFAULT_THRESHOLD = 0.7
METRIC_LABELS = {
    "smaller": "shared misclassified test samples / smaller error set",
    "jaccard": "shared misclassified test samples / union (Jaccard)",
}


def _as_array(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ConfigError(f"{name}: expected a 1-D array of class indices, got shape {arr.shape}")
    return arr


def misclassified(pred, labels) -> np.ndarray:
    """Boolean mask of the misclassified samples."""
    pred = _as_array(pred, "predictions")
    labels = _as_array(labels, "labels")
    if pred.shape != labels.shape:
        raise ConfigError(
            f"predictions have {pred.shape[0]} entries but there are {labels.shape[0]} labels"
        )
    return pred != labels


def misclassification_overlap(pred_a, pred_b, labels) -> dict:
    """Overlap of the error sets of two minima: ``dict(jaccard, smaller, n_a, n_b, n_both)``."""
    wa = misclassified(pred_a, labels)
    wb = misclassified(pred_b, labels)
    n_a, n_b = int(wa.sum()), int(wb.sum())
    n_both = int((wa & wb).sum())
    n_union = n_a + n_b - n_both
    return {
        "jaccard": n_both / n_union if n_union else 0.0,
        "smaller": n_both / min(n_a, n_b) if min(n_a, n_b) else 0.0,
        "n_a": n_a,
        "n_b": n_b,
        "n_both": n_both,
    }


def overlap_matrix(predictions: dict, labels) -> tuple[list, np.ndarray, np.ndarray]:
    """Pairwise overlaps of all minima: ``(seeds, jaccard [K, K], smaller [K, K])``.

    ``predictions`` maps seed -> test predictions; seeds are returned sorted. Both matrices are
    symmetric.
    """
    seeds = sorted(predictions)
    masks = np.stack([misclassified(predictions[s], labels) for s in seeds]).astype(np.int64)
    both = masks @ masks.T  # [K, K] |W_a ∩ W_b|
    n = np.diag(both).astype(np.float64)
    union = n[:, None] + n[None, :] - both
    smallest = np.minimum(n[:, None], n[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        jaccard = np.where(union > 0, both / np.where(union > 0, union, 1), 0.0)
        smaller = np.where(smallest > 0, both / np.where(smallest > 0, smallest, 1), 0.0)
    return seeds, jaccard, smaller


def _check_metric(metric: str, threshold: float) -> None:
    if metric not in METRICS:
        raise ConfigError(f"overlap metric {metric!r}: choose one of {', '.join(METRICS)}")
    if not 0 <= float(threshold) <= 1:
        raise ConfigError(f"overlap threshold {threshold!r}: must be in [0, 1]")


def pair_table(predictions: dict, labels) -> list[dict]:
    """One row per unordered pair of minima (seed_a < seed_b) with counts and both overlaps."""
    seeds = sorted(predictions)
    rows = []
    for i, a in enumerate(seeds):
        for b in seeds[i + 1 :]:
            row = misclassification_overlap(predictions[a], predictions[b], labels)
            rows.append({"seed_a": a, "seed_b": b, **row})
    return rows


def flag_pairs(
    predictions: dict,
    labels,
    threshold: float = DEFAULT_THRESHOLD,
    metric: str = "smaller",
) -> list[dict]:
    """Pairs whose overlap (``metric``) is strictly above ``threshold``, highest first."""
    _check_metric(metric, threshold)
    rows = [r for r in pair_table(predictions, labels) if r[metric] > threshold]
    return sorted(rows, key=lambda r: -r[metric])


def write_overlap_csv(
    path,
    predictions: dict,
    labels,
    threshold: float = DEFAULT_THRESHOLD,
    metric: str = "smaller",
    matrix_path=None,
) -> list[dict]:
    """Write the long-format table (seed_a, seed_b, n_a, n_b, n_both, jaccard, smaller,
    above_threshold) to ``path`` and, if given, the ``metric`` matrix (seeds as row and column
    labels) to ``matrix_path``. Returns the rows."""
    _check_metric(metric, threshold)
    rows = pair_table(predictions, labels)
    fields = ["seed_a", "seed_b", "n_a", "n_b", "n_both", "jaccard", "smaller", "above_threshold"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            row["above_threshold"] = bool(row[metric] > threshold)
            writer.writerow(
                {
                    **row,
                    "jaccard": f"{row['jaccard']:.6f}",
                    "smaller": f"{row['smaller']:.6f}",
                    "above_threshold": str(row["above_threshold"]).lower(),
                }
            )
    if matrix_path is not None:
        seeds, jaccard, smaller = overlap_matrix(predictions, labels)
        write_matrix_csv(matrix_path, seeds, smaller if metric == "smaller" else jaccard)
    return rows


def write_matrix_csv(path, seeds: list, matrix: np.ndarray) -> None:
    """A square CSV: header ``seed, <seeds...>``, one row per seed."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["seed", *seeds])
        for s, row in zip(seeds, np.asarray(matrix), strict=True):
            writer.writerow([s, *(f"{v:.6f}" for v in row)])


def plot_overlap_heatmap(
    path,
    seeds: list,
    matrix: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    title: str = "",
    metric: str = "smaller",
    metric_label: str | None = None,
) -> None:
    """Heatmap of a pairwise overlap matrix (``metric`` names it for the colorbar label);
    off-diagonal cells above ``threshold`` are boxed in red.

    The format follows the suffix of ``path`` (``.png`` or ``.pdf``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    _check_metric(metric, threshold)
    if metric_label is None:
        metric_label = METRIC_LABELS[metric]
    matrix = np.asarray(matrix, dtype=float)
    k = len(seeds)
    if matrix.shape != (k, k):
        raise ConfigError(f"overlap heatmap {path}: matrix {matrix.shape} does not fit {k} seeds")
    size = max(4.0, 0.45 * k + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    try:
        im = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(k), [str(s) for s in seeds])
        ax.set_yticks(range(k), [str(s) for s in seeds])
        ax.set_xlabel("minimum (seed)")
        ax.set_ylabel("minimum (seed)")
        cbar = fig.colorbar(im, ax=ax)
        cbar.set_label(metric_label)
        cbar.ax.axhline(threshold, color="red", linewidth=1.5)
        flagged = False
        for i in range(k):
            for j in range(k):
                above = i != j and matrix[i, j] > threshold
                if above:
                    ax.add_patch(
                        Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=2.0)
                    )
                    flagged = True
                if k <= 12 or above:
                    color = "white" if matrix[i, j] < 0.5 else "black"
                    ax.text(
                        j,
                        i,
                        f"{matrix[i, j]:.2f}",
                        ha="center",
                        va="center",
                        color="red" if above else color,
                        fontsize=7,
                        fontweight="bold" if above else "normal",
                    )
        full_title = title or "misclassification overlap"
        full_title += (
            f"\n(red boxes: above {threshold:g})" if flagged else f"\n(no pair above {threshold:g})"
        )
        ax.set_title(full_title)
        fig.tight_layout()
        suffix = Path(path).suffix.lower().lstrip(".") or "png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix, dpi=150)
    finally:
        plt.close(fig)


def overlap_report(
    minimum_paths,
    labels,
    csv_path,
    matrix_path=None,
    plot_path=None,
    threshold: float = DEFAULT_THRESHOLD,
    metric: str = "smaller",
    title: str = "",
    expect_arch: str | None = None,
    expect_dataset: str | None = None,
    log=None,
) -> list[dict]:
    """Workflow entry point: read the minimum files, write the long CSV, the matrix CSV and the
    heatmap, log the flagged pairs and return them (rows as in :func:`flag_pairs`)."""
    import logging

    from .train import load_minimum

    logger = log or logging.getLogger("nobarriers")
    _check_metric(metric, threshold)
    predictions = {}
    for path in minimum_paths:
        m = load_minimum(path, expect_arch=expect_arch, expect_dataset=expect_dataset)
        if m.seed in predictions:
            raise ConfigError(f"minimum {path}: seed {m.seed} appears twice")
        if m.predictions.shape[0] != len(labels):
            raise ConfigError(
                f"minimum {path}: {m.predictions.shape[0]} test predictions but the test set "
                f"has {len(labels)} labels"
            )
        predictions[m.seed] = m.predictions
    write_overlap_csv(csv_path, predictions, labels, threshold, metric, matrix_path=matrix_path)
    seeds, jaccard, smaller = overlap_matrix(predictions, labels)
    matrix = smaller if metric == "smaller" else jaccard
    if plot_path is not None:
        plot_overlap_heatmap(plot_path, seeds, matrix, threshold, title, metric=metric)
    flagged = flag_pairs(predictions, labels, threshold, metric)
    off = matrix[~np.eye(len(seeds), dtype=bool)] if len(seeds) > 1 else np.zeros(1)
    logger.info(
        "misclassification overlap (%s) of %d minima: max %.3f, mean %.3f; %d pair(s) above %g",
        metric,
        len(seeds),
        float(off.max()),
        float(off.mean()),
        len(flagged),
        threshold,
    )
    for row in flagged:
        logger.warning(
            "minima %s and %s share %d of their %d/%d misclassified test samples (%s %.3f > %g)",
            row["seed_a"],
            row["seed_b"],
            row["n_both"],
            row["n_a"],
            row["n_b"],
            metric,
            row[metric],
            threshold,
        )
    return flagged
