"""CIFAR DenseNets of Huang et al. (2017): DenseNet-L-k and DenseNet-BC-L-k.

Standard CIFAR definition (Huang et al.'s Torch code): an initial 3×3 convolution with 16
channels (2k for BC), three dense blocks separated by transitions (BN-ReLU-1×1 conv-2×2 average
pool), and a final BN-ReLU-global average pool-linear classifier. Convolutions have no bias.

* DenseNet-L-k: (L-4)/3 layers per block, each BN-ReLU-3×3 conv producing k channels; transitions
  keep the channel count.
* DenseNet-BC-L-k: (L-4)/6 layers per block, each BN-ReLU-1×1 conv (4k) - BN-ReLU-3×3 conv (k);
  transitions compress the channels by 0.5.

No dropout (the augmented-data setting of Huang et al. uses none).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .common import ImageInput, he_init, image_shape


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int, bottleneck: bool):
        super().__init__()
        self.bottleneck = bottleneck
        if bottleneck:
            self.bn0 = nn.BatchNorm2d(c_in)
            self.conv0 = nn.Conv2d(c_in, 4 * growth, 1, bias=False)
            c_in = 4 * growth
        self.bn = nn.BatchNorm2d(c_in)
        self.conv = nn.Conv2d(c_in, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.bottleneck:
            out = self.conv0(F.relu(self.bn0(out)))
        out = self.conv(F.relu(self.bn(out)))
        return torch.cat([x, out], dim=1)


class Transition(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(c_in)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(nn.Module):
    def __init__(
        self,
        depth: int,
        growth: int,
        num_classes: int,
        input_shape: tuple[int, ...],
        bc: bool = False,
        compression: float | None = None,
    ):
        super().__init__()
        name = f"densenet-{'bc-' if bc else ''}{depth}-{growth}"
        per_layer = 6 if bc else 3
        if growth < 1 or depth < 4 + per_layer or (depth - 4) % per_layer:
            raise ConfigError(
                f"model {name!r}: depth must be {per_layer}n+4 with n >= 1 and growth >= 1"
            )
        n = (depth - 4) // per_layer
        if compression is None:
            compression = 0.5 if bc else 1.0
        self.input = ImageInput(input_shape)
        channels, height, width = image_shape(input_shape)
        if min(height, width) < 4:
            raise ConfigError(
                f"model {name!r}: input {tuple(input_shape)} too small for 2 poolings"
            )
        c = 2 * growth if bc else 16
        self.conv = nn.Conv2d(channels, c, 3, padding=1, bias=False)
        stages: list[nn.Module] = []
        for block in range(3):
            for _ in range(n):
                stages.append(DenseLayer(c, growth, bc))
                c += growth
            if block < 2:
                c_out = int(c * compression)
                stages.append(Transition(c, c_out))
                c = c_out
        self.features = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.conv(self.input(x)))
        x = F.adaptive_avg_pool2d(F.relu(self.bn(x)), 1).flatten(1)
        return self.fc(x)
