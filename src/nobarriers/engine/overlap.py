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

import numpy as np

from ..core.errors import ConfigError
from ..formats.csv_tables import frame_records, read_csv, write_csv

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


def check_metric(metric: str, threshold: float) -> None:
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
    check_metric(metric, threshold)
    rows = [r for r in pair_table(predictions, labels) if r[metric] > threshold]
    return sorted(rows, key=lambda r: -r[metric])


OVERLAP_COLUMNS = ["seed_a", "seed_b", "n_a", "n_b", "n_both", "jaccard", "smaller",
                   "above_threshold"]  # fmt: skip
_OVERLAP_TYPES = {
    **{c: "int" for c in ("seed_a", "seed_b", "n_a", "n_b", "n_both")},
    "above_threshold": "bool",
}


def write_overlap_csv(
    path, predictions: dict, labels, threshold: float = DEFAULT_THRESHOLD, metric: str = "smaller"
) -> list[dict]:
    """Write one row per pair of minima (seed_a, seed_b, n_a, n_b, n_both, jaccard, smaller,
    above_threshold) to ``path``; returns the rows."""
    check_metric(metric, threshold)
    rows = [
        {**row, "above_threshold": bool(row[metric] > threshold)}
        for row in pair_table(predictions, labels)
    ]
    write_csv(rows, OVERLAP_COLUMNS, path)
    return rows


def read_overlap_csv(path) -> list[dict]:
    """The rows of :func:`write_overlap_csv`, typed."""
    return frame_records(read_csv(path, OVERLAP_COLUMNS, _OVERLAP_TYPES, "overlap"))


def write_matrix_csv(path, seeds: list, matrix: np.ndarray) -> None:
    """A square CSV: header ``seed, <seeds...>``, one row per seed."""
    rows = [{"seed": s, **dict(zip(map(str, seeds), map(float, r), strict=True))}
            for s, r in zip(seeds, np.asarray(matrix), strict=True)]  # fmt: skip
    write_csv(rows, ["seed", *map(str, seeds)], path)
