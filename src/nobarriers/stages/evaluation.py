"""The evaluation stage: dense exact-BN evaluation of the MST's paths and their list, and the
Figure 1-style slice of the loss surface (rules/evaluation.smk)."""

from __future__ import annotations

import json
import logging

import numpy as np
import torch

from ..core.progress import Progress
from ..engine.evaluate import evaluate_line, evaluate_path, evaluate_point, path_ensembles
from ..formats.pathfile import read_path, write_evaluation
from ..formats.records import LandscapeRecord, MSTPathsRecord
from ..models import build_model
from ..nn.path_geometry import dense_positions
from ..report.labels import arch_label, dataset_label
from ..settings.config import stage_hash
from .common import evaluations_of, highest_mst_path
from .compute import JobRuntime

log = logging.getLogger("nobarriers")


def evaluate_path_job(row: dict, path_file, out_path, runtime: JobRuntime) -> None:
    """Dense exact-BN evaluation of one MST path and of the straight line between its ends.
    ``row``: the row's ``evaluation`` stage settings."""
    chosen, data = runtime.start(row["dataset"])
    record = read_path(path_file, load_pivots=True, expect_config_hash=stage_hash(row, "paths"))
    model = build_model(row["arch"], data.num_classes, data.input_shape, spec=row.get("model")).to(
        chosen
    )
    settings = row["evaluation"]
    pivots = torch.from_numpy(record.pivots).to(chosen)
    n_dense = len(dense_positions(pivots.shape[0], settings["n_between"]))
    sizes = settings["ensemble_sizes"]
    members = {round(f, 12) for k in {*sizes, 2} for f in np.linspace(0, 1, k)} if sizes else ()
    n_members = len(members)
    progress = Progress(n_dense + settings["line_points"] + n_members, "evaluate point")
    dense = evaluate_path(
        model,
        pivots,
        data,
        n_between=settings["n_between"],
        batch_size=row["recipe"]["eval_batch_size"],
        progress=progress,
    )
    line = evaluate_line(
        model,
        pivots[0],
        pivots[-1],
        settings["line_points"],
        data,
        batch_size=row["recipe"]["eval_batch_size"],
        progress=progress,
    )
    ensembles = None
    if sizes:
        ensembles = path_ensembles(
            model,
            pivots,
            data,
            sizes,
            batch_size=row["recipe"]["eval_batch_size"],
            progress=progress,
        )
        log.info(
            "path %s: ensembles along the path, test error %s (endpoints alone %s)",
            path_file,
            ", ".join(
                f"K={k} {e:.4g}"
                for k, e in zip(ensembles["sizes"], ensembles["test_error"], strict=True)
            ),
            " / ".join(f"{e:.4g}" for e in ensembles["endpoint_test_error"]),
        )
    extra = {}
    if settings["hessian_subset"]:
        spectrum = saddle_spectrum(row, record, model, pivots, data, settings)
        extra["hessian"] = json.dumps(spectrum.to_json(), sort_keys=True)
        log.info("path %s: Hessian at its highest point: %s", path_file, spectrum.message)
    write_evaluation(
        out_path,
        dense,
        line,
        extra_attrs=extra,
        ensembles=ensembles,
        endpoints=record.endpoints,
        config=row,
        seed=record.seed,
        dataset=row["dataset"],
        arch=row["arch"],
        config_hash=stage_hash(row, "evaluation"),
    )
    log.info(
        "path %s: saddle train loss %.4g (AutoNEB estimate %.4g), straight line %.4g",
        path_file,
        dense["train_loss"].max(),
        record.saddle_loss,
        line["train_loss"].max(),
    )


def saddle_spectrum(row: dict, record, model, pivots, data, settings: dict):
    """The Hessian spectrum at a path's highest point (``evaluation.hessian_subset``): the
    climbing pivot of its last cycle, else the maximum of its saddle curve; the NEB's loss
    (its weight decay), exact BatchNorm on the subset."""
    from ..engine.hessian import highest_point, network_spectrum

    last = record.history[-1] if record.history else None
    climbing = None if last is None else last.climbing
    where = highest_point(pivots, record.saddle["t"], record.saddle["train_loss"], climbing)
    return network_spectrum(
        model,
        where.point,
        data.x_train,
        data.y_train,
        where.tangent,
        subset=settings["hessian_subset"],
        batch_size=row["recipe"]["eval_batch_size"],
        weight_decay=row["autoneb"]["weight_decay"],
        eps=settings["hessian_eps"],
    )


