"""The GPU benchmark's NEB part runs (on the CPU, tiny), so it works when a GPU is lent."""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.slow
def test_gpu_benchmark_neb_rows_run_on_any_device():
    import gpu_benchmark

    args = argparse.Namespace(n=[1], batch=4, repeats=1, train_steps=1, budget=60)
    rows = gpu_benchmark.neb_rows(args, torch.device("cpu"), time.perf_counter() + 120)
    labels = [(row["options"], row["mode"]) for row in rows]
    assert ("fp32", "loop") in labels and ("fp32, endpoints once", "loop") in labels
    assert len(rows) == 9
    fp32 = {row["mode"]: row for row in rows if row["options"] == "fp32"}
    assert fp32["loop"]["auto picks"] in ("loop", "vmap")
    assert all(isinstance(fp32[m]["step ms"], float) for m in ("loop", "vmap"))


@pytest.mark.slow
def test_gpu_check_engine_parts_run_on_any_device(tmp_path):
    """The GPU check's agreement and cycle estimate run (CPU against itself: bitwise equal), and
    its shell driver parses, so that a lent GPU's few minutes are not lost to a typo."""
    import subprocess

    import gpu_check

    torch.set_num_threads(1)
    agree = gpu_check.agreement(("cpu", "cpu"), data_dir=tmp_path, train_steps=5, neb_steps=5)
    assert agree["saddle rel. diff"] == 0.0 and agree["eval curve max rel. diff"] == 0.0
    assert agree["max path diff / |a-b|"] == 0.0
    assert agree["saddle cpu"] > 0
    rows, estimates = gpu_check.cycle_estimate("cpu", "resnet-8", batch=4, pivots=(1, 2), steps=1)
    assert [r["N"] for r in rows] == [1, 2] and all(r["step s"] > 0 for r in rows)
    assert len(estimates) == 2 and all(np.isfinite(e["16,000 steps h"]) for e in estimates)
    # the estimate itself on given timings (measured ones are too noisy to order on a CPU):
    # 0.1 s at N = 1, 0.2 s at N = 2 is 0.1 s per pivot; pivots 2 -> 8 average 5 over the
    # schedule's 16,000 steps, weighted by the steps of each cycle
    hours = gpu_check.path_hours({1: 0.1, 2: 0.2})
    growth = np.linspace(2, 8, 14)
    steps = [1000] * 4 + [2000] * 2 + [1000] * 8
    expected = sum(s * 0.1 * p for s, p in zip(steps, growth, strict=True)) / 3600
    assert hours[0]["16,000 steps h"] == pytest.approx(expected)
    assert hours[1]["16,000 steps h"] > hours[0]["16,000 steps h"]  # more pivots, more time
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
