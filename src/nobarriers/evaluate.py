"""Exact evaluation of points, dense paths and straight-line baselines.

Every reported number (minima, dense path points, saddles) is measured with BatchNorm statistics
recomputed for that very point over one pass of the un-augmented training data
(pitfalls 3 and 4 of ``shared/notes/reference-pitfalls.md``). Losses are mean cross-entropies,
errors are fractions in ``[0, 1]``.

Paths are evaluated like AutoNEB's insertion test (Appendix A of Draxler et al., 2018): every pivot
plus ``n_between`` equally spaced points on each chord between neighbouring pivots. The position
``t = i + alpha`` is the pivot index plus the fraction along the chord, so ``t`` runs from 0 to N+1.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .energy import has_batchnorm, load_point
from .errors import ConfigError
from .progress import Progress

METRICS = ("train_loss", "train_error", "test_loss", "test_error")


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def _device_of(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def recompute_bn_statistics(
    model: nn.Module, x: Tensor, batch_size: int, progress: Progress | None = None
) -> None:
    """Replace the running statistics of every BatchNorm layer by those of ``x`` (one pass).

    Like ``torch.optim.swa_utils.update_bn`` (Garipov et al.) the statistics are reset, the
    layers switched to the cumulative average (``momentum=None``) and the network run once in train
    mode over ``x`` (pass un-augmented training data). Unlike it, the per-batch means and variances
    are pooled exactly, weighted by sample count and including the spread between batch means
    (Chan et al.'s parallel variance). For every layer whose input does not depend on an earlier
    BatchNorm -- and for all layers when ``batch_size >= len(x)`` -- the result equals the
    statistics of ``x`` in one go: ``running_mean`` = mean, ``running_var`` = unbiased variance.
    Deeper layers see inputs normalised with batch statistics, the usual one-pass approximation.

    Momenta and the train/eval flag are restored afterwards; ``num_batches_tracked`` = batches seen.
    """
    bns = _batchnorms(model)
    if not bns:
        return
    if x.shape[0] < 2:
        raise ConfigError("recompute_bn_statistics needs at least 2 samples")
    device = _device_of(model)
    was_training = model.training
    momenta = [m.momentum for m in bns]
    pooled: dict[int, list] = {i: [0, None, None] for i in range(len(bns))}  # count, mean, M2

    def make_hook(i: int):
        def hook(module, inputs):
            (inp,) = inputs
            dims = [0, *range(2, inp.dim())]
            data = inp.detach()
            n = data.numel() // data.shape[1]
            mean = data.mean(dim=dims)
            shape = [1, -1] + [1] * (inp.dim() - 2)
            m2 = ((data - mean.view(shape)) ** 2).sum(dim=dims)
            mean, m2 = mean.double(), m2.double()
            count, mean_all, m2_all = pooled[i]
            if count == 0:
                pooled[i] = [n, mean, m2]
            else:
                total = count + n
                delta = mean - mean_all
                pooled[i] = [
                    total,
                    mean_all + delta * (n / total),
                    m2_all + m2 + delta**2 * (count * n / total),
                ]

        return hook

    handles = [m.register_forward_pre_hook(make_hook(i)) for i, m in enumerate(bns)]
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        batches = 0
        with torch.no_grad():
            for xb in x.split(batch_size):
                model(xb.to(device, non_blocking=True))
                batches += 1
                if progress is not None:
                    progress.update()
        with torch.no_grad():
            for i, m in enumerate(bns):
                count, mean, m2 = pooled[i]
                m.running_mean.copy_(mean.to(m.running_mean.dtype))
                m.running_var.copy_((m2 / max(count - 1, 1)).to(m.running_var.dtype))
                m.num_batches_tracked.fill_(batches)
    finally:
        for h in handles:
            h.remove()
        for m, momentum in zip(bns, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)


def evaluate_model(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> dict:
    """Mean cross-entropy, error fraction and predicted labels of ``model`` in eval mode."""
    device = _device_of(model)
    was_training = model.training
    model.eval()
    total_loss, wrong, preds = 0.0, 0, []
    try:
        with torch.no_grad():
            for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                out = model(xb)
                total_loss += F.cross_entropy(out, yb, reduction="sum").item()
                pred = out.argmax(dim=1)
                wrong += int((pred != yb).sum().item())
                preds.append(pred.cpu())
    finally:
        model.train(was_training)
    n = y.shape[0]
    return {"loss": total_loss / n, "error": wrong / n, "predictions": torch.cat(preds)}


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
    if bn_subset is None or bn_subset >= x_train.shape[0]:
        return x_train
    gen = torch.Generator().manual_seed(int(bn_seed))
    idx = torch.randperm(x_train.shape[0], generator=gen)[:bn_subset].sort().values
    return x_train[idx.to(x_train.device)]


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
    keys or a tuple ``(x_train, y_train, x_test, y_test)``. Returns floats ``train_loss``,
    ``train_error``, ``test_loss``, ``test_error`` (errors as fractions).
    """
    x_train, y_train, x_test, y_test = _unpack(data)
    load_point(model, point.to(_device_of(model)))
    if has_batchnorm(model):
        recompute_bn_statistics(model, _bn_data(x_train, bn_subset, bn_seed), batch_size)
    train = evaluate_model(model, x_train, y_train, batch_size)
    test = evaluate_model(model, x_test, y_test, batch_size)
    return {
        "train_loss": train["loss"],
        "train_error": train["error"],
        "test_loss": test["loss"],
        "test_error": test["error"],
    }


def dense_positions(n_pivots: int, n_between: int) -> np.ndarray:
    """Positions ``t`` of all pivots and ``n_between`` interior points per gap, ascending."""
    if n_pivots < 2:
        raise ConfigError(f"a path needs at least 2 pivots, got {n_pivots}")
    if n_between < 0:
        raise ConfigError(f"n_between must be >= 0, got {n_between}")
    alphas = np.arange(n_between + 1) / (n_between + 1)
    t = (np.arange(n_pivots - 1)[:, None] + alphas[None, :]).reshape(-1)
    return np.append(t, float(n_pivots - 1))


def point_at(pivots: Tensor, t: float) -> Tensor:
    """The point at position ``t`` of the polyline through ``pivots`` (chord interpolation)."""
    n = pivots.shape[0]
    if not 0.0 <= t <= n - 1:
        raise ConfigError(f"position t={t} outside the path [0, {n - 1}]")
    i = min(int(np.floor(t)), n - 2)
    alpha = t - i
    if alpha == 0.0:
        return pivots[i]
    if alpha == 1.0:
        return pivots[i + 1]
    return pivots[i] * (1.0 - alpha) + pivots[i + 1] * alpha


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
    out = {name: np.empty(len(t)) for name in METRICS}
    for k, s in enumerate(t):
        metrics = evaluate_point(model, point_fn(float(s)), data, batch_size, bn_subset, bn_seed)
        for name in METRICS:
            out[name][k] = metrics[name]
        if progress is not None:
            progress.update(train_loss=metrics["train_loss"])
    out["t"] = np.asarray(t, dtype=np.float64)
    return out


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
