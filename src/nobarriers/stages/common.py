"""What the stages share: a compute job's runtime and data, and reading a row's minima."""

from __future__ import annotations

from ..config import stage_hash
from ..data import load_dataset
from ..formats.minimum import Minimum, load_minimum
from ..runtime import configure_runtime


def start_compute_job(dataset: str, data_dir, device: str, threads: int):
    """Threads and device from what Snakemake/SLURM gave the job, and the dataset on it."""
    chosen = configure_runtime(threads, device)
    return chosen, load_dataset(dataset, data_dir, device=chosen)


def load_row_minima(paths, row: dict) -> list[Minimum]:
    """The minimum files of a row, each checked against the row's training settings."""
    expected = stage_hash(row, "minima")
    return [load_minimum(p, expect_config_hash=expected) for p in paths]