def slice_job(
    row: dict,
    landscape_json,
    mst_json,
    png,
    pdf,
    resolution: int,
    margin: float,
    runtime: JobRuntime,
) -> None:
    """Figure 1 style: training loss on the plane through both minima and the path's mean.
    ``row``: the row's ``evaluation`` stage settings."""
    # imported here: matplotlib costs every evaluation job 0.7 s to import, and only this draws
    from ..report import path_figures

    chosen, data = runtime.start(row["dataset"])
    landscape = LandscapeRecord.read(landscape_json)
    listing = MSTPathsRecord.read(mst_json)
    (a, b), record = highest_mst_path(landscape, listing.paths, row)
    evaluation = evaluations_of(listing.evaluated, row)[(a, b)]
    pivots = record.pivots.astype(np.float64)
    origin, end = pivots[0], pivots[-1]
    basis = path_figures.plane_basis(origin, end, pivots.mean(axis=0))
    path_uv = path_figures.project_to_plane(pivots, origin, basis)
    grid_u, grid_v = path_figures.plane_grid(path_uv, n=resolution, margin=margin)
    model = build_model(row["arch"], data.num_classes, data.input_shape, spec=row.get("model")).to(
        chosen
    )
    loss = np.empty((len(grid_v), len(grid_u)))
    progress = Progress(loss.size, "slice point")
    batch_size = row["recipe"]["eval_batch_size"]
    for iv, v in enumerate(grid_v):
        for iu, u in enumerate(grid_u):
            plane = path_figures.plane_point(origin, basis, u, v)
            point = torch.as_tensor(plane, dtype=torch.float32)
            loss[iv, iu] = evaluate_point(model, point, data, batch_size)["train_loss"]
            progress.update(train_loss=float(loss[iv, iu]))
    dense, line = evaluation.dense, evaluation.line
    path_figures.plot_plane_slice(
        grid_u,
        grid_v,
        loss,
        path_uv,
        path_uv[[0, -1]],
        png,
        pdf,
        f"{dataset_label(row['dataset'])} {arch_label(row['arch'])}: training loss on the "
        f"plane through minima {a}, {b} and the path mean",
        path_profile=(dense["t"] / dense["t"].max(), dense["train_loss"]),
        line_profile=(line["t"], line["train_loss"]),
        config_hash=stage_hash(row, "evaluation"),
    )


#: draws of K independently trained minima per ensemble size (seeded; all draws when fewer)
INDEPENDENT_DRAWS = 10


def independent_ensembles_job(row: dict, minima_paths, out_json, runtime: JobRuntime):
    """Ensembles of K independently trained minima of the row, for each K of
    ``evaluation.ensemble_sizes`` (and 2): the mean test error over up to
    :data:`INDEPENDENT_DRAWS` seeded draws of K minima, each minimum with its exact BatchNorm
    statistics, probabilities averaged -- what the ensembles along the paths are measured
    against, beside their own endpoints. ``row``: the row's ``evaluation`` stage settings."""
    from itertools import combinations

    from ..formats.records import IndependentEnsembles
    from ..nn.points import predict_probabilities
    from .common import load_row_minima

    chosen, data = runtime.start(row["dataset"])
    minima = load_row_minima(minima_paths, row)
    batch_size = row["recipe"]["eval_batch_size"]
    probabilities = [
        predict_probabilities(
            m.build(data.num_classes, data.input_shape).to(chosen), data.x_test, batch_size
        )  # fmt: skip
        for m in minima
    ]
    labels = data.y_test.cpu()
    rng = np.random.default_rng(0)
    sizes = sorted({2, *row["evaluation"]["ensemble_sizes"]})
    errors, draws = [], []
    for k in sizes:
        if k > len(minima):
            errors.append(None), draws.append(0)
            continue
        every = list(combinations(range(len(minima)), k))
        chosen_sets = (
            every if len(every) <= INDEPENDENT_DRAWS
            else [every[i] for i in rng.choice(len(every), INDEPENDENT_DRAWS, replace=False)]
        )  # fmt: skip
        values = [
            float(
                (torch.stack([probabilities[i] for i in s]).mean(0).argmax(1) != labels)
                .double()
                .mean()
            )  # fmt: skip
            for s in chosen_sets
        ]
        errors.append(float(np.mean(values)))
        draws.append(len(chosen_sets))
    record = IndependentEnsembles(
        sizes=sizes, test_error=errors, draws=draws, config_hash=stage_hash(row, "evaluation")
    )
    record.write(out_json)
    log.info("independent ensembles: %s", ", ".join(
        f"K={k} {e:.4g}" for k, e in zip(sizes, errors, strict=True) if e is not None))  # fmt: skip
    return record
