"""Exact evaluation of points, dense paths and straight-line baselines.

Every reported number (minima, dense path points, saddles) is measured with BatchNorm statistics
recomputed for that very point over one pass of the un-augmented training data
(docs/design.md, "Corrections to the authors' code"). Losses are mean cross-entropies,
errors are fractions in ``[0, 1]``.

Paths are evaluated like AutoNEB's insertion test (Appendix A of Draxler et al., 2018): every pivot
plus ``n_between`` equally spaced points on each chord between neighbouring pivots. The position
``t = i + alpha`` is the pivot index plus the fraction along the chord, so ``t`` runs from 0 to N+1.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from ..core.errors import ConfigError
from ..core.metrics import METRICS
from ..core.progress import Progress
from ..nn.batches import seeded_subset
from ..nn.path_geometry import arc_positions, dense_positions, point_at
from ..nn.points import (
    device_of,
    evaluate_model,
    has_batchnorm,
    load_point,
    predict_probabilities,
    recompute_bn_statistics,
)


def _unpack(data) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_test, y_test)`` from a Dataset-like object, a mapping or a 4-tuple."""
    keys = ("x_train", "y_train", "x_test", "y_test")
    if isinstance(data, Mapping):
        missing = [k for k in keys if k not in data]
        if missing:
            raise ConfigError(f"evaluation data lacks {', '.join(missing)}")
        return tuple(data[k] for k in keys)  # type: ignore[return-value]
    if isinstance(data, (tuple, list)):
        if len(data) != 4:
            raise ConfigError("evaluation data must be (x_train, y_train, x_test, y_test)")
        return tuple(data)  # type: ignore[return-value]
    try:
        return tuple(getattr(data, k) for k in keys)  # type: ignore[return-value]
    except AttributeError as exc:
        raise ConfigError(f"evaluation data lacks attribute {exc.name}") from exc


def _bn_data(x_train: Tensor, bn_subset: int | None, bn_seed: int) -> Tensor:
    idx = seeded_subset(x_train.shape[0], bn_subset, bn_seed)
    return x_train if idx is None else x_train[idx.to(x_train.device)]


def evaluate_point(
    model: nn.Module,
    point: Tensor,
    data,
    batch_size: int = 512,
    bn_subset: int | None = None,
    bn_seed: int = 0,
) -> dict:
    """Load ``point`` into ``model`` (in place), recompute BatchNorm statistics on the
    un-augmented training set (or a seeded subset of ``bn_subset`` samples) and measure train and
    test loss and error.

    ``data``: a ``Dataset`` (attributes ``x_train, y_train, x_test, y_test``), a mapping with those
    keys or a tuple ``(x_train, y_train, x_test, y_test)``; ``x_test = None`` measures the
    training set only. Returns floats ``train_loss``, ``train_error``, ``test_loss``,
    ``test_error`` (errors as fractions; the test metrics only with test data).
    """
    x_train, y_train, x_test, y_test = _unpack(data)
    load_point(model, point.to(device_of(model)))
    if has_batchnorm(model):
        recompute_bn_statistics(model, _bn_data(x_train, bn_subset, bn_seed), batch_size)
    train = evaluate_model(model, x_train, y_train, batch_size)
    out = {"train_loss": train["loss"], "train_error": train["error"]}
    if x_test is not None:
        test = evaluate_model(model, x_test, y_test, batch_size)
        out |= {"test_loss": test["loss"], "test_error": test["error"]}
    return out


