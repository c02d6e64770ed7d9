"""The exploration stage: Algorithm 3's rounds and the landscape of the computed paths
(rules/exploration.smk). Torch-free: it reads numbers, never tensors."""

from __future__ import annotations

import logging

from ..core.provenance import provenance
from ..engine.landscape import minimum_spanning_tree, next_pairs, single_linkage, ultrametric_bounds
from ..formats.pathfile import read_path
from ..formats.records import LandscapeRecord, MSTPathsRecord, RoundRecord
from ..settings.config import stage_hash
from .common import load_row_minima

log = logging.getLogger("nobarriers")


def _minimum_losses(minima_paths, row: dict) -> dict[int, float]:
    return {
        m.seed: float(m.metrics["train_loss"])
        for m in load_row_minima(minima_paths, row, tensors=False)
    }


def _computed_saddles(path_files, row: dict) -> tuple[dict, dict]:
    """The saddle (the MST weight) and AutoNEB's own estimate of every computed path, keyed by
    the endpoints the file stores."""
    expected = stage_hash(row, "paths")
    weights, estimates = {}, {}
    for p in path_files:
        record = read_path(p, load_pivots=False, expect_config_hash=expected)
        pair = tuple(sorted(map(int, record.endpoints)))
        weights[pair] = float(record.saddle_loss)
        estimates[pair] = float(record.autoneb_saddle_loss)
    return weights, estimates


def select_pairs_job(
    row: dict, minima_paths, path_files, out_json, round_index: int, exploration: dict
) -> RoundRecord:
    """Algorithm 3, one round: which pairs to connect next (an empty list ends the loop).
    ``row``: the row's ``paths`` stage settings; ``exploration``: the config's section (budget,
    pairs per round, early stop and its scale)."""
    losses = _minimum_losses(minima_paths, row)
    computed, _ = _computed_saddles(path_files, row)
    max_paths, per_round = exploration["max_paths"], exploration["pairs_per_round"]
    rtol = exploration["similar_saddles_rtol"]
    pairs = next_pairs(
        losses,
        computed,
        max_new=per_round,
        budget=max_paths,
        similar_rtol=rtol,
        similar_scale=exploration["similar_saddles_scale"],
    )
    record = RoundRecord(
        round=int(round_index),
        pairs=[(int(a), int(b)) for a, b in pairs],
        computed_before=len(computed),
        max_paths=int(max_paths),
        pairs_per_round=int(per_round or 0),
        config_hash=stage_hash(row, "paths"),
    )
    record.write(out_json)
    if record.pairs:
        done = f"selected {record.pairs}"
    elif len(computed) >= max_paths:
        done = f"nothing: the budget of {max_paths} paths is spent"
    elif len(computed) < len(losses) * (len(losses) - 1) // 2:
        done = (
            f"nothing: the tree holds only similar {exploration['similar_saddles_scale']}s "
            f"(rtol {rtol}): the paper's early stop"
        )
    else:
        done = "nothing: every pair has a path"
    log.info("round %d: %d paths computed so far, %s", round_index, len(computed), done)
    return record


def landscape_job(row: dict, minima_paths, path_files, out_json) -> LandscapeRecord:
    """MST, ultrametric bounds and single-linkage merges of all computed paths.
    ``row``: the row's ``paths`` stage settings."""
    losses = _minimum_losses(minima_paths, row)
    computed, estimates = _computed_saddles(path_files, row)
    nodes, bounds = ultrametric_bounds(losses, computed)
    record = LandscapeRecord(
        nodes=[int(n) for n in nodes],
        minimum_loss=losses,
        computed=computed,
        autoneb_saddle=estimates,
        mst=minimum_spanning_tree(losses, computed),
        bounds=bounds.tolist(),
        merges=single_linkage(nodes, bounds),
        config_hash=stage_hash(row, "paths"),
        provenance=provenance(),
    )
    record.write(out_json)
    log.info(
        "landscape: %d minima, %d paths, MST saddles %s",
        len(nodes),
        len(computed),
        [round(e[2], 4) for e in record.mst],
    )
    return record


def mst_paths_job(
    evaluated_files,
    path_files,
    out_json,
    aligned_files=(),
    curves=(),
    curve_evaluations=(),
    repeats=(),
) -> MSTPathsRecord:
    """The files of the final MST's edges (and of the comparison sample's pairs): paths, dense
    evaluations, aligned paths, curves and their evaluations, repeated runs -- one list for the
    report jobs."""
    record = MSTPathsRecord(
        evaluated=list(evaluated_files),
        paths=list(path_files),
        aligned=list(aligned_files),
        curves=list(curves),
        curve_evaluations=list(curve_evaluations),
        repeats=list(repeats),
    )
    record.write(out_json)
    return record
