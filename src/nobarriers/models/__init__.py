"""The model catalogue: one registry of the built-in families, and a user's own networks.

Every module of :mod:`nobarriers.models.families` that defines ``FAMILY`` (a
:class:`~nobarriers.models.family.ModelFamily`) is a family: adding a family is adding one file
there (and its test). Built-in names are lower case (``cnn-48x2``, ``resnet-20-proj``,
``densenet-bc-100-12``, ``mlp-32``); see :func:`patterns`. A user's own network is built by an
import path instead (:mod:`nobarriers.models.user`); the workflow's rows name it by the key of
the config's ``models`` section.

Torch-free until a network is built: the workflow checks names at start-up with this module.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from ..core.errors import ConfigError
from . import families as families_package
from .family import ModelFamily

__all__ = [
    "ModelFamily",
    "build_model",
    "check_model_name",
    "describe",
    "families",
    "paper_names",
    "parameter_count",
    "patterns",
]


@functools.cache
def families() -> dict[str, ModelFamily]:
    """``{name: family}`` of every module in :mod:`nobarriers.models.families`."""
    found = {}
    for info in sorted(pkgutil.iter_modules(families_package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{families_package.__name__}.{info.name}")
        family = getattr(module, "FAMILY", None)
        if isinstance(family, ModelFamily):
            if family.name in found:
                raise RuntimeError(f"two model families are named {family.name!r}")
            found[family.name] = family
    return found


def patterns() -> tuple[str, ...]:
    """Every family's name forms, e.g. ``cnn-{W}x{D}``."""
    return tuple(p for family in families().values() for p in family.patterns)


def paper_names() -> tuple[str, ...]:
    """The architectures of the paper (Table B.1)."""
    return tuple(n for family in families().values() for n in family.paper_names)


def _unknown(name) -> ConfigError:
    return ConfigError(
        f"unknown model {name!r}; paper architectures: {', '.join(paper_names())}; general "
        f"patterns: {', '.join(patterns())}; or a network of your own in the config's models: "
        "section"
    )


def _resolve(name: str) -> tuple[ModelFamily, dict]:
    if not isinstance(name, str):
        raise _unknown(name)
    key = name.strip().lower()
    for family in families().values():
        if m := family.match(key):
            return family, family.parse(m)
    raise _unknown(name)


def describe(name: str) -> dict:
    """A built-in model name parsed: ``name``, ``family``, its hyper-parameters, ``label`` (as
    the paper writes it, e.g. ``CNN-48×2``, ``DenseNet-100-12-BC``) and ``summary``.
    :class:`ConfigError` for a name no family accepts (or with impossible hyper-parameters)."""
    family, params = _resolve(name)
    return {
        "name": name.strip().lower(),
        "family": family.name,
        **params,
        "label": family.label(params),
        "summary": family.summary(params),
    }


def check_model_name(name: str) -> dict:
    """:func:`describe`, as a check of a config's architecture name."""
    return describe(name)


def build_model(name: str, num_classes: int, input_shape, spec: dict | None = None):
    """A freshly initialised network (seed torch before calling for reproducible weights).

    ``spec`` ``{"build": "package.module:function", "kwargs": {...}}`` builds a user's own
    network (:mod:`nobarriers.models.user`); without it ``name`` is a built-in model."""
    if int(num_classes) < 1:
        raise ConfigError(f"model {name!r}: num_classes must be >= 1, got {num_classes}")
    shape = tuple(int(s) for s in input_shape)
    if spec is not None:
        from .user import build_user_model

        return build_user_model(spec, int(num_classes), shape, where=f"models.{name}")
    family, params = _resolve(name)
    try:
        return family.build(params, int(num_classes), shape)
    except ConfigError as exc:
        key = name.strip().lower()
        if key in str(exc):
            raise
        raise ConfigError(f"model {key!r}: {exc}") from exc


def parameter_count(model) -> int:
    """Number of trainable parameters (the dimension of a point)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
