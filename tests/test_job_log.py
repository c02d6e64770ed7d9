"""A job's log, as cluster users read it: a failure's ERROR line first; SIGTERM (SLURM's time
limit, scancel) logged with what a rerun resumes from; an output written before SIGTERM kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

PYTHON = sys.executable


def run(code: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, **kwargs)  # fmt: skip


def test_a_failed_jobs_log_starts_with_its_error(tmp_path):
    proc = run(
        """
        import logging
        from nobarriers.core.errors import ConfigError
        from nobarriers.core.progress import job_log
        with job_log("job.log", "train_minimum", ["out.txt"]):
            logging.getLogger("nobarriers").info("device: cpu, 1 thread")
            raise ConfigError("recipes.digits.lr: the loss diverged")
        """,
        tmp_path,
    )
    assert proc.returncode == 1
    lines = (tmp_path / "job.log").read_text().splitlines()
    assert " ERROR train_minimum failed: recipes.digits.lr: the loss diverged" in lines[0]
    assert "device: cpu" in lines[1]  # the job's own lines follow, then the traceback
    assert any("Traceback" in line for line in lines[2:])


def test_sigterm_says_where_the_job_stopped_and_a_written_output_is_kept(tmp_path):
    code = """
        import os, signal, sys
        from pathlib import Path
        from nobarriers.core.progress import job_log, note_resume_point
        with job_log("job.log", "autoneb_path", ["out.h5"]):
            note_resume_point("AutoNEB cycle 3/14 saved in s.pt; a rerun resumes with cycle 4")
            if sys.argv[-1] == "written":
                Path("out.h5").write_text("the path")  # written, its state file not yet removed
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("SIGTERM did not stop the job")
    """
    stopped = subprocess.run([PYTHON, "-c", textwrap.dedent(code), "running"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert stopped.returncode == 143, stopped.stderr
    first = (tmp_path / "job.log").read_text().splitlines()[0]
    assert "ERROR autoneb_path stopped by SIGTERM" in first
    assert "a rerun resumes with cycle 4" in first
    (tmp_path / "job.log").unlink()
    done = subprocess.run([PYTHON, "-c", textwrap.dedent(code), "written"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.h5").read_text() == "the path"
    assert (
        "SIGTERM after its output was written: the output is kept"
        in (tmp_path / "job.log").read_text()
    )


def test_sigterm_during_training_names_the_epoch_a_rerun_resumes_with(tmp_path):
    """A real training job, SIGTERMed once its second epoch is on disk: the log's first line
    names the epoch a rerun resumes with, and the rerun resumes there."""
    code = """
        import sys, torch
        torch.set_num_threads(1)
        from nobarriers.core.progress import job_log
        from nobarriers.datasets import load_dataset
        from nobarriers.engine.train import train_minimum
        from nobarriers.settings.recipes import recipe_for
        recipe = recipe_for("mlp-16", dataset="digits", overrides={"epochs": 400})
        with job_log("train.log", "train_minimum", ["m.safetensors"]):
            train_minimum("mlp-16", load_dataset("digits"), recipe, 0, "m.safetensors", "m.ckpt")
    """
    job = subprocess.Popen([PYTHON, "-c", textwrap.dedent(code)], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    log = tmp_path / "train.log"
    while "epoch 2/400" not in (log.read_text() if log.exists() else ""):
        assert job.poll() is None and time.monotonic() < deadline, job.stdout.read()
        time.sleep(0.05)
    os.kill(job.pid, signal.SIGTERM)
    assert job.wait(timeout=60) == 143
    first = log.read_text().splitlines()[0]
    assert "ERROR train_minimum stopped by SIGTERM" in first, first
    saved = int(first.split("saved in")[0].rsplit("epoch ", 1)[1].split("/")[0])
    assert saved >= 2 and f"a rerun resumes with epoch {saved + 1}" in first
    assert (tmp_path / "m.ckpt").exists() and not (tmp_path / "m.safetensors").exists()
