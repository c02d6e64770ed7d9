"""Plain CNNs of the paper (Section 4.2): ``CNN-W×D``.

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

import torch
from torch import nn

from ..errors import ConfigError
from .common import ImageInput, image_shape

HIDDEN = 256


class CNN(nn.Module):
    def __init__(self, width: int, depth: int, num_classes: int, input_shape: tuple[int, ...]):
        super().__init__()
        if width < 1 or depth < 1:
            raise ConfigError(f"model 'cnn-{width}x{depth}': width and depth must be >= 1")
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
