"""What every result file records as its evidence: package version, code revision, torch
version. Torch-free (the torch version comes from the installed package's metadata)."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

from .version import VERSION


@functools.cache
def git_revision() -> str:
    """The code revision of the installed package's checkout, or ``'unknown'``."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        if rev.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def provenance() -> dict:
    """Evidence every result file records: package version, code revision, torch version."""
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "none"
    return {"version": VERSION, "git_revision": git_revision(), "torch": torch_version}
