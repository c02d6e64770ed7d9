"""Shared pytest fixtures: one torch thread, and the finished tiny workflow run several tests
read (``tiny_run``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from workflow_runs import TINY, planned, snakemake

# Where the environment forbids bytecode caches (PYTHONDONTWRITEBYTECODE=1, as in some sandboxes
# and containers), every workflow job the tests start would compile the package's modules again
# on import (about 1.3 of the 5 s a job needs to start on a loaded 2-core machine). The test runs
# let Python cache them, as it does by default; what is tested does not depend on it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


# The files that run whole workflows, each started at once on a worker of its own (measured on
# a fresh clone, 2 cores: the tiny run and its damaged copy 6.6 min, the README's own-network run
# 3.5, the live SLURM run 5.1, mostly waiting on the scheduler, the CIFAR-format run 3.9). `make
# test` runs one worker more than the machine has cores, and one file per worker at a time
# (`--dist loadfile --no-loadscope-reorder`): a worker that frees up takes the next file in this
# order, so the SLURM run's waits overlap the CPU-bound runs and the hundreds of short tests fill
# in beside them. xdist's own order (most tests first) started these files last, and two workers
# queued three of them behind one another (12.5 min on one worker).
LONGEST_FIRST = ("test_workflow.py", "test_open_world.py", "test_slurm.py",
                 "test_cifar_workflow.py")  # fmt: skip


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's tests keep their order


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    """The test machine is shared: keep torch on one thread."""
    torch.set_num_threads(1)
    yield


class TinyRun:
    """A working directory of its own where ``tests/configs/tiny.yaml`` ran with the checkout's
    Snakefile (results and data relative to it, Snakemake's records in its ``.snakemake``), so
    that a copy (:meth:`copy`) is a finished run too: mtimes and records travel with it."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.results = self.workdir / "results"
        self.row_dir = self.results / "digits" / "mlp-16"
        #: what the first run (a budget of two paths) left, recorded by the fixture
        self.first: dict = {}

    @staticmethod
    def budget(max_paths: int) -> str:
        return f"exploration={{max_paths: {max_paths}, pairs_per_round: 2}}"

    def run(self, max_paths: int = 3, *extra, check: bool = True):
        """A plain run of the tiny config with a budget of `max_paths` paths (2 cores)."""
        return snakemake(*extra, "--cores", "2", "--configfile", TINY, "--config",
                         self.budget(max_paths), workdir=self.workdir, check=check)  # fmt: skip

    def planned(self, *config: str, env=None) -> dict[str, int]:
        """Jobs per rule that a plain run (budget 3) with these ``--config`` values would run."""
        return planned("--cores", "2", "--configfile", TINY, "--config", self.budget(3), *config,
                       workdir=self.workdir, env=env)  # fmt: skip

    def rounds(self, max_paths: int = 3) -> Path:
        return self.row_dir / "rounds" / f"max{max_paths}-per2"

    def landscape(self, max_paths: int = 3) -> dict:
        return json.loads((self.rounds(max_paths) / "landscape.json").read_text())

    def minima(self) -> list[Path]:
        return sorted((self.row_dir / "minima").glob("*.safetensors"))

    def paths(self) -> list[Path]:
        return sorted((self.row_dir / "paths").glob("*.h5"))

    def copy(self, dest: Path) -> TinyRun:
        """A finished run of its own in `dest` (copy2 keeps mtimes; symlinks stay links)."""
        shutil.copytree(self.workdir, dest, symlinks=True)
        return TinyRun(dest)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    """The tiny config run to the end, first with a budget of two paths, then raised to three
    (the raise must add one path and leave the finished minima and paths alone: what the first
    run left is in ``.first``). Read it; a test that changes files works on ``.copy()``."""
    run = TinyRun(tmp_path_factory.mktemp("tiny-run"))
    run.run(2)
    minima, paths = run.minima(), run.paths()
    run.first = {
        "minima": minima,
        "paths": paths,
        "computed": len(run.landscape(2)["computed"]),
        "stamps": {p: p.stat().st_mtime_ns for p in minima + paths},
    }
    run.run(3)
    return run
