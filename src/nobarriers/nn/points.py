"""Points and networks: a point is a network's trainable parameters as one flat vector.

Here: point <-> model (:func:`point_of`, :func:`load_point`), the BatchNorm layers of a model and
their exact statistics for a point (:func:`recompute_bn_statistics`), and the loss, error and
predictions of a model in eval mode (:func:`evaluate_model`). The lowest layer of the engine:
energies, evaluation, training and alignment all build on it.

Coordinates are the **trainable parameters only**, flattened in ``model.named_parameters()``
order; BatchNorm running statistics are never coordinates (docs/design.md, "Corrections to the
authors' code").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import ConfigError
from ..core.progress import Progress


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of the coordinates of a point, in ``named_parameters()`` order."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def point_of(model: nn.Module) -> Tensor:
    """Flatten the trainable parameters of ``model`` into one detached 1-D tensor (a point)."""
    params = [p.detach().reshape(-1) for _, p in trainable_parameters(model)]
    if not params:
        raise ConfigError(f"{type(model).__name__} has no trainable parameters")
    return torch.cat(params).clone()


def load_point(model: nn.Module, point: Tensor) -> nn.Module:
    """Write ``point`` into the trainable parameters of ``model`` (in place); returns ``model``.

    Buffers (e.g. BatchNorm running statistics) are left untouched: recompute them with
    :func:`recompute_bn_statistics` before evaluating the point.
    """
    params = trainable_parameters(model)
    dim = sum(p.numel() for _, p in params)
    if point.dim() != 1 or point.numel() != dim:
        raise ConfigError(
            f"point of shape {tuple(point.shape)} does not fit {type(model).__name__}, "
            f"which has {dim} trainable parameters"
        )
    with torch.no_grad():
        offset = 0
        for _, p in params:
            n = p.numel()
            p.copy_(point[offset : offset + n].view_as(p))
            offset += n
    return model


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``model`` that track running statistics, in module order."""
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` contains a BatchNorm layer that tracks running statistics."""
    return bool(batchnorm_layers(model))


def device_of(model: nn.Module) -> torch.device:
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
    bns = batchnorm_layers(model)
    if not bns:
        return
    if x.shape[0] < 2:
        raise ConfigError("recompute_bn_statistics needs at least 2 samples")
    device = device_of(model)
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
    device = device_of(model)
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


def predict_probabilities(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    """Softmax class probabilities ``[n, classes]`` (float64, CPU) of ``model`` in eval mode:
    what an ensemble averages."""
    device = device_of(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = [
                F.softmax(model(xb.to(device)).double(), dim=1).cpu() for xb in x.split(batch_size)
            ]
    finally:
        model.train(was_training)
    return torch.cat(parts)
