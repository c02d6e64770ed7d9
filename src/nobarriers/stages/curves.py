"""The curves stage: a parametric curve between two minima (``curves.families``; Garipov et al.
2018), trained and evaluated like an AutoNEB path (rules/curves.smk)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import atomic_path
from ..core.progress import Progress
from ..engine.curves import train_curve
from ..engine.evaluate import evaluate_path
from ..formats.pathfile import write_evaluation, write_path
from ..models import build_model
from ..settings.config import stage_hash
from .common import load_row_minima
from .compute import JobRuntime, check_minimum_on_data
from .paths import path_seed

log = logging.getLogger("nobarriers")


class _Curve:
    """What write_path stores of a curve: its control points (w1, the bend, w2)."""

    def __init__(self, control, history):
        self.pivots = control
        self.target_weights = np.array([0.5, 0.5])
        self.history = []
        self.saddle_loss = float("nan")  # AutoNEB's own estimate: none for a curve
        self.training = history


def curve_job(
    row: dict,
    kind: str,
    minimum_a,
    minimum_b,
    out_curve,
    out_evaluation,
    state_path,
    runtime: JobRuntime,
    times=None,
) -> None:
    """Train a ``kind`` curve between two minima with the row's recipe (``curves.epochs``
    epochs), then evaluate it at ``curves.n_points`` equally spaced t exactly as AutoNEB paths
    are evaluated (exact BatchNorm at every point, full training and test sets). Writes the
    curve as a path file (pivots = the control points w1, bend, w2; the saddle curve = the
    training loss along it; attributes: kind, cost, training history) and its dense evaluation;
    ``times``: a TSV of the training's wall time (run-specific, so not in the files). ``row``:
    the row's ``curves`` stage settings."""
    chosen, data = runtime.start(row["dataset"])
    ma, mb = load_row_minima([minimum_a, minimum_b], row)
    model = ma.build(data.num_classes, data.input_shape).to(chosen)
    model_b = mb.build(data.num_classes, data.input_shape).to(chosen)
    batch_size = row["recipe"]["eval_batch_size"]
    for minimum, net in ((ma, model), (mb, model_b)):
        check_minimum_on_data(net, minimum, data, batch_size)
    from ..nn.points import point_of

    w1, w2 = point_of(model), point_of(model_b)
    settings = dict(row["recipe"])
    if row["curves"]["epochs"] is not None:
        settings["epochs"] = row["curves"]["epochs"]
    result = train_curve(
        kind,
        model,
        w1,
        w2,
        settings,
        seed=path_seed(ma.seed, mb.seed),
        data=(data.x_train, data.y_train),
        augment=data.augment,
        state_path=state_path,
        config_hash=stage_hash(row, "curves"),
        device=chosen,
    )
    ts = np.linspace(0.0, 1.0, row["curves"]["n_points"])
    points = result.points(ts)
    fresh = build_model(row["arch"], data.num_classes, data.input_shape, spec=row.get("model"))
    dense = evaluate_path(
        fresh.to(chosen),
        points.to(chosen),
        data,
        n_between=0,
        batch_size=batch_size,
        progress=Progress(len(ts), f"{kind} curve point"),
    )
    dense["t"] = ts  # the curve's own parameter, not the point index
    length = float(torch.linalg.vector_norm(points[1:] - points[:-1], dim=1).sum())
    attrs = {
        "curve_kind": kind,
        "curve_epochs": int(settings["epochs"]),
        "curve_length": length,
        "curve_gradient_evaluations": int(result.n_gradient_evaluations),
        "curve_sample_gradients": int(result.n_sample_gradients),
        "curve_training": json.dumps(
            [{k: v for k, v in e.items() if k != "wall_s"} for e in result.history]
        ),
    }
    common = {
        "endpoints": (ma.seed, mb.seed),
        "config": row,
        "seed": path_seed(ma.seed, mb.seed),
        "dataset": row["dataset"],
        "arch": row["arch"],
        "config_hash": stage_hash(row, "curves"),
        "extra_attrs": attrs,
    }
    control = result.control_points().detach().cpu()
    saddle = {"t": ts, "train_loss": dense["train_loss"]}
    write_path(out_curve, _Curve(control, result.history), saddle=saddle, weight_subset=None,
               **common)  # fmt: skip
    write_evaluation(out_evaluation, dense, None, **common)
    if times is not None:
        with atomic_path(times) as tmp:
            tmp.write_text(f"kind\tepochs\twall_s\n{kind}\t{settings['epochs']}\t"
                           f"{result.wall_s:.3f}\n")  # fmt: skip
    Path(state_path).unlink(missing_ok=True)
    log.info(
        "%s curve %d-%d: max training loss %.5g along it (%d points), %d gradient evaluations",
        kind,
        ma.seed,
        mb.seed,
        float(np.max(dense["train_loss"])),
        len(ts),
        result.n_gradient_evaluations,
    )
