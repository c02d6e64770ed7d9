"""The per-pair table ``pairs.csv``: one row per computed path of a row.

Columns: the pair and its minima's training losses, the path's saddle (the MST weight) and
AutoNEB's own estimate of it, MST membership, the
ultrametric upper bound (``landscape.ultrametric_bounds``), and, where evaluated, the maxima of
every metric along the dense exact-BN evaluation of the path and along the straight line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..core.metrics import METRICS
from ..formats.csv_tables import frame_records, read_csv, write_csv
from .learning_curves import field_of

PAIR_DETAIL_COLUMNS = [
    "dataset",
    "architecture",
    "i",
    "j",
    "min_i_train_loss",
    "min_j_train_loss",
    "saddle_train_loss",
    "autoneb_saddle_loss",
    "on_mst",
    "ultrametric_bound",
    "dense_train_loss",
    "dense_train_error",
    "dense_test_loss",
    "dense_test_error",
    "dense_test_loss_at_saddle",
    "dense_test_error_at_saddle",
    "linear_train_loss",
    "linear_train_error",
    "linear_test_loss",
    "linear_test_error",
    "endpoint_i_test_error",
    "endpoint_j_test_error",
    "ensemble_endpoints_test_error",
    "ensemble_size",
    "ensemble_path_test_error",
    "n_pivots",
    "path_length",
    "aligned_saddle_train_loss",
    "aligned_n_pivots",
    "aligned_path_length",
    "raw_line_train_loss",
    "aligned_line_train_loss",
    "alignment_distance_before",
    "alignment_distance_after",
    "hessian_index",
    "hessian_lambda_min",
    "hessian_lambda_max",
    "hessian_gap",
    "hessian_cosine_to_path",
    "hessian_grad_norm",
    "hessian_converged",
    "in_sample",
    "repeats",
    "repeat_saddle_min",
    "repeat_saddle_max",
    "repeat_saddle_spread",
    "bezier_train_loss",
    "bezier_test_error",
    "bezier_length",
    "polychain_train_loss",
    "polychain_test_error",
    "polychain_length",
    "config_hash",
]

#: the Hessian at a path's highest point (evaluation.hessian_subset)
HESSIAN_COLUMNS = ("hessian_index", "hessian_lambda_min", "hessian_lambda_max", "hessian_gap",
                   "hessian_cosine_to_path", "hessian_grad_norm", "hessian_converged")  # fmt: skip
#: comparisons: the off-MST sample, AutoNEB's repeated runs, the curves (report.comparisons)
COMPARISON_COLUMNS = ("in_sample", "repeats", "repeat_saddle_min", "repeat_saddle_max",
                      "repeat_saddle_spread", "bezier_train_loss", "bezier_test_error",
                      "bezier_length", "polychain_train_loss", "polychain_test_error",
                      "polychain_length")  # fmt: skip
#: the test metrics at the point of the dense evaluation where the training loss is highest
SADDLE_POINT_COLUMNS = ("dense_test_loss_at_saddle", "dense_test_error_at_saddle")
#: what the MST paths report about themselves and their aligned twins (``alignment``)
PATH_COLUMNS = ("n_pivots", "path_length")
ALIGNED_COLUMNS = ("aligned_saddle_train_loss", "aligned_n_pivots", "aligned_path_length",
                   "raw_line_train_loss", "aligned_line_train_loss", "alignment_distance_before",
                   "alignment_distance_after")  # fmt: skip

_PAIR_TYPES = {
    **{c: "str" for c in ("dataset", "architecture", "config_hash")},
    "i": "int",
    "j": "int",
    "ensemble_size": "int",
    "n_pivots": "int",
    "aligned_n_pivots": "int",
    "hessian_index": "int",
    "repeats": "int",
    "on_mst": "bool",
    "hessian_converged": "bool",
    "in_sample": "bool",
}


def _pair(key) -> tuple:
    i, j = key
    return (i, j) if i < j else (j, i)


def _lookup(mapping: Mapping | None, pair: tuple):
    if not mapping:
        return None
    if pair in mapping:
        return mapping[pair]
    return mapping.get((pair[1], pair[0]))


def pair_details(
    dataset: str,
    arch: str,
    computed: Mapping[tuple, float],
    mst_edges: Sequence[tuple],
    *,
    minimum_loss: Mapping | None = None,
    bounds: tuple,
    estimates: Mapping[tuple, float] | None = None,
    dense: Mapping[tuple, Mapping] | None = None,
    linear: Mapping[tuple, Mapping] | None = None,
    ensembles: Mapping[tuple, Mapping | None] | None = None,
    paths: Mapping[tuple, Mapping] | None = None,
    aligned: Mapping[tuple, Mapping] | None = None,
    at_saddle: Mapping[tuple, Mapping] | None = None,
    hessian: Mapping[tuple, Mapping] | None = None,
    comparisons: Mapping[tuple, Mapping] | None = None,
    config_hash: str | None = None,
) -> list[dict]:
    """One row per computed path (columns: ``PAIR_DETAIL_COLUMNS``), sorted by pair.

    ``computed[(i, j)]``: the path's saddle training loss, the MST weight (``mst.weight_subset``
    data, exact BN); ``estimates[(i, j)]``: AutoNEB's own estimate (last cycle, insertion
    subset); ``mst_edges``: ``[(i, j, saddle)]`` (``landscape.minimum_spanning_tree``);
    ``minimum_loss[seed]``: train loss of each minimum; ``bounds``: ``(nodes, matrix)`` of
    ``landscape.ultrametric_bounds``;
    ``dense[(i, j)]`` / ``linear[(i, j)]``: the maxima
    ``{train_loss, train_error, test_loss, test_error}`` along the densely evaluated path / the
    straight segment (MST edges only, or any pair that has them); ``ensembles[(i, j)]``: the
    path's ensembles (``evaluate.path_ensembles``: each endpoint alone, K = 2 and the largest
    K); ``paths[(i, j)]``: ``PATH_COLUMNS`` of the MST paths; ``aligned[(i, j)]``:
    ``ALIGNED_COLUMNS`` of their aligned twins (``alignment``); ``at_saddle[(i, j)]``:
    ``SADDLE_POINT_COLUMNS``, the test metrics where the training loss peaks (Table B.1's Sadd
    columns take each metric's own maximum); ``hessian[(i, j)]``: ``HESSIAN_COLUMNS``;
    ``comparisons[(i, j)]``: ``COMPARISON_COLUMNS``. Missing values stay empty.
    """
    on_mst = {_pair((a, b)) for a, b, _ in mst_edges}
    nodes, matrix = bounds
    index = {n: k for k, n in enumerate(nodes)}
    matrix = np.asarray(matrix, dtype=float)
    rows = []
    for key in sorted({_pair(k) for k in computed}):
        i, j = key
        bound = float(matrix[index[i], index[j]])
        row = {
            "dataset": dataset,
            "architecture": arch,
            "i": i,
            "j": j,
            "min_i_train_loss": None if minimum_loss is None else float(minimum_loss[i]),
            "min_j_train_loss": None if minimum_loss is None else float(minimum_loss[j]),
            "saddle_train_loss": float(_lookup(computed, key)),
            "autoneb_saddle_loss": None if estimates is None else float(_lookup(estimates, key)),
            "on_mst": key in on_mst,
            "ultrametric_bound": bound,
            "config_hash": config_hash,
        }
        for prefix, source in [("dense", dense), ("linear", linear)]:
            values = _lookup(source, key)
            for metric in METRICS:
                v = None if values is None else field_of(values, metric)
                row[f"{prefix}_{metric}"] = None if v is None else float(v)
        row.update(_ensemble_columns(_lookup(ensembles, key)))
        sources = ((PATH_COLUMNS, paths), (ALIGNED_COLUMNS, aligned),
                   (SADDLE_POINT_COLUMNS, at_saddle), (HESSIAN_COLUMNS, hessian),
                   (COMPARISON_COLUMNS, comparisons))  # fmt: skip
        for columns, source in sources:
            values = _lookup(source, key) or {}
            row.update({c: values.get(c) for c in columns})
        rows.append(row)
    return rows


def _ensemble_columns(ensembles: Mapping | None) -> dict:
    columns = ("endpoint_i_test_error", "endpoint_j_test_error", "ensemble_endpoints_test_error",
               "ensemble_size", "ensemble_path_test_error")  # fmt: skip
    if ensembles is None:
        return dict.fromkeys(columns)
    sizes = [int(k) for k in ensembles["sizes"]]
    error = dict(zip(sizes, (float(e) for e in ensembles["test_error"]), strict=True))
    i_alone, j_alone = (float(e) for e in ensembles["endpoint_test_error"])
    return dict(zip(columns, (i_alone, j_alone, error[2], max(sizes), error[max(sizes)]),
                    strict=True))  # fmt: skip


def write_pair_details(rows: Sequence[Mapping], csv_path) -> None:
    """CSV of :func:`pair_details` rows (full precision)."""
    write_csv(list(rows), PAIR_DETAIL_COLUMNS, csv_path)


def read_pair_details(csv_path) -> list[dict]:
    """Rows of a pair-detail CSV, typed (pair ids as int, ``on_mst`` as bool)."""
    return frame_records(read_csv(csv_path, PAIR_DETAIL_COLUMNS, _PAIR_TYPES, "pair detail"))
