"""How rows are named in tables and figures: the paper's dataset labels, the model labels."""

from __future__ import annotations

from ..errors import ConfigError
from ..model_names import describe

_DATASET_LABELS = {"cifar10": "C10+", "cifar100": "C100+", "digits": "Digits"}


def dataset_label(name: str) -> str:
    """``cifar10`` -> ``C10+``, ``cifar100`` -> ``C100+`` (the paper's labels; ``+``: trained
    with augmentation), ``digits`` -> ``Digits``; other names capitalised."""
    key = str(name).lower()
    return _DATASET_LABELS.get(key, str(name)[:1].upper() + str(name)[1:])


def arch_label(name: str) -> str:
    """A model's label as the paper writes it: ``CNN-48×2``, ``ResNet-20``,
    ``DenseNet-100-12-BC``; names that are no model are returned as given."""
    try:
        return describe(name)["label"]
    except ConfigError:  # not a model name: shown as given
        return str(name)


def arch_family(name: str) -> str:
    """The model family (``cnn``, ``resnet``, ``densenet``, ``mlp``), for grouping figures."""
    try:
        return describe(name)["family"]
    except ConfigError:
        return str(name).strip().lower().split("-", 1)[0]
