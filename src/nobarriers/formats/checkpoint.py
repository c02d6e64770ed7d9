"""Training checkpoints: ``minima/<seed>.ckpt``, written after every epoch.

A checkpoint holds the model and optimiser states, every RNG state (the batch order and the
augmentation generators included) and the learning curve so far, so a rerun continues after the
last finished epoch and, on the CPU, ends bitwise identical to an uninterrupted run. It carries
its run's identity (architecture, dataset, seed, recipe, config hash); a checkpoint of another
run is refused with the field that differs.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import ConfigError
from . import torchfile

CHECKPOINT_FORMAT = "train-checkpoint/1"


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True)


def save_checkpoint(path, identity: dict, **state) -> None:
    """Write a checkpoint; ``identity`` = arch, dataset, seed, recipe, config_hash."""
    payload = {"format": CHECKPOINT_FORMAT, **identity, "recipe": _canonical(identity["recipe"])}
    torchfile.save(path, {**payload, **state})


def load_checkpoint(path, identity: dict) -> dict:
    """Read a checkpoint and check that it belongs to the run described by ``identity``."""
    path = Path(path)
    ckpt = torchfile.load(path, "training checkpoint", CHECKPOINT_FORMAT)
    for key, value in identity.items():
        stored = ckpt.get(key)
        same = stored == (_canonical(value) if key == "recipe" else value)
        if not same:
            raise ConfigError(
                f"training checkpoint {path}: field {key!r} is {stored!r} but this run has "
                f"{value!r}; it belongs to another training run (delete it to restart training)"
            )
    return ckpt
