"""CIFAR ResNets of He et al. (2016, Section 4.2): ``resnet-{6n+2}``, ``resnet-{6n+2}-proj``.

A 3×3 convolution with 16 channels, three stages of ``n`` basic blocks (two 3×3 convolutions with
BatchNorm and ReLU) with 16, 32 and 64 channels (stride 2 at the first block of stages 2 and 3),
global average pooling and a linear classifier. Shortcuts where the shape changes:

* option A (default, He et al.'s CIFAR choice): parameter-free -- subsample by 2 and pad the new
  channels with zeros. ResNet-20 on CIFAR10: 269,722 parameters.
* ``-proj`` (the authors' AutoNEB code): 1×1 convolution (stride 2, no bias) + BatchNorm.
  ResNet-20 on CIFAR10: 272,474 parameters.
"""

from __future__ import annotations

import functools

from ...core.errors import ConfigError
from ..family import HE_ET_AL_RECIPE, ModelFamily

WIDTHS = (16, 32, 64)


def _parse(match) -> dict:
    depth = int(match[1])
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(f"model {match[0]!r}: ResNet depth must be 6n+2 >= 8")
    return {"depth": depth, "shortcut": "projection" if match[2] else "A"}


def _label(p: dict) -> str:
    return f"ResNet-{p['depth']}" + (" (proj.)" if p["shortcut"] == "projection" else "")


def _summary(p: dict) -> str:
    shortcut = (
        "1x1 conv+BN projection shortcuts"
        if p["shortcut"] == "projection"
        else "option-A zero-padding shortcuts"
    )
    return f"CIFAR ResNet-{p['depth']} (He et al. 2016), {shortcut}"


def build(params: dict, num_classes: int, input_shape: tuple):
    return _network()(params["depth"], num_classes, input_shape, params["shortcut"])


@functools.cache
def _network():
    """The nn.Module, defined on first use: torch is imported only when a network is built."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from ..layers import ImageInput, he_init, image_shape

    class PadShortcut(nn.Module):
        """Option A: ``x[:, :, ::stride, ::stride]`` with zero channels appended."""

        def __init__(self, c_in: int, c_out: int, stride: int):
            super().__init__()
            self.stride = stride
            self.extra = c_out - c_in

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x[:, :, :: self.stride, :: self.stride]
            return F.pad(x, (0, 0, 0, 0, 0, self.extra))

    class BasicBlock(nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int, shortcut: str):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            if stride == 1 and c_in == c_out:
                self.shortcut: nn.Module = nn.Identity()
            elif shortcut == "A":
                self.shortcut = PadShortcut(c_in, c_out, stride)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
                )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))

    class CifarResNet(nn.Module):
        def __init__(self, depth: int, num_classes: int, input_shape: tuple, shortcut: str):
            super().__init__()
            n = (depth - 2) // 6
            self.input = ImageInput(input_shape)
            channels = image_shape(input_shape)[0]
            self.conv = nn.Conv2d(channels, WIDTHS[0], 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(WIDTHS[0])
            blocks: list[nn.Module] = []
            c_in = WIDTHS[0]
            for stage, c_out in enumerate(WIDTHS):
                for i in range(n):
                    stride = 2 if stage > 0 and i == 0 else 1
                    blocks.append(BasicBlock(c_in, c_out, stride, shortcut))
                    c_in = c_out
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(c_in, num_classes)
            he_init(self)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu(self.bn(self.conv(self.input(x))))
            x = self.blocks(x)
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
            return self.fc(x)

    return CifarResNet


FAMILY = ModelFamily(
    name="resnet",
    patterns=("resnet-{6n+2}", "resnet-{6n+2}-proj"),
    regex=r"resnet-(\d+)(-proj)?",
    parse=_parse,
    label=_label,
    summary=_summary,
    recipe=HE_ET_AL_RECIPE,
    build=build,
    paper_names=("resnet-8", "resnet-20", "resnet-32", "resnet-44", "resnet-56"),
)
