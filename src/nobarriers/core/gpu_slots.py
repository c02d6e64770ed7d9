"""Several GPUs on one machine: each GPU job its own device, given back when the job ends.

Outside SLURM, Snakemake counts GPUs (``--resources gpu=K`` runs at most K jobs that request one
at a time) but tells no job which device is its own, so every job would take the first. Here a
GPU job takes the lowest free *slot*: an exclusive, non-blocking ``flock`` on one lock file per
device, ``gpu-<device>.lock`` in :func:`slots_folder`, held for the life of its process. The
kernel releases a ``flock`` when the process that holds it ends, however it ends (an exception,
SIGKILL, the OOM killer): a crashed job leaves no stale slot behind, and nothing needs cleaning
up. A job that finds every slot taken (more GPU jobs at once than devices) stops at once with a
:class:`~nobarriers.core.errors.DeviceError` naming the device count and the holders.

Torch-free: :func:`nobarriers.nn.runtime.take_gpu_slot` counts the devices and narrows
``CUDA_VISIBLE_DEVICES`` to the slot's device before CUDA initialises.

Where the lock files live: GPUs belong to a machine, not to a run, so the folder is one per
machine and user -- ``<tmp>/nobarriers-gpu-slots-<uid>-<host>`` (:func:`tempfile.gettempdir`:
``$TMPDIR`` or ``/tmp``, local to the machine) -- never the results directory: two runs with two
results directories on one workstation must not share a device, and a results directory on a
shared file system (NFS, Lustre) is seen by several machines and may have no ``flock``. Inside a
SLURM allocation the folder also carries the job id (one allocation's devices are its own).
``NOBARRIERS_GPU_SLOTS`` names another folder (e.g. one shared by a group: the lock files are
created with the umask's permissions and locked through a read-only handle where they cannot be
opened for writing).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import DeviceError

log = logging.getLogger("nobarriers")

#: environment variable naming the folder of the lock files (default: :func:`slots_folder`)
FOLDER_VARIABLE = "NOBARRIERS_GPU_SLOTS"

_HELD: dict[str, tuple[GpuSlot, int]] = {}  # "slot" -> (the slot, its open lock file)


@dataclass(frozen=True)
class GpuSlot:
    """A device this process holds: ``index`` among the ``count`` visible devices (0 = the
    first), ``device`` its ``CUDA_VISIBLE_DEVICES`` entry (an ordinal or a UUID), ``lock_file``
    the file whose ``flock`` holds it."""

    index: int
    device: str
    count: int
    lock_file: Path


def slots_folder() -> Path:
    """The folder of the lock files: ``$NOBARRIERS_GPU_SLOTS``, else one per user and machine
    (and SLURM allocation) in the temporary directory."""
    given = os.environ.get(FOLDER_VARIABLE)
    if given:
        return Path(given)
    name = f"nobarriers-gpu-slots-{os.getuid()}-{socket.gethostname()}"
    job = os.environ.get("SLURM_JOB_ID")
    return Path(tempfile.gettempdir()) / (f"{name}-slurm{job}" if job else name)


def visible_devices(count: int, visible: str | None) -> list[str]:
    """The devices a process may use, as ``CUDA_VISIBLE_DEVICES`` entries: the first ``count``
    entries of ``visible`` (the variable's value; ``count`` is what CUDA makes of it, e.g.
    ``torch.cuda.device_count()``), or ``0 .. count-1`` where the variable is unset."""
    if count <= 0:
        return []
    if visible is None:
        return [str(i) for i in range(count)]
    return [entry.strip() for entry in visible.split(",")][:count]


def held_gpu_slot() -> GpuSlot | None:
    """The slot this process holds, if any."""
    held = _HELD.get("slot")
    return held[0] if held else None


def release_gpu_slot() -> None:
    """Give this process's slot back (a process that ends gives it back anyway)."""
    held = _HELD.pop("slot", None)
    if held is not None:
        os.close(held[1])


def _open(path: Path) -> tuple[int, bool]:
    """The lock file, opened for writing where allowed (then the holder is recorded in it),
    else read-only (``flock`` works on either); never through a symbolic link."""
    flags = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags | os.O_RDWR, 0o666), True
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), False


def _holder(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"


def claim_gpu_slot(devices: Sequence[str], folder: str | Path | None = None) -> GpuSlot | None:
    """Take the lowest free slot of ``devices`` (``CUDA_VISIBLE_DEVICES`` entries, see
    :func:`visible_devices`) for the life of this process and return it; ``None`` without
    devices, or where the folder's file system has no ``flock`` (with a warning: the jobs then
    share the first device, as without slots). Taking one again returns the slot already held.
    Every slot taken: :class:`DeviceError` naming the device count and who holds them."""
    if (held := held_gpu_slot()) is not None:
        return held
    devices = [str(d) for d in devices]
    if not devices:
        return None
    folder = Path(folder) if folder is not None else slots_folder()
    taken = []
    for index, device in enumerate(devices):
        path = folder / f"gpu-{re.sub(r'[^A-Za-z0-9._-]', '_', device)}.lock"
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, writable = _open(path)
        except OSError as exc:
            raise DeviceError(
                f"cannot use the GPU slot file {path}: {exc}; point {FOLDER_VARIABLE} to a "
                "folder of yours on this machine"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                taken.append(f"GPU {device}: {_holder(path)}")
                continue
            log.warning(
                "GPU slots in %s: no file locking here (%s); slots are skipped", folder, exc
            )
            return None
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:300]}\n".encode(), 0)
        slot = GpuSlot(index=index, device=device, count=len(devices), lock_file=path)
        _HELD["slot"] = (slot, fd)
        return slot
    n = len(devices)
    raise DeviceError(
        f"every GPU of this machine is taken: {n} GPU{'s' if n != 1 else ''} "
        f"(CUDA_VISIBLE_DEVICES entries {', '.join(devices)}), each held by another GPU job "
        f"({'; '.join(taken)}). More GPU jobs run at once than there are GPUs: run Snakemake "
        f"with --resources gpu={n} (at most one GPU job per device), or wait for the other run "
        f"to finish. (Lock files: {folder})"
    )
