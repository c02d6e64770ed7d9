"""A network of your own: any nn.Module, built by build(num_classes, input_shape, **kwargs)."""

import math

from torch import nn


class TinyNet(nn.Module):
    def __init__(self, num_classes, input_shape, width):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(input_shape), width),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Linear(width, num_classes),
        )

    def forward(self, x):
        return self.body(x)


def build_tiny(num_classes, input_shape, width=8):
    return TinyNet(num_classes, input_shape, width)
