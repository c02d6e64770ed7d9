"""Fully connected ReLU networks ``mlp-{W}``, ``mlp-{W}x{D}``: D hidden layers of width W on the
flattened input (not in the paper; the cheap family of the digits demo and the width studies).

Default recipe: He et al.'s, the paper's (a row on digits takes the digits recipe instead).
"""

from __future__ import annotations

import functools
import math

from ...core.errors import ConfigError
from ..family import HE_ET_AL_RECIPE, ModelFamily


def _parse(match) -> dict:
    width, depth = int(match[1]), int(match[2] or 1)
    if width < 1 or depth < 1:
        raise ConfigError(f"model {match[0]!r}: width and depth must be >= 1")
    return {"width": width, "depth": depth}


def _label(p: dict) -> str:
    return f"MLP-{p['width']}" if p["depth"] == 1 else f"MLP-{p['width']}×{p['depth']}"


def _summary(p: dict) -> str:
    return f"{p['depth']} hidden ReLU layer(s) of width {p['width']}, linear"


def build(params: dict, num_classes: int, input_shape: tuple):
    return _network()(params["width"], params["depth"], num_classes, input_shape)


@functools.cache
def _network():
    """The nn.Module, defined on first use: torch is imported only when a network is built."""
    import torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self, width: int, depth: int, num_classes: int, input_shape: tuple):
            super().__init__()
            features = math.prod(int(s) for s in input_shape)
            layers: list[nn.Module] = [nn.Flatten()]
            for _ in range(depth):
                layers += [nn.Linear(features, width), nn.ReLU()]
                features = width
            layers.append(nn.Linear(features, num_classes))
            self.net = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    return MLP


FAMILY = ModelFamily(
    name="mlp",
    patterns=("mlp-{W}", "mlp-{W}x{D}"),
    regex=r"mlp-(\d+)(?:x(\d+))?",
    parse=_parse,
    label=_label,
    summary=_summary,
    recipe=HE_ET_AL_RECIPE,
    build=build,
)
