"""The paths stage: Algorithm 3's rounds, the AutoNEB path of one pair, the landscape."""

from __future__ import annotations

import logging
from pathlib import Path

from ..autoneb import run_autoneb
from ..autoneb_config import split_autoneb
from ..config import stage_hash
from ..errors import FileFormatError
from ..formats.pathfile import read_path, write_path
from ..formats.records import LandscapeRecord, RoundRecord
from ..landscape import minimum_spanning_tree, next_pairs, single_linkage, ultrametric_bounds
from ..model_energy import ModelEnergy
from ..runtime import provenance
from .common import load_row_minima, start_compute_job

log = logging.getLogger("nobarriers")


def path_seed(a: int, b: int) -> int:
    """A fixed seed per pair, so re-running a path job reproduces it."""
    return 1_000_003 * int(a) + int(b)


def _minimum_losses(minima_paths, row: dict) -> dict[int, float]:
    return {m.seed: float(m.metrics["train_loss"]) for m in load_row_minima(minima_paths, row)}


def _computed_saddles(path_files, row: dict) -> dict[tuple, float]:
    """The saddle of every computed path, keyed by the endpoints the file stores."""
    expected = stage_hash(row, "paths")
    computed = {}
    for p in path_files:
        record = read_path(p, load_pivots=False, expect_config_hash=expected)
        computed[tuple(sorted(map(int, record.endpoints)))] = float(record.saddle_loss)
    return computed


def select_pairs_job(
    row: dict,
    minima_paths,
    path_files,
    out_json,
    round_index: int,
    max_paths: int,
    pairs_per_round: int,
) -> RoundRecord:
    """Algorithm 3, one round: which pairs to connect next (an empty list ends the loop).
    ``row``: the row's ``paths`` stage settings."""
    losses = _minimum_losses(minima_paths, row)
    computed = _computed_saddles(path_files, row)
    pairs = next_pairs(losses, computed, max_new=pairs_per_round, budget=max_paths)
    record = RoundRecord(
        round=int(round_index),
        pairs=[(int(a), int(b)) for a, b in pairs],
        computed_before=len(computed),
        max_paths=int(max_paths),
        pairs_per_round=int(pairs_per_round),
        config_hash=stage_hash(row, "paths"),
    )
    record.write(out_json)
    log.info(
        "round %d: %d paths computed so far, selected %s",
        round_index,
        len(computed),
        record.pairs or "nothing (exploration done)",
    )
    return record


def autoneb_job(
    row: dict, minimum_a, minimum_b, out_path, state_path, data_dir, device, threads
) -> None:
    """Connect two minima with AutoNEB (resumable) and store the path as HDF5.
    ``row``: the row's ``paths`` stage settings."""
    chosen, data = start_compute_job(row["dataset"], data_dir, device, threads)
    ma, mb = load_row_minima([minimum_a, minimum_b], row)
    if ma.arch != row["arch"] or mb.arch != row["arch"]:
        raise FileFormatError(
            f"{minimum_a}, {minimum_b}: architectures {ma.arch}/{mb.arch}, expected {row['arch']}"
        )
    config, energy_settings = split_autoneb(row["autoneb"])
    model = ma.build(data.num_classes, data.input_shape).to(chosen)
    energy = ModelEnergy(
        model, data.x_train, data.y_train, device=chosen, **energy_settings.to_dict()
    )
    start = energy.point_of(model)
    end = energy.point_of(mb.build(data.num_classes, data.input_shape).to(chosen))
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
        config_hash=stage_hash(row, "paths"),
    )
    Path(state_path).unlink(missing_ok=True)


def landscape_job(row: dict, minima_paths, path_files, out_json) -> LandscapeRecord:
    """MST, ultrametric bounds and single-linkage merges of all computed paths.
    ``row``: the row's ``paths`` stage settings."""
    losses = _minimum_losses(minima_paths, row)
    computed = _computed_saddles(path_files, row)
    nodes, bounds = ultrametric_bounds(losses, computed)
    record = LandscapeRecord(
        nodes=[int(n) for n in nodes],
        minimum_loss=losses,
        computed=computed,
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
