"""Resume files written with ``torch.save`` and read back with ``weights_only=True``.

Only tensors, numbers, strings, lists and dicts: nothing is unpickled. Errors name the file,
say in one line what is wrong and what to do (delete the file: the job then restarts from
scratch), and leave out torch's own advice (``weights_only=False`` would execute code).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.atomic import atomic_path
from ..core.errors import FileFormatError


def save(path, payload: dict) -> None:
    """Write ``payload`` atomically (a killed job leaves the previous file or none)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path, kind: str, marker: str) -> dict:
    """Read a resume file of ``kind`` whose ``format`` field must be ``marker``."""
    path = Path(path)
    remedy = f"delete {path} to restart that job from scratch"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a format error
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in reason or "Weights only load failed" in reason:
            reason = "it holds objects other than tensors, numbers and strings"
        raise FileFormatError(f"{kind} {path}: cannot be read ({reason}); {remedy}") from None
    if not isinstance(payload, dict) or payload.get("format") != marker:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise FileFormatError(f"{kind} {path}: not a {marker} file (found {found!r}); {remedy}")
    return payload
