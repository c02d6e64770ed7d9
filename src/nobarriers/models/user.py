"""A researcher's own network, named by import path in the config::

    models:
      tiny_net: {build: "mylab.nets:build_tiny", kwargs: {width: 8}}

``build(num_classes, input_shape, **kwargs)`` must return a freshly initialised
``torch.nn.Module`` whose output is ``[batch, num_classes]`` logits. The module is looked up on
``sys.path`` with the working directory first (Snakemake runs every job there), then
``PYTHONPATH`` and the installed packages. The import path and the keyword arguments are the
model's identity: they are recorded in every minimum and path file and enter the config hashes.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback

from ..core.errors import ConfigError


def import_object(path: str, where: str):
    """The object an import path ``package.module:attribute`` names (``package.module.attribute``
    works too). ``where`` names the config key in errors, which show the import's own error."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{where}: an import path 'package.module:function' is required")
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{where}: {path!r} is not an import path 'package.module:function'")
    cwd = os.getcwd()
    if cwd not in sys.path:  # a script's sys.path[0] is its own folder, not the working dir
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raises, shown as is
        last = traceback.extract_tb(exc.__traceback__)[-1]
        raise ConfigError(
            f"{where}: cannot import {module_name!r} ({type(exc).__name__}: {exc}; at "
            f"{last.filename}:{last.lineno}); the module must be importable from the working "
            f"directory {cwd} or PYTHONPATH"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(
            f"{where}: module {module_name!r} ({getattr(module, '__file__', '?')}) has no "
            f"attribute {attr!r}"
        ) from None


def user_builder(spec: dict, where: str):
    """The builder of a user model ``{"build": path, "kwargs": {...}}``, its signature checked
    against ``build(num_classes, input_shape, **kwargs)``."""
    build = import_object(spec["build"], f"{where}.build")
    if not callable(build):
        raise ConfigError(f"{where}.build: {spec['build']!r} is not callable")
    try:
        inspect.signature(build).bind(10, (1, 8, 8), **spec.get("kwargs", {}))
    except TypeError as exc:
        raise ConfigError(
            f"{where}.build: {spec['build']!r} has the wrong signature "
            f"{inspect.signature(build)} for build(num_classes, input_shape, **kwargs) with "
            f"kwargs {sorted(spec.get('kwargs', {}))}: {exc}"
        ) from None
    except ValueError:  # builtins without a signature: left to the call itself
        pass
    return build


def build_user_model(spec: dict, num_classes: int, input_shape: tuple, where: str = "model"):
    """Call a user model's builder; the result must be an ``nn.Module`` with trainable
    parameters."""
    from torch import nn

    build = user_builder(spec, where)
    try:
        model = build(
            int(num_classes), tuple(int(s) for s in input_shape), **spec.get("kwargs", {})
        )
    except Exception as exc:  # noqa: BLE001 - the user's code; its error, named
        raise ConfigError(
            f"{where}.build: {spec['build']}({num_classes}, {tuple(input_shape)}, "
            f"**{spec.get('kwargs', {})}) raised {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"{where}.build: {spec['build']!r} returned {type(model).__name__}, not a "
            "torch.nn.Module"
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"{where}.build: {spec['build']!r} returned a model without trainable "
                          "parameters")  # fmt: skip
    return model
