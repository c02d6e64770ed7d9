"""AutoNEB resume states: ``paths/<a>-<b>.state.pt``, written after every finished cycle.

The state holds the pivots, target weights, finished cycles, every RNG state (the NEB batch
generator included), the energy's resolved evaluation mode and the history, so a rerun continues
after the last finished cycle and, on the CPU, ends bitwise identical to an uninterrupted run.
It is tied to its run: the AutoNEB settings, the endpoints (a SHA-256 of their coordinates), the
dimension and the seed must all match, or the file is refused with what differs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from torch import Tensor

from ..core.errors import ConfigError
from . import torchfile

STATE_FORMAT = "nobarriers-autoneb-state/1"


def endpoints_fingerprint(start: Tensor, end: Tensor) -> str:
    """SHA-256 of the two endpoints' coordinates."""
    digest = hashlib.sha256()
    for t in (start, end):
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def settings_json(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def save_state(path, *, settings: dict, fingerprint: str, dim: int, seed: int, **state) -> None:
    """Write a resume state; ``state`` holds the run's progress (see the module docstring)."""
    torchfile.save(
        path,
        {
            "format": STATE_FORMAT,
            "config": settings_json(settings),
            "fingerprint": fingerprint,
            "dim": int(dim),
            "seed": int(seed),
            **state,
        },
    )


def load_state(path, *, settings: dict, fingerprint: str, dim: int, seed: int) -> dict:
    """Read a resume state and check that it belongs to this run."""
    path = Path(path)
    state = torchfile.load(path, "AutoNEB state file", STATE_FORMAT)
    remedy = f"delete {path} to restart the path from its first cycle"
    if state["config"] != settings_json(settings):
        raise ConfigError(
            f"AutoNEB state file {path} was written with another config; {remedy}, or restore "
            f"the config. stored: {state['config']}"
        )
    if state["fingerprint"] != fingerprint or state["dim"] != dim:
        raise ConfigError(f"AutoNEB state file {path} belongs to other endpoints; {remedy}")
    if state["seed"] != seed:
        raise ConfigError(
            f"AutoNEB state file {path} was written with seed {state['seed']}, not {seed}; {remedy}"
        )
    return state
