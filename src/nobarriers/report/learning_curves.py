"""Learning curves against the saddle level: the mean curve over the minima, the learning-rate
phases, and Table B.1's "Epoch" column (the first epoch below the saddle)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..core.errors import ConfigError


def field_of(entry, key, default=None):
    """``entry[key]`` of a mapping, ``entry.key`` of a record (``default`` when absent)."""
    if isinstance(entry, Mapping):
        return entry.get(key, default)
    return getattr(entry, key, default)


def mean_learning_curve(
    histories: Sequence[Sequence[Mapping]], key: str = "train_loss"
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``key`` over the histories at equal epoch numbers.

    Only epochs present in every history are used (a history that stopped early does not bias the
    mean). Returns ``(epochs, mean)`` sorted by epoch.
    """
    if not histories:
        raise ConfigError("no learning curves given (every minimum needs a per-epoch history)")
    per_history = []
    for k, hist in enumerate(histories):
        values = {}
        for entry in hist:
            epoch, value = field_of(entry, "epoch"), field_of(entry, key)
            if epoch is None or value is None:
                raise ConfigError(f"history {k}: an entry lacks 'epoch' or {key!r}: {entry!r}")
            values[int(epoch)] = float(value)
        if not values:
            raise ConfigError(f"history {k} is empty (no per-epoch {key!r})")
        per_history.append(values)
    common = sorted(set.intersection(*(set(v) for v in per_history)))
    if not common:
        raise ConfigError("the learning curves share no epoch")
    mean = np.array([np.mean([v[e] for v in per_history]) for e in common])
    return np.array(common, dtype=int), mean


def lr_decay_epochs(history: Sequence[Mapping]) -> list[int]:
    """Epochs whose learning rate differs from the previous epoch's (the first epoch of each new
    phase). Empty when the history has no ``lr`` entries or a constant rate."""
    out, prev = [], None
    for entry in sorted(history, key=lambda e: int(field_of(e, "epoch"))):
        lr = field_of(entry, "lr")
        if lr is None:
            return []
        if prev is not None and not math.isclose(float(lr), prev, rel_tol=1e-9):
            out.append(int(field_of(entry, "epoch")))
        prev = float(lr)
    return out


def crossing_epoch(
    histories: Sequence[Sequence[Mapping]],
    level: float,
    epochs_total: int | None = None,
    key: str = "train_loss",
) -> dict:
    """First epoch at which the mean learning curve falls strictly below ``level``.

    Returns ``{"epoch": int | None, "fraction": float | None, "in_last_phase": bool | None,
    "epochs_total": int}``. See the module docstring for the definitions.
    """
    epochs, mean = mean_learning_curve(histories, key)
    total = int(epochs_total) if epochs_total else int(epochs.max())
    below = np.nonzero(mean < float(level))[0]
    if below.size == 0:
        return {"epoch": None, "fraction": None, "in_last_phase": None, "epochs_total": total}
    epoch = int(epochs[below[0]])
    decays = lr_decay_epochs(histories[0])
    has_lr = all(field_of(e, "lr") is not None for e in histories[0])
    if has_lr:
        in_last = bool(decays) and epoch >= decays[-1]
    else:
        in_last = epoch > 0.75 * total
    return {
        "epoch": epoch,
        "fraction": epoch / total,
        "in_last_phase": in_last,
        "epochs_total": total,
    }
