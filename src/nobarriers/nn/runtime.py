"""Process-level runtime: threads, device choice, RNG states, bf16 autocast."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import random
import sys

import numpy as np
import torch

from ..core.errors import DeviceError
from ..core.gpu_slots import GpuSlot, claim_gpu_slot, visible_devices

log = logging.getLogger("nobarriers")


def visible_gpus() -> str:
    """What a job sees of the GPUs, for log lines and errors."""
    return (
        f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}, "
        f"torch.cuda.is_available()={torch.cuda.is_available()}, "
        f"torch.cuda.device_count()={torch.cuda.device_count()}"
    )


def take_gpu_slot(min_devices: int = 1, folder=None) -> GpuSlot | None:
    """This process's own GPU where several GPU jobs share a machine: the lowest free slot of the
    visible devices (:mod:`nobarriers.core.gpu_slots`), held until the process ends, and
    ``CUDA_VISIBLE_DEVICES`` narrowed to its device, so that CUDA, initialised after this, shows
    the process that device alone, as ``cuda:0``. ``None`` (nothing changed) where fewer than
    ``min_devices`` devices are visible.

    Why the variable and not ``cuda:<slot>``: a process that sees one device cannot touch
    another -- no code path (``cuda:0`` written somewhere, a library's own device choice, the
    per-device RNG states of the resume files, a child process) can put a CUDA context of
    hundreds of MB or any work on another job's GPU. It counts only before CUDA initialises
    in this process: ``torch.cuda.device_count()`` counts through NVML without initialising
    it, and a workflow job takes its slot first thing. Where CUDA was initialised before,
    :func:`configure_runtime` makes ``cuda:<slot>`` the current device instead."""
    count = torch.cuda.device_count()  # through NVML: CUDA_VISIBLE_DEVICES may still change
    if count < max(1, min_devices):
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    slot = claim_gpu_slot(visible_devices(count, visible), folder)
    if slot is None:
        return None
    os.environ["CUDA_VISIBLE_DEVICES"] = slot.device
    log.info(
        "GPU slot %d of %d: device %s (CUDA_VISIBLE_DEVICES was %s; lock %s)",
        slot.index,
        slot.count,
        slot.device,
        "unset" if visible is None else repr(visible),
        slot.lock_file,
    )
    return slot


def configure_runtime(
    threads: int | None = None,
    device: str = "auto",
    require_gpu: bool = False,
    gpu_slot: GpuSlot | None = None,
) -> torch.device:
    """Set torch's thread count (from Snakemake's ``threads``) and choose the device.

    ``device="auto"`` takes the first visible CUDA device (SLURM exports ``CUDA_VISIBLE_DEVICES``)
    and otherwise runs on the CPU with a log line saying so -- unless ``require_gpu``: a job
    that was granted a GPU by its scheduler and sees none (a driver mismatch, a wrong partition,
    an empty ``CUDA_VISIBLE_DEVICES``) stops at once with a :class:`DeviceError` naming what it
    sees, instead of running for hours on the CPU. ``device="cuda"`` always requires a GPU;
    ``device="cpu"`` never uses one. ``gpu_slot`` (:func:`take_gpu_slot`): where CUDA was
    initialised before the slot narrowed ``CUDA_VISIBLE_DEVICES`` (it still shows several
    devices), the slot's device is made the current one.
    """
    if threads is not None and threads > 0:
        torch.set_num_threads(int(threads))
        with contextlib.suppress(RuntimeError):  # only settable before the first parallel op
            torch.set_num_interop_threads(max(1, min(int(threads), 2)))
    gpu = device != "cpu" and torch.cuda.is_available()
    if device == "cuda" or (device == "auto" and require_gpu):
        if not gpu:
            why = "device: cuda" if device == "cuda" else "the job requested a GPU"
            job = os.environ.get("SLURM_JOB_ID")
            raise DeviceError(
                f"{why}{f' (SLURM job {job})' if job else ''} but sees none: {visible_gpus()}. "
                "Check the partition and the GPU driver, or run without GPUs "
                "(--config gpu_jobs=false, or device=cpu)"
            )
    if not gpu:
        keep_freed_memory()
        log.info(
            "device: %s; running on the CPU with %d threads",
            "cpu as configured" if device == "cpu" else f"no GPU visible ({visible_gpus()})",
            torch.get_num_threads(),
        )
        return torch.device("cpu")
    if gpu_slot is not None:
        torch.cuda.init()
        if torch.cuda.device_count() > 1:  # initialised before CUDA_VISIBLE_DEVICES was narrowed
            torch.cuda.set_device(gpu_slot.index)
    log.info(
        "device: %s (CUDA_VISIBLE_DEVICES=%s)",
        torch.cuda.get_device_name(),
        os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
    )
    return torch.device("cuda")


# glibc's mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Let glibc keep freed memory for reuse instead of handing it back to the OS (Linux only).

    CPU tensors above glibc's mmap threshold (128 KiB to start with) get fresh pages for every
    allocation, and a trimmed heap returns freed pages; each new page then costs a page fault.
    A NEB step allocates the same multi-MB activations every time, so with these settings the
    next step reuses the memory of the previous one: 850 -> 27 page faults and 11.8 -> 9.0 ms per
    step for the batched 64-100-10 MLP at N = 16 (``benchmarks/``). Tensors up to
    ``mmap_threshold`` bytes (glibc's maximum is 32 MiB) come from the heap; the heap is trimmed
    only when ``trim_threshold`` bytes at its top are free. Peak memory stays what the job uses
    at its peak. Returns whether the settings were applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        applied = libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
        return applied and libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False


def capture_rng_state(generators: dict[str, torch.Generator] | None = None) -> dict:
    """Every RNG state a run depends on -- Python, NumPy, torch CPU (and CUDA) and the given
    named generators -- as tensors, numbers and strings only, so that a resume file holding it
    loads with ``torch.load(weights_only=True)``."""
    version, mt, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)
    state = {
        "python": {
            "version": int(version),
            "state": torch.tensor(mt, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict, generators: dict[str, torch.Generator] | None = None) -> None:
    """Undo :func:`capture_rng_state`: restore every RNG, the named generators included."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["name"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in (generators or {}).items():
        g.set_state(state["generators"][name])


def autocast_bf16(device: torch.device, enabled: bool):
    """``torch.autocast`` to bfloat16 on ``device`` if ``enabled``, else a no-op context (the
    GPU speed option of training and NEB steps; evaluation always runs in float32)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """Half-precision outputs (bf16 autocast) as float32 for the loss; others unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
