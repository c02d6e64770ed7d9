"""Fully connected ReLU networks ``mlp-W`` / ``mlp-WxD`` (D hidden layers of width W)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError


class MLP(nn.Module):
    def __init__(self, width: int, depth: int, num_classes: int, input_shape: tuple[int, ...]):
        super().__init__()
        if width < 1 or depth < 1:
            raise ConfigError(f"model 'mlp-{width}x{depth}': width and depth must be >= 1")
        features = math.prod(int(s) for s in input_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        for _ in range(depth):
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        layers.append(nn.Linear(features, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