def evaluate_path(
    model: nn.Module,
    pivots: Tensor,
    data,
    n_between: int = 9,
    batch_size: int = 512,
    bn_subset: int | None = None,
    bn_seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Evaluate every pivot of ``pivots`` ``[N+2, D]`` and ``n_between`` points per gap.

    Returns numpy arrays over the dense positions: ``t`` (0..N+1), ``train_loss``, ``train_error``,
    ``test_loss``, ``test_error``; each point with its own exact BatchNorm statistics.
    """
    if pivots.dim() != 2:
        raise ConfigError(f"pivots must be [N+2, D], got shape {tuple(pivots.shape)}")
    t = dense_positions(pivots.shape[0], n_between)
    return _evaluate_positions(
        model,
        lambda s: point_at(pivots, s),
        t,
        data,
        batch_size,
        bn_subset,
        bn_seed,
        progress,
    )


def evaluate_line(
    model: nn.Module,
    a: Tensor,
    b: Tensor,
    n_points: int,
    data,
    batch_size: int = 512,
    bn_subset: int | None = None,
    bn_seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """The straight segment ``(1 - t) a + t b`` at ``n_points`` equally spaced ``t`` in [0, 1]."""
    if a.shape != b.shape or a.dim() != 1:
        raise ConfigError(f"line endpoints differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if n_points < 2:
        raise ConfigError(f"n_points must be >= 2, got {n_points}")
    t = np.linspace(0.0, 1.0, n_points)
    return _evaluate_positions(
        model,
        lambda s: point_at(torch.stack([a, b]), s),
        t,
        data,
        batch_size,
        bn_subset,
        bn_seed,
        progress,
    )


def _evaluate_positions(model, point_fn, t, data, batch_size, bn_subset, bn_seed, progress):
    out = {}
    for k, s in enumerate(t):
        metrics = evaluate_point(model, point_fn(float(s)), data, batch_size, bn_subset, bn_seed)
        for name in METRICS:
            if name in metrics:
                out.setdefault(name, np.empty(len(t)))[k] = metrics[name]
        if progress is not None:
            progress.update(train_loss=metrics["train_loss"])
    out["t"] = np.asarray(t, dtype=np.float64)
    return out


#: the seed of the fixed subset for the MST weights (one subset per dataset, shared by every pair)
WEIGHT_SUBSET_SEED = 0


def saddle_curve(
    model: nn.Module,
    pivots: Tensor,
    data,
    n_between: int,
    subset: int | None = None,
    batch_size: int = 512,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """The training loss along a path, measured so that the saddles of all pairs of a row are
    comparable: at the dense positions (every pivot and ``n_between`` points per gap), each point
    with exact BatchNorm statistics, on the whole un-augmented training set of ``data`` or on one
    fixed subset of ``subset`` samples (seed :data:`WEIGHT_SUBSET_SEED`, so every pair of a row
    is weighted on the same images). Returns ``{"t", "train_loss"}``; its maximum is the path's
    saddle, the weight of Algorithm 3 and of the minimum spanning tree."""
    x_train, y_train, _, _ = _unpack(data)
    idx = seeded_subset(x_train.shape[0], subset, WEIGHT_SUBSET_SEED)
    if idx is not None:
        idx = idx.to(x_train.device)
        x_train, y_train = x_train[idx], y_train[idx]
    curve = evaluate_path(
        model, pivots, (x_train, y_train, None, None), n_between, batch_size, progress=progress
    )
    return {"t": curve["t"], "train_loss": curve["train_loss"]}


def saddle(evaluation: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Maximum of every metric along an evaluated path and where it occurs:
    ``{"train_loss": {"value": ..., "t": ...}, ...}`` (the "Sadd" columns of Table B.1)."""
    result = {}
    for name in METRICS:
        if name in evaluation:
            values = np.asarray(evaluation[name])
            k = int(np.argmax(values))
            result[name] = {"value": float(values[k]), "t": float(evaluation["t"][k])}
    return result


def path_ensembles(
    model: nn.Module,
    pivots: Tensor,
    data,
    sizes,
    batch_size: int = 512,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Test error of ensembles along a path (Garipov et al. 2018): for each ``K`` in ``sizes``
    the K models evenly spaced in arc length from one end of the path to the other (K = 2: the
    two endpoints), each with its exact BatchNorm statistics, their predicted probabilities
    averaged. Returns ``sizes`` (ascending, always with 2), ``test_error`` (one per size) and
    ``endpoint_test_error`` (each endpoint alone, ``[2]``). Models shared by several sizes are
    evaluated once."""
    sizes = sorted({int(k) for k in sizes} | {2})
    if min(sizes) < 2:
        raise ConfigError(f"ensemble sizes must be >= 2 (K = 2: the endpoints), got {sizes}")
    x_train, _, x_test, y_test = _unpack(data)
    members = {k: np.linspace(0.0, 1.0, k) for k in sizes}
    fractions = np.unique(np.concatenate([np.round(f, 12) for f in members.values()]))
    probabilities = {}
    for fraction, t in zip(fractions, arc_positions(pivots, fractions), strict=True):
        load_point(model, point_at(pivots, float(t)).to(device_of(model)))
        if has_batchnorm(model):
            recompute_bn_statistics(model, x_train, batch_size)
        probabilities[float(fraction)] = predict_probabilities(model, x_test, batch_size)
        if progress is not None:
            progress.update()
    labels = y_test.cpu()

    def error(fractions) -> float:
        mean = torch.stack([probabilities[float(np.round(f, 12))] for f in fractions]).mean(0)
        return float((mean.argmax(dim=1) != labels).double().mean())

    return {
        "sizes": np.asarray(sizes, dtype=np.int64),
        "test_error": np.asarray([error(members[k]) for k in sizes], dtype=np.float64),
        "endpoint_test_error": np.asarray([error([0.0]), error([1.0])], dtype=np.float64),
    }
