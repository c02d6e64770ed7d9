"""The minima stage: train one minimum of a row."""

from __future__ import annotations

from ..config import stage_hash
from ..train import train_minimum
from .compute import JobRuntime


def train_job(row: dict, seed: int, out_path, checkpoint, runtime: JobRuntime) -> dict:
    """Train one minimum (resumes from ``checkpoint``); ends with its exact-BN evaluation.
    ``row``: the row's ``minima`` stage settings."""
    chosen, data = runtime.start(row["dataset"])
    return train_minimum(
        row["arch"],
        data,
        {**row["recipe"], **runtime.speed.get("recipe", {})},
        int(seed),
        out_path,
        checkpoint,
        config_hash=stage_hash(row, "minima"),
        device=chosen,
    )
