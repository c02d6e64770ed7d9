"""One results directory, one writer.

Snakemake's own lock covers its working directory only: two checkouts (or two working
directories) pointed at one absolute ``results_dir`` would both run, and the second would delete
and rebuild outputs under the first. :func:`hold_results_lock` takes an exclusive ``flock`` on
``<results_dir>/.nobarriers.lock`` for the life of the main Snakemake process and writes who
holds it; a second run is refused with that holder named. The kernel releases the lock when the
holder exits, however it exits (a SIGKILLed run leaves no stale lock behind).

File systems without ``flock`` (some Lustre and NFS mounts) cannot enforce this; the lock is
then skipped with a warning saying so.

The lock file also marks the folder as this workflow's: a ``results_dir`` that already holds
other files but no lock file was not created by it (a typo pointing at a folder of the user's
own), and is refused before anything in it is overwritten, unless ``adopt`` (the config's
``results_dir_adopt``) says so.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from .errors import NoBarriersError

log = logging.getLogger("nobarriers")

LOCK_NAME = ".nobarriers.lock"
_HELD: dict[str, object] = {}  # results dir -> open lock file, kept for the process's life


class ResultsLockedError(NoBarriersError):
    """Another run writes to the same results directory, or it is not this workflow's."""


#: what a results folder may hold before the workflow first writes there (the checkout's own
#: results/README.md, hidden files)
_HARMLESS = ("README.md",)


def check_results_dir(folder: Path, adopt: bool = False) -> None:
    """Refuse a non-empty ``folder`` without this workflow's lock file, unless ``adopt``."""
    if adopt or not folder.is_dir() or (folder / LOCK_NAME).exists():
        return
    foreign = sorted(
        p.name for p in folder.iterdir() if not p.name.startswith(".") and p.name not in _HARMLESS
    )
    if foreign:
        raise ResultsLockedError(
            f"results_dir {folder} already holds files this workflow did not write "
            f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}), which it could "
            "overwrite: give it another results_dir, or set results_dir_adopt: true to use this "
            "folder anyway"
        )


def hold_results_lock(results_dir, adopt: bool = False) -> Path | None:
    """Take the results directory's lock for this process, or raise
    :class:`ResultsLockedError` naming the run that holds it (or the files of a folder that is
    not this workflow's, see :func:`check_results_dir`). Returns the lock file (``None`` where
    the file system has no ``flock``). Taking it again in the same process is a no-op."""
    folder = Path(results_dir).resolve()
    if str(folder) in _HELD:
        return folder / LOCK_NAME
    check_results_dir(folder, adopt)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    handle = open(path, "a+")  # noqa: SIM115 - held open on purpose until the process exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ResultsLockedError(
                f"results_dir {folder} is in use by another run ({describe(holder)}); two runs "
                "writing one results directory would delete each other's files. Wait for it to "
                f"finish, or give this run another results_dir. (Lock file: {path})"
            ) from None
        handle.close()
        log.warning("results_dir %s: no file locking here (%s); the lock is skipped", folder, exc)
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(
        json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "working_directory": os.getcwd(),
                "command": " ".join(sys.argv),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            }
        )
    )
    handle.flush()
    _HELD[str(folder)] = handle
    return path


def describe(holder: str) -> str:
    """The lock file's record as one phrase for the error message."""
    try:
        info = json.loads(holder)
        return (
            f"pid {info['pid']} on {info['host']}, working directory "
            f"{info['working_directory']}, started {info['started']}: {info['command']}"
        )
    except (ValueError, KeyError, TypeError):
        return holder
