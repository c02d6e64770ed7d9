"""Atomic file writes: a job killed while writing leaves the previous file (or none), never a
torn one; a write that fails (a full disk, a quota) says which file and how much space was
left; the file gets the permissions of the user's umask like any other (colleagues on a shared
cluster can read the results). Torch-free."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import NoBarriersError


class WriteError(NoBarriersError):
    """A file could not be written: the file system refused (full, quota, read-only, ...)."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _free(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "free space unknown"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if free < 1024 or unit == "TiB":
            return f"{free:.0f} {unit} free" if unit == "bytes" else f"{free:.1f} {unit} free"
        free /= 1024
    return ""


def _io_failure(exc: BaseException) -> bool:
    """An error of the file system, as Python or a library (torch.save, h5py) reports it."""
    if isinstance(exc, OSError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        word in text for word in ("unexpected pos", "write", "no space", "file size")
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    A job killed while writing leaves the previous file (or none) intact, never a torn one. A
    failing write raises :class:`WriteError` naming ``path`` and the free space of its file
    system. The file gets mode ``0o666 & ~umask`` (``mkstemp`` would leave it ``0o600``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except Exception as exc:
            if not _io_failure(exc):
                raise
            reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
            raise WriteError(
                f"cannot write {path}: {reason} ({_free(path.parent)} on its file system); "
                "free some space (or fix the file system) and rerun: finished work is kept"
            ) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
