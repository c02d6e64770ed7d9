"""The GPU benchmark's NEB part runs (on the CPU, tiny), so it works when a GPU is lent."""

import argparse
import sys
import time
from pathlib import Path

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
