"""The paths stage: the AutoNEB path of one pair of minima (rules/paths.smk)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..core.atomic import atomic_path
from ..core.errors import FileFormatError
from ..core.progress import Progress
from ..engine.alignment import align as align_models
from ..engine.autoneb import run_autoneb
from ..engine.evaluate import saddle_curve
from ..engine.model_energy import ModelEnergy
from ..formats.pathfile import write_path
from ..models import build_model
from ..nn.path_geometry import dense_positions
from ..nn.points import point_of
from ..settings.autoneb_config import split_autoneb
from ..settings.config import stage_hash
from .common import load_row_minima
from .compute import JobRuntime, check_minimum_on_data

log = logging.getLogger("nobarriers")


def path_seed(a: int, b: int) -> int:
    """A fixed seed per pair, so re-running a path job reproduces it."""
    return 1_000_003 * int(a) + int(b)


#: points on the straight line of the aligned path job's barrier comparison (like the paper's 21)
LINE_POINTS = 21
#: training images of the alignment's function-equality check
CHECK_BATCH = 256


def autoneb_job(
    row: dict,
    minimum_a,
    minimum_b,
    out_path,
    state_path,
    runtime: JobRuntime,
    cycle_times=None,
    minima_hash: str | None = None,
) -> None:
    """Connect two minima with AutoNEB (resumable), measure the path's saddle on the row's
    weighting data, and store the path as HDF5. ``row``: the row's ``paths`` stage settings;
    ``cycle_times``: a TSV for the wall time of every cycle (run-specific, so not in the path
    file, which holds only what identical runs reproduce); ``minima_hash``: the config hash
    the minima must have (default: the row's minima stage's)."""
    _path_job(
        row, minimum_a, minimum_b, out_path, state_path, runtime, cycle_times, False, minima_hash
    )


def repeat_path_job(
    row: dict,
    minimum_a,
    minimum_b,
    out_path,
    state_path,
    runtime: JobRuntime,
    repeat: int,
    cycle_times=None,
) -> None:
    """AutoNEB run ``repeat`` (1, 2, ...) of an MST edge (``comparisons.autoneb_repeats``): the
    same job as :func:`autoneb_job` with another batch seed (:func:`repeat_seed`), so that the
    spread of the saddle over seeds can be reported. The file records ``repeat``. ``row``: the
    row's ``paths`` stage settings."""
    _path_job(row, minimum_a, minimum_b, out_path, state_path, runtime, cycle_times, False,
              repeat=int(repeat))  # fmt: skip


def repeat_seed(a: int, b: int, repeat: int) -> int:
    """The batch seed of AutoNEB run ``repeat`` of a pair (run 0: :func:`path_seed`)."""
    return path_seed(a, b) + 7_919 * int(repeat)


def aligned_path_job(
    row: dict, minimum_a, minimum_b, out_path, state_path, runtime: JobRuntime, cycle_times=None
) -> None:
    """The path of an MST edge after permutation alignment (``alignment: weight_matching``):
    b's neurons permuted to match a's by weight matching -- the same function, checked on a
    batch, BatchNorm buffers included -- then the same AutoNEB as :func:`autoneb_job`. The file
    records the alignment and the straight-line barrier before and after it, both measured like
    the MST weights. ``row``: the row's ``aligned`` stage settings."""
    _path_job(row, minimum_a, minimum_b, out_path, state_path, runtime, cycle_times, True)


