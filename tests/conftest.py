"""Shared pytest fixtures: one torch thread, and the finished tiny workflow run several tests
read (``tiny_run``)."""

from __future__ import annotations

import contextlib
import fcntl
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


# The files that run whole workflows, each started at once on a worker of its own, and in
# each its whole-workflow test first. `make test` runs two workers more than the machine has
# cores, one file per worker at a time (`--dist loadfile --no-loadscope-reorder`). xdist gives a
# worker its next file as soon as two or fewer of its tests are pending, so a whole run near the
# end of its file had the next file queued behind it (measured: the CIFAR-format run waited
# 8 min behind the own-network run while the other workers ran short tests); xdist's own order
# (most tests first) started these files last.
LONGEST_FIRST = {
    "test_workflow.py": "test_raising_the_budget_extends_the_loop_and_keeps_what_is_finished",
    "test_open_world.py": "test_own_network_data_and_minima_through_the_whole_workflow",
    "test_slurm.py": "test_real_workflow_in_job_arrays_survives_a_killed_controller",
    "test_cifar_workflow.py": "test_cifar_format_batchnorm_networks_end_to_end",
}
#: tests that change files of the finished tiny run: they wait for it (test_workflow.py's worker
#: builds it), so they come halfway through the other files, when it is about done, rather than
#: holding a worker idle from the start (measured: 3 min) or adding a tail at the end
AFTER_THE_TINY_RUN = "test_workflow_files.py"


def pytest_collection_modifyitems(items):
    others = [n for n in dict.fromkeys(i.path.name for i in items)
              if n not in LONGEST_FIRST and n != AFTER_THE_TINY_RUN]  # fmt: skip
    middle = len(others) // 2
    files = [*LONGEST_FIRST, *others[:middle], AFTER_THE_TINY_RUN, *others[middle:]]

    def rank(item):
        name = item.path.name
        return (files.index(name), item.originalname != LONGEST_FIRST.get(name))

    items.sort(key=rank)  # stable: the other tests keep their order


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

    def run(self, max_paths: int = 3, *extra, targets=(), check: bool = True):
        """A plain run of the tiny config with a budget of `max_paths` paths (2 cores), to
        `targets` (default: everything)."""
        return snakemake(*extra, "--cores", "2", "--configfile", TINY, "--config",
                         self.budget(max_paths), *(("--", *targets) if targets else ()),
                         workdir=self.workdir, check=check)  # fmt: skip

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


@contextlib.contextmanager
def _exclusive(lock: Path):
    """One process at a time (xdist's workers are processes): an flock held until exit."""
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, worker_id) -> TinyRun:
    """The tiny config run to the end, first with a budget of two paths, then raised to three
    (the raise must add one path and leave the finished minima and paths alone: what the first
    run left is in ``.first``). Read it; a test that changes files works on ``.copy()``.

    Built once per session, not once per worker: the first xdist worker to ask builds it in the
    session's shared temporary folder while the others wait, so that the tests reading it can
    run on several workers (test_workflow.py, test_workflow_files.py)."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # one folder for every worker of this session
    run = TinyRun(shared / "tiny-run")
    record = shared / "tiny-run.json"
    with _exclusive(shared / "tiny-run.lock"):
        if not record.is_file():
            shutil.rmtree(run.workdir, ignore_errors=True)  # what a failed attempt left
            run.workdir.mkdir()
            # the first run stops at the row's table row: its figures would be drawn again after
            # the raise (the MST and the table change), so only the second run draws them
            run.run(2, targets=[run.row_dir.relative_to(run.workdir) / "table_row.json"])
            minima, paths = run.minima(), run.paths()
            first = {  # what the first run left, before the raise
                "minima": [str(p) for p in minima],
                "paths": [str(p) for p in paths],
                "computed": len(run.landscape(2)["computed"]),
                "stamps": {str(p): p.stat().st_mtime_ns for p in minima + paths},
            }
            run.run(3)
            record.write_text(json.dumps(first))
    first = json.loads(record.read_text())
    run.first = {
        "minima": [Path(p) for p in first["minima"]],
        "paths": [Path(p) for p in first["paths"]],
        "computed": first["computed"],
        "stamps": {Path(p): stamp for p, stamp in first["stamps"].items()},
    }
    return run
