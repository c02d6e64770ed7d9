"""Model registry: ``build_model(name, num_classes, input_shape)``.

Names are lower case. The 14 architectures of the paper are listed in :data:`MODEL_NAMES`;
general patterns (any width / depth, any input shape):

==========================  =====================================================================
``cnn-{W}``, ``cnn-{W}x{D}``  D (default 1) × [5×5 conv W ch. → 2×2 max-pool → BN → ReLU],
                              Linear→256, BN, ReLU, Linear (paper Section 4.2)
``resnet-{6n+2}[-proj]``      CIFAR ResNet (He et al. 2016); option-A zero-padding shortcuts, or
                              1×1 conv + BN projections with ``-proj``
``densenet-{L}-{k}``          DenseNet without bottleneck, (L-4)/3 layers per block
``densenet-bc-{L}-{k}``       DenseNet-BC (bottleneck 4k, compression 0.5), (L-4)/6 layers per block
``mlp-{W}``, ``mlp-{W}x{D}``  D (default 1) hidden ReLU layers of width W on the flattened input
==========================  =====================================================================

``input_shape`` is (C, H, W) or (F,); convolutional models read a flat (F,) with F a perfect square
as a 1-channel image (digits: 64 → 1×8×8).
"""

from __future__ import annotations

import re

from torch import nn

from ..errors import ConfigError
from .cnn import CNN
from .densenet import DenseNet
from .mlp import MLP
from .resnet import CifarResNet

__all__ = ["MODEL_NAMES", "PATTERNS", "build_model", "describe", "parameter_count"]

MODEL_NAMES: tuple[str, ...] = (
    "cnn-12",
    "cnn-24",
    "cnn-36",
    "cnn-48",
    "cnn-96",
    "cnn-48x2",
    "cnn-48x3",
    "resnet-8",
    "resnet-20",
    "resnet-32",
    "resnet-44",
    "resnet-56",
    "densenet-40-12",
    "densenet-bc-100-12",
)

PATTERNS: tuple[str, ...] = (
    "cnn-{W}",
    "cnn-{W}x{D}",
    "resnet-{6n+2}",
    "resnet-{6n+2}-proj",
    "densenet-{3n+4}-{k}",
    "densenet-bc-{6n+4}-{k}",
    "mlp-{W}",
    "mlp-{W}x{D}",
)

_CNN = re.compile(r"cnn-(\d+)(?:x(\d+))?")
_MLP = re.compile(r"mlp-(\d+)(?:x(\d+))?")
_RESNET = re.compile(r"resnet-(\d+)(-proj)?")
_DENSENET = re.compile(r"densenet-(bc-)?(\d+)-(\d+)")


def _unknown(name) -> ConfigError:
    return ConfigError(
        f"unknown model {name!r}; paper architectures: {', '.join(MODEL_NAMES)}; "
        f"general patterns: {', '.join(PATTERNS)}"
    )


def describe(name: str) -> dict:
    """Parse a model name: ``family`` (cnn/resnet/densenet/mlp), its hyper-parameters, a display
    ``label`` as the paper writes it (e.g. ``CNN-48×2``, ``DenseNet-100-12-BC``) and ``summary``.

    Raises :class:`~nobarriers.errors.ConfigError` for names matching no pattern (the depth rules
    of ResNets/DenseNets are checked by :func:`build_model`).
    """
    if not isinstance(name, str):
        raise _unknown(name)
    key = name.strip().lower()
    if m := _CNN.fullmatch(key):
        w, d = int(m[1]), int(m[2] or 1)
        return {
            "name": key,
            "family": "cnn",
            "width": w,
            "depth": d,
            "label": f"CNN-{w}" if d == 1 else f"CNN-{w}×{d}",
            "summary": f"{d} x (5x5 conv {w}, 2x2 max-pool, BN, ReLU), FC 256, BN, ReLU, linear",
        }
    if m := _MLP.fullmatch(key):
        w, d = int(m[1]), int(m[2] or 1)
        return {
            "name": key,
            "family": "mlp",
            "width": w,
            "depth": d,
            "label": f"MLP-{w}" if d == 1 else f"MLP-{w}×{d}",
            "summary": f"{d} hidden ReLU layer(s) of width {w}, linear",
        }
    if m := _RESNET.fullmatch(key):
        depth = int(m[1])
        shortcut = "projection" if m[2] else "A"
        return {
            "name": key,
            "family": "resnet",
            "depth": depth,
            "shortcut": shortcut,
            "label": f"ResNet-{depth}" + (" (proj.)" if m[2] else ""),
            "summary": f"CIFAR ResNet-{depth} (He et al. 2016), "
            + ("1x1 conv+BN projection shortcuts" if m[2] else "option-A zero-padding shortcuts"),
        }
    if m := _DENSENET.fullmatch(key):
        bc, depth, growth = bool(m[1]), int(m[2]), int(m[3])
        return {
            "name": key,
            "family": "densenet",
            "depth": depth,
            "growth": growth,
            "bc": bc,
            "label": f"DenseNet-{depth}-{growth}" + ("-BC" if bc else ""),
            "summary": f"CIFAR DenseNet{'-BC' if bc else ''} (Huang et al. 2017), depth {depth}, "
            f"growth {growth}",
        }
    raise _unknown(name)


def build_model(name: str, num_classes: int, input_shape) -> nn.Module:
    """A freshly initialised model; seed torch before calling for reproducible weights."""
    info = describe(name)
    if int(num_classes) < 1:
        raise ConfigError(f"model {name!r}: num_classes must be >= 1, got {num_classes}")
    shape = tuple(int(s) for s in input_shape)
    try:
        return _build(info, int(num_classes), shape)
    except ConfigError as exc:
        if info["name"] in str(exc):
            raise
        raise ConfigError(f"model {info['name']!r}: {exc}") from exc


def _build(info: dict, num_classes: int, shape: tuple[int, ...]) -> nn.Module:
    family = info["family"]
    if family == "cnn":
        return CNN(info["width"], info["depth"], num_classes, shape)
    if family == "mlp":
        return MLP(info["width"], info["depth"], num_classes, shape)
    if family == "resnet":
        return CifarResNet(info["depth"], num_classes, shape, shortcut=info["shortcut"])
    return DenseNet(info["depth"], info["growth"], num_classes, shape, bc=info["bc"])


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters (the dimension of a point)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
