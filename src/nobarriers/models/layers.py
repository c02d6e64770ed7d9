"""Layers the families share (torch): input-shape handling and He initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..core.errors import ConfigError


def image_shape(input_shape) -> tuple[int, int, int]:
    """(C, H, W) of an input shape; a flat shape (F,) with F a perfect square becomes (1, s, s)."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        return shape  # type: ignore[return-value]
    if len(shape) == 1:
        side = math.isqrt(shape[0])
        if side * side == shape[0]:
            return (1, side, side)
        raise ConfigError(
            f"input shape {shape}: a convolutional model needs (C, H, W) or a flat (F,) with F a "
            "perfect square (read as a 1-channel F**0.5 x F**0.5 image); use an mlp-* model instead"
        )
    raise ConfigError(f"input shape {shape}: expected (C, H, W) or (F,)")


class ImageInput(nn.Module):
    """Reshape flat inputs [N, F] to [N, 1, s, s] when the model was built for a flat shape."""

    def __init__(self, input_shape):
        super().__init__()
        self.shape = image_shape(input_shape)
        self.flat = len(tuple(input_shape)) == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flat or x.dim() == 2:
            return x.reshape(x.shape[0], *self.shape)
        return x


def he_init(module: nn.Module) -> None:
    """He et al. (2015) normal init for convolutions (std sqrt(2 / (k*k*c_out))), BN to (1, 0).

    This is what the reference implementations of ResNet (torchvision, He et al.'s Torch code) and
    DenseNet (Huang et al.'s Torch code) use; linear layers keep PyTorch's default and a zero bias.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
