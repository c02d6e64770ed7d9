"""Shared helpers of the benchmarks: timing with interleaved repeats, tables, machine line."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch


def job_runtime(threads: int, device: str = "cpu") -> None:
    """The runtime settings of a workflow job (threads, glibc keeping freed memory on a CPU),
    so that the benchmarks time what the jobs run."""
    from nobarriers.nn.runtime import configure_runtime

    configure_runtime(threads, device)


def machine() -> str:
    """One line naming the machine the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {gpu}"
    )


def sync(device=None) -> None:
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.synchronize()


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, device=None):
    """Median seconds per call of each function, measured round-robin (A B C A B C ...) so that
    load changes on a shared machine hit all candidates alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A GitHub-markdown table of ``rows`` (dicts); floats printed with 3 significant digits."""
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    return "\n".join(lines)
