"""The minima stage: train one minimum of a row, or import one trained elsewhere."""

from __future__ import annotations

import logging
from pathlib import Path

from ..core.checksums import file_digest
from ..engine.train import exact_bn_metrics, train_minimum
from ..formats.minimum import write_minimum
from ..formats.state_dict import fit_state_dict, read_state_dict
from ..models import build_model
from ..settings.config import row_identity, stage_hash
from .checks import check_network
from .compute import JobRuntime

log = logging.getLogger("nobarriers")


def check_user_network(row: dict, data) -> None:
    """A user's network against the loaded data (its classes and input shape)."""
    if "model" in row:
        check_network(row["model"], row["arch"], data.num_classes, data.input_shape, "none")


def train_job(row: dict, seed: int, out_path, checkpoint, runtime: JobRuntime) -> dict:
    """Train one minimum (resumes from ``checkpoint``); ends with its exact-BN evaluation.
    ``row``: the row's ``minima`` stage settings."""
    chosen, data = runtime.start(row["dataset"])
    check_user_network(row, data)
    return train_minimum(
        row["arch"],
        data,
        {**row["recipe"], **runtime.speed.get("recipe", {})},
        int(seed),
        out_path,
        checkpoint,
        config_hash=stage_hash(row, "minima"),
        device=chosen,
        identity=row_identity(row),
    )


def import_job(row: dict, seed: int, source, out_path, runtime: JobRuntime) -> dict:
    """A minimum trained elsewhere as a minimum file of this row: its weights (every parameter
    the model has, with its shape), BatchNorm statistics recomputed exactly on the row's
    training data, its metrics measured like a trained minimum's, and the source file's name
    and checksum. No learning curve: the table's Epoch column says ``--`` for such a row.
    ``row``: the row's ``minima`` stage settings."""
    import torch

    chosen, data = runtime.start(row["dataset"])
    check_user_network(row, data)
    where = f"minimum {source} (imported as {row['dataset']}/{row['arch']} seed {seed})"
    state = read_state_dict(source)
    model = build_model(row["arch"], data.num_classes, data.input_shape, spec=row.get("model"))
    state = fit_state_dict(model, state, where)
    with torch.no_grad():
        model.load_state_dict(state, strict=False)
    model.to(chosen)
    tensors = (data.x_train, data.y_train, data.x_test, data.y_test)
    train, test = exact_bn_metrics(model, tensors, row["recipe"]["eval_batch_size"], restore=False)
    metrics = {
        "train_loss": float(train["loss"]),
        "train_error": float(train["error"]),
        "test_loss": float(test["loss"]),
        "test_error": float(test["error"]),
    }
    write_minimum(
        out_path,
        model.state_dict(),
        test["predictions"],
        arch=row["arch"],
        dataset=row["dataset"],
        seed=int(seed),
        recipe=row["recipe"],
        metrics=metrics,
        history=[],
        config_hash=stage_hash(row, "minima"),
        num_classes=int(data.num_classes),
        input_shape=tuple(int(s) for s in data.input_shape),
        identity={
            **row_identity(row),
            "imported_from": {"file": Path(source).name, "sha256": file_digest(source)},
        },
    )
    log.info(
        "%s: minimum written to %s | train loss %.4g err %.2f%% | test loss %.4g err %.2f%% "
        "(exact BatchNorm on this row's data)",
        where,
        out_path,
        metrics["train_loss"],
        100 * metrics["train_error"],
        metrics["test_loss"],
        100 * metrics["test_error"],
    )
    return metrics
