"""CNN-W×D, the plain CNNs of the paper (Section 4.2): ``cnn-{W}``, ``cnn-{W}x{D}``.

Each of the ``D`` convolutional layers is a 5×5 convolution (padding 2, with bias) followed by a
2×2 max-pool, BatchNorm2d and ReLU; then one hidden fully connected layer of width 256 with
BatchNorm1d and ReLU, and a linear classifier. On CIFAR10 (3×32×32, 10 classes) this gives the
parameter counts of docs/design.md, e.g. CNN-12: 790,706 and CNN-48×3: 319,178.

Initialisation: PyTorch's defaults -- convolution and linear weights and biases uniform in
+-1/sqrt(fan_in) (``kaiming_uniform_(a=sqrt(5))``), BatchNorm weight 1 and bias 0. The paper does
not state an initialisation; the authors' code draws every weight from N(0, 1/fan_in) with zero
biases (its ``param_init``), the same scale up to the distribution's shape (the uniform's
standard deviation is 1/sqrt(3 fan_in)).
"""

from __future__ import annotations

import functools

from ...core.errors import ConfigError
from ..family import HE_ET_AL_RECIPE, ModelFamily

HIDDEN = 256


def _parse(match) -> dict:
    width, depth = int(match[1]), int(match[2] or 1)
    if width < 1 or depth < 1:
        raise ConfigError(f"model {match[0]!r}: width and depth must be >= 1")
    return {"width": width, "depth": depth}


def _label(p: dict) -> str:
    return f"CNN-{p['width']}" if p["depth"] == 1 else f"CNN-{p['width']}×{p['depth']}"


def _summary(p: dict) -> str:
    return (
        f"{p['depth']} x (5x5 conv {p['width']}, 2x2 max-pool, BN, ReLU), FC {HIDDEN}, BN, ReLU, "
        "linear"
    )


def build(params: dict, num_classes: int, input_shape: tuple):
    return _network()(params["width"], params["depth"], num_classes, input_shape)


@functools.cache
def _network():
    """The nn.Module, defined on first use: torch is imported only when a network is built."""
    import torch
    from torch import nn

    from ..layers import ImageInput, image_shape

    class CNN(nn.Module):
        def __init__(self, width: int, depth: int, num_classes: int, input_shape: tuple):
            super().__init__()
            self.input = ImageInput(input_shape)
            channels, height, width_px = image_shape(input_shape)
            for _ in range(depth):
                height, width_px = height // 2, width_px // 2
            if height < 1 or width_px < 1:
                raise ConfigError(
                    f"model 'cnn-{width}x{depth}': {depth} 2x2 max-pools do not fit an input of "
                    f"shape {tuple(input_shape)} (spatial size would drop to {height}x{width_px})"
                )
            layers: list[nn.Module] = []
            c_in = channels
            for _ in range(depth):
                layers += [
                    nn.Conv2d(c_in, width, kernel_size=5, padding=2, bias=True),
                    nn.MaxPool2d(2),
                    nn.BatchNorm2d(width),
                    nn.ReLU(),
                ]
                c_in = width
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(
                nn.Flatten(),
                nn.Linear(width * height * width_px, HIDDEN),
                nn.BatchNorm1d(HIDDEN),
                nn.ReLU(),
                nn.Linear(HIDDEN, num_classes),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.features(self.input(x)))

    return CNN


FAMILY = ModelFamily(
    name="cnn",
    patterns=("cnn-{W}", "cnn-{W}x{D}"),
    regex=r"cnn-(\d+)(?:x(\d+))?",
    parse=_parse,
    label=_label,
    summary=_summary,
    recipe=HE_ET_AL_RECIPE,
    build=build,
    paper_names=("cnn-12", "cnn-24", "cnn-36", "cnn-48", "cnn-96", "cnn-48x2", "cnn-48x3"),
)
