"""CIFAR DenseNets of Huang et al. (2017): ``densenet-{3n+4}-{k}``, ``densenet-bc-{6n+4}-{k}``.

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

import functools

from ...core.errors import ConfigError
from ..family import HUANG_ET_AL_RECIPE, ModelFamily


def _parse(match) -> dict:
    bc, depth, growth = bool(match[1]), int(match[2]), int(match[3])
    step = 6 if bc else 3
    if depth < 4 + step or (depth - 4) % step:
        raise ConfigError(
            f"model {match[0]!r}: DenseNet{'-BC' if bc else ''} depth must be {step}n+4 >= "
            f"{4 + step}"
        )
    if growth < 1:
        raise ConfigError(f"model {match[0]!r}: the growth rate must be >= 1")
    return {"depth": depth, "growth": growth, "bc": bc}


def _label(p: dict) -> str:
    return f"DenseNet-{p['depth']}-{p['growth']}" + ("-BC" if p["bc"] else "")


def _summary(p: dict) -> str:
    return (
        f"CIFAR DenseNet{'-BC' if p['bc'] else ''} (Huang et al. 2017), depth {p['depth']}, "
        f"growth {p['growth']}"
    )


def build(params: dict, num_classes: int, input_shape: tuple):
    return _network()(params["depth"], params["growth"], num_classes, input_shape, params["bc"])


@functools.cache
def _network():
    """The nn.Module, defined on first use: torch is imported only when a network is built."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from ..layers import ImageInput, he_init, image_shape

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
        def __init__(self, depth, growth, num_classes, input_shape, bc, compression=None):
            super().__init__()
            name = f"densenet-{'bc-' if bc else ''}{depth}-{growth}"
            n = (depth - 4) // (6 if bc else 3)
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

    return DenseNet


FAMILY = ModelFamily(
    name="densenet",
    patterns=("densenet-{3n+4}-{k}", "densenet-bc-{6n+4}-{k}"),
    regex=r"densenet-(bc-)?(\d+)-(\d+)",
    parse=_parse,
    label=_label,
    summary=_summary,
    recipe=HUANG_ET_AL_RECIPE,
    build=build,
    paper_names=("densenet-40-12", "densenet-bc-100-12"),
)
