"""The evaluation stage: dense exact-BN evaluation of the MST's paths, and their list."""

from __future__ import annotations

import logging

from ..config import stage_hash
from ..evaluate import evaluate_line, evaluate_path
from ..formats.pathfile import read_path, write_evaluation
from ..formats.records import MSTPathsRecord
from ..models import build_model
from ..path_geometry import dense_positions
from ..progress import Progress
from .common import JobRuntime

log = logging.getLogger("nobarriers")


def evaluate_path_job(row: dict, path_file, out_path, runtime: JobRuntime) -> None:
    """Dense exact-BN evaluation of one MST path and of the straight line between its ends.
    ``row``: the row's ``evaluation`` stage settings."""
    chosen, data = runtime.start(row["dataset"])
    record = read_path(path_file, load_pivots=True, expect_config_hash=stage_hash(row, "paths"))
    model = build_model(row["arch"], data.num_classes, data.input_shape).to(chosen)
    settings = row["evaluation"]
    pivots = record.pivots.to(chosen)
    n_dense = len(dense_positions(pivots.shape[0], settings["n_between"]))
    progress = Progress(n_dense + settings["line_points"], "evaluate point")
    dense = evaluate_path(
        model,
        pivots,
        data,
        n_between=settings["n_between"],
        batch_size=settings["batch_size"],
        progress=progress,
    )
    line = evaluate_line(
        model,
        pivots[0],
        pivots[-1],
        settings["line_points"],
        data,
        batch_size=settings["batch_size"],
        progress=progress,
    )
    write_evaluation(
        out_path,
        dense,
        line,
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


def mst_paths_job(evaluated_files, path_files, out_json) -> MSTPathsRecord:
    """The path files and dense evaluations of the final MST, as one list for the report jobs."""
    record = MSTPathsRecord(evaluated=list(evaluated_files), paths=list(path_files))
    record.write(out_json)
    return record
