"""How rows are named in tables and figures: the paper's dataset labels, the model labels.

Built-in datasets and models have the labels their catalogue modules declare (``C10+``,
``CNN-48×2``, ``DenseNet-100-12-BC``); a user's own dataset or network is named by its name.
"""

from __future__ import annotations

from .. import datasets, models
from ..core.errors import ConfigError


def dataset_label(name: str) -> str:
    """``cifar10`` -> ``C10+`` (``+``: trained with augmentation), ``digits`` -> ``Digits``;
    a user's dataset: its name."""
    source = datasets.builtin().get(str(name).lower())
    return source.label if source is not None else str(name)


def arch_label(name: str) -> str:
    """A model's label as the paper writes it: ``CNN-48×2``, ``ResNet-20``,
    ``DenseNet-100-12-BC``; a user's network: its name."""
    try:
        return models.describe(name)["label"]
    except ConfigError:  # a user's network
        return str(name)


def arch_family(name: str) -> str:
    """The model family (``cnn``, ``resnet``, ``densenet``, ``mlp``) for grouping figures; a
    user's network is a family of its own."""
    try:
        return models.describe(name)["family"]
    except ConfigError:
        return str(name)