def _path_job(
    row,
    minimum_a,
    minimum_b,
    out_path,
    state_path,
    runtime,
    cycle_times,
    align,
    minima_hash=None,
    repeat=0,
):
    chosen, data = runtime.start(row["dataset"])
    ma, mb = load_row_minima([minimum_a, minimum_b], row, expected_hash=minima_hash)
    if ma.arch != row["arch"] or mb.arch != row["arch"]:
        raise FileFormatError(
            f"{minimum_a}, {minimum_b}: architectures {ma.arch}/{mb.arch}, expected {row['arch']}"
        )
    config, energy_settings = split_autoneb({**row["autoneb"], **runtime.speed.get("autoneb", {})})
    model = ma.build(data.num_classes, data.input_shape).to(chosen)
    model_b = mb.build(data.num_classes, data.input_shape).to(chosen)
    for minimum, net in ((ma, model), (mb, model_b)):
        check_minimum_on_data(net, minimum, data, row["recipe"]["eval_batch_size"])
    subset = row["mst"]["weight_subset"]
    seed = repeat_seed(ma.seed, mb.seed, repeat)

    def saddle_of(pivots, n_between, what):
        positions = len(dense_positions(pivots.shape[0], n_between))
        return saddle_curve(
            build_model(row["arch"], data.num_classes, data.input_shape, spec=row.get("model")).to(
                chosen
            ),
            pivots.to(chosen),
            data,
            n_between,
            subset,
            batch_size=row["recipe"]["eval_batch_size"],
            progress=Progress(positions, what),
        )

    extra = {"repeat": repeat} if repeat else {}
    if align:
        straight = LINE_POINTS - 2
        raw_line = saddle_of(torch.stack([point_of(model), point_of(model_b)]), straight, "line")
        result = align_models(
            model, model.state_dict(), model_b.state_dict(), data.x_train[:CHECK_BATCH], seed=seed
        )
        model_b.load_state_dict(result.state)
        line = saddle_of(torch.stack([point_of(model), point_of(model_b)]), straight, "line")
        extra |= {
            "alignment": row["alignment"],
            "alignment_distance_before": result.distance_before,
            "alignment_distance_after": result.distance_after,
            "alignment_sweeps": result.sweeps,
            "alignment_max_output_diff": result.max_output_diff,
            "raw_line_saddle_loss": float(raw_line["train_loss"].max()),
            "aligned_line_saddle_loss": float(line["train_loss"].max()),
        }
        log.info(
            "alignment %d-%d: distance %.4g -> %.4g (%d sweeps, outputs equal to %.2g); "
            "straight-line barrier %.5g -> %.5g",
            ma.seed,
            mb.seed,
            result.distance_before,
            result.distance_after,
            result.sweeps,
            result.max_output_diff,
            extra["raw_line_saddle_loss"],
            extra["aligned_line_saddle_loss"],
        )
    energy = ModelEnergy.from_settings(
        model, data.x_train, data.y_train, energy_settings, data.augment, device=chosen
    )
    start = energy.point_of(model)
    end = energy.point_of(model_b)
    result = run_autoneb(energy, start, end, config, state_path=state_path, seed=seed)
    # the MST weight: every pair of the row measured on the same data, exact BatchNorm
    saddle = saddle_of(result.pivots, config.n_between, "saddle point")
    log.info(
        "path %d-%d: saddle training loss %.5g on %s (AutoNEB's estimate %.5g)",
        ma.seed,
        mb.seed,
        saddle["train_loss"].max(),
        "the full training set" if subset is None else f"a fixed subset of {subset}",
        result.saddle_loss,
    )
    write_path(
        out_path,
        result,
        saddle=saddle,
        weight_subset=subset,
        endpoints=(ma.seed, mb.seed),
        config=row,
        seed=seed,
        dataset=row["dataset"],
        arch=row["arch"],
        config_hash=stage_hash(row, "aligned" if align else "paths"),
        extra_attrs=extra,
    )
    if cycle_times is not None:
        write_cycle_times(cycle_times, result.history)
    Path(state_path).unlink(missing_ok=True)


def write_cycle_times(path, history) -> None:
    """The wall time of every AutoNEB cycle, one line each (cycle, steps, pivots, seconds)."""
    lines = ["cycle\tsteps\tn_pivots\twall_s"]
    lines += [f"{r.cycle}\t{r.steps}\t{r.n_pivots}\t{r.wall_s:.3f}" for r in history]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
