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

from torch import nn

from ..errors import ConfigError
from ..model_names import describe
from .cnn import CNN
from .densenet import DenseNet
from .mlp import MLP
from .resnet import CifarResNet


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
