"""Resume states of curve training (Garipov et al. 2018): written after every finished epoch.

A state holds the bend ``theta``, the optimiser's momentum, every RNG state (the batch order,
augmentation and ``t`` generators included), the per-epoch history and the cost so far, so a
rerun continues after the last finished epoch and, on the CPU, ends bitwise identical to an
uninterrupted run. It is tied to its run: the curve kind and the settings that change results,
the endpoints (a SHA-256 of their coordinates), the dimension and the seed must all match, or the
file is refused saying what differs. Written with ``torch.save``, read with
``weights_only=True`` (:mod:`nobarriers.formats.torchfile`).
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import Tensor

from ..core.checksums import tensors_sha256
from ..core.errors import ConfigError, FileFormatError
from . import torchfile

CURVE_STATE_FORMAT = "nobarriers-curve-state/1"
KIND = "curve training state"

#: what a state must hold besides its identity, checked on reading (a truncated dict is refused)
_PROGRESS_KEYS = (
    "epochs_done",
    "theta",
    "optimizer",
    "rng",
    "history",
    "n_gradient_evaluations",
    "n_sample_gradients",
    "wall_s",
)


def endpoints_fingerprint(w1: Tensor, w2: Tensor) -> str:
    """SHA-256 of the two endpoints (dtype, shape and bytes of each)."""
    return tensors_sha256({"w1": w1, "w2": w2})


def _canonical(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def save_curve_state(
    path, *, kind: str, settings: dict, fingerprint: str, dim: int, seed: int, **progress
) -> None:
    """Write a resume state atomically; ``progress`` holds the keys of ``_PROGRESS_KEYS``."""
    missing = [k for k in _PROGRESS_KEYS if k not in progress]
    if missing:
        raise ValueError(f"curve state lacks {missing}")  # a programming error, not user input
    torchfile.save(
        path,
        {
            "format": CURVE_STATE_FORMAT,
            "kind": str(kind),
            "settings": _canonical(settings),
            "fingerprint": str(fingerprint),
            "dim": int(dim),
            "seed": int(seed),
            **progress,
        },
    )


def load_curve_state(
    path, *, kind: str, settings: dict, fingerprint: str, dim: int, seed: int
) -> dict:
    """Read a resume state and check that it belongs to this run (else :class:`ConfigError`;
    an unreadable or incomplete file: :class:`FileFormatError`). Both name the file and say to
    delete it to restart the curve's training from its first epoch."""
    path = Path(path)
    state = torchfile.load(path, KIND, CURVE_STATE_FORMAT)
    remedy = f"delete {path} to restart the curve's training from its first epoch"
    identity_keys = ("kind", "settings", "fingerprint", "dim", "seed")
    missing = [k for k in (*identity_keys, *_PROGRESS_KEYS) if k not in state]
    if missing or not isinstance(state["theta"], Tensor):
        what = f"lacks {', '.join(missing)}" if missing else "holds no tensor 'theta'"
        raise FileFormatError(f"{KIND} {path}: {what}; {remedy}")
    expected = {
        "kind": str(kind),
        "settings": _canonical(settings),
        "dim": int(dim),
        "fingerprint": str(fingerprint),
        "seed": int(seed),
    }
    for key, value in expected.items():
        if state[key] != value:
            if key == "fingerprint":
                what = "was written for other endpoints"
            else:
                what = f"has {key} {state[key]!r} but this run has {value!r}"
            raise ConfigError(f"{KIND} {path} {what}: it belongs to another curve; {remedy}")
    if tuple(state["theta"].shape) != (int(dim),):
        raise FileFormatError(
            f"{KIND} {path}: theta has shape {tuple(state['theta'].shape)}, not ({dim},); {remedy}"
        )
    return state
