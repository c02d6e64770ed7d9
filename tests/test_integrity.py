"""Writes that fail name the file and the space left; written files honour the umask; a
results folder that is not the workflow's is refused before anything in it is overwritten."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest
from workflow_runs import ROOT, SNAKEMAKE, TINY, snakemake

from nobarriers.core.atomic import WriteError, atomic_path
from nobarriers.core.results_lock import ResultsLockedError, check_results_dir, hold_results_lock


def test_files_get_the_permissions_of_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "table_b1.csv") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "table_b1.csv").stat().st_mode) == 0o644


@pytest.mark.parametrize("writer", ["text", "torch", "hdf5"])
def test_a_full_disk_names_the_file_and_the_free_space(tmp_path, writer):
    """A file-size limit (RLIMIT_FSIZE, what a full disk or a quota does to a writer) under
    each kind of writer: the error names the file and the free space; no torn file is left."""
    code = f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        import numpy as np, torch
        from nobarriers.core.atomic import WriteError, atomic_path
        from nobarriers.formats import torchfile
        big = torch.zeros(100_000)
        try:
            if {writer!r} == "text":
                with atomic_path("out.json") as tmp:
                    tmp.write_text("x" * 100_000)
            elif {writer!r} == "torch":
                torchfile.save("out.json", {{"format": "x", "tensor": big}})
            else:
                import h5py
                with atomic_path("out.json") as tmp, h5py.File(tmp, "w") as f:
                    f["a"] = np.zeros(100_000)
        except WriteError as exc:
            print("REFUSED", exc)
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "REFUSED cannot write out.json" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "free on its file system" in proc.stdout
    assert not (tmp_path / "out.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary file left behind


def test_other_errors_inside_a_write_are_not_disguised(tmp_path):
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "x") as tmp:
            tmp.write_text("partial")
            raise KeyError("a bug, not the disk")
    assert not list(tmp_path.iterdir())
    assert issubclass(WriteError, Exception)


def test_a_folder_that_is_not_the_workflows_is_refused(tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    with pytest.raises(ResultsLockedError) as err:
        hold_results_lock(mine)
    assert "chapter1.tex" in str(err.value) and "results_dir_adopt" in str(err.value)
    assert not (mine / ".nobarriers.lock").exists()
    hold_results_lock(mine, adopt=True)  # the user says so: it becomes the workflow's
    check_results_dir(mine)  # and is the workflow's from now on
    fresh = tmp_path / "results"
    fresh.mkdir()
    (fresh / "README.md").write_text("the checkout's own results/README.md")
    check_results_dir(fresh)  # empty but for a README: fine


@pytest.mark.slow
def test_a_second_run_on_the_same_results_dir_is_refused(tmp_path):
    """Two working directories (Snakemake's own lock covers one each) and one results_dir: the
    second run stops before any job, naming the first, and the first finishes untouched."""
    results = tmp_path / "results"
    common = ["--cores", "1", "--configfile", str(TINY), "--config", f"results_dir={results}",
              f"data_dir={tmp_path / 'data'}", "recipes={digits: {epochs: 1}}"]  # fmt: skip
    minimum = results / "digits" / "mlp-16" / "minima"
    checkouts = [tmp_path / "checkout", tmp_path / "other-checkout"]
    for folder in checkouts:
        folder.mkdir()
    snakefile = ["--snakefile", str(ROOT / "Snakefile")]
    first = subprocess.Popen(
        [SNAKEMAKE, *snakefile, "-d", str(checkouts[0]), *common, "--",
         str(minimum / "0.safetensors")],
        cwd=checkouts[0], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lock = results / ".nobarriers.lock"
    deadline = time.monotonic() + 60
    while not (lock.is_file() and lock.stat().st_size) and first.poll() is None:
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.2)
    # the first run holds the lock, paused (SIGSTOP) while the second starts: a run in progress
    # without spending the CPU on a long training
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = subprocess.run(
            [SNAKEMAKE, *snakefile, "-d", str(checkouts[1]), *common, "--",
             str(minimum / "1.safetensors")],
            cwd=checkouts[1], capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out_first = first.communicate(timeout=300)[0]
    assert first.returncode == 0, out_first[-3000:]
    assert second.returncode != 0
    message = second.stdout + second.stderr
    assert f"results_dir {results} is in use by another run (pid {first.pid}" in message, message
    assert str(checkouts[0]) in message  # the other run's working directory
    assert (minimum / "0.safetensors").is_file() and not (minimum / "1.safetensors").exists()
    # the lock goes with its run: the next one takes it
    snakemake(*common, "--", minimum / "1.safetensors", workdir=checkouts[1])
    assert (minimum / "1.safetensors").is_file()
