"""The dataset catalogue: the built-in datasets, one module each, and a user's own.

Every module of :mod:`nobarriers.datasets.builtin` that defines ``SOURCES`` adds its datasets
(digits, CIFAR10/100, ...): adding a built-in dataset is adding one module there. A user's
dataset is defined in the config's ``datasets`` section, by an ``.npz`` file
(:mod:`~nobarriers.datasets.npz`), a loader function (:mod:`~nobarriers.datasets.imported`) or as
a seeded subset of another dataset (:mod:`~nobarriers.datasets.subset`).
All of them are a :class:`~nobarriers.datasets.base.DatasetSource`: what is known before loading
(classes, input shape, augmentation, identity), ``prepare`` (download, verify, cache) and
``load`` (normalised tensors). Torch-free until data are loaded.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from ..core.errors import ConfigError
from . import builtin as _builtin_package
from .base import Dataset, DatasetSource

__all__ = ["Dataset", "DatasetSource", "builtin", "dataset_source", "load_dataset",
           "prepare_dataset"]  # fmt: skip


@functools.cache
def builtin() -> dict[str, DatasetSource]:
    """``{name: source}`` of every module in :mod:`nobarriers.datasets.builtin`."""
    found: dict[str, DatasetSource] = {}
    for info in sorted(pkgutil.iter_modules(_builtin_package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{_builtin_package.__name__}.{info.name}")
        for source in getattr(module, "SOURCES", []):
            if source.name in found:
                raise RuntimeError(f"two built-in datasets are named {source.name!r}")
            found[source.name] = source
    return found


def dataset_source(name: str, definitions: dict | None = None) -> DatasetSource:
    """The source of a dataset: a built-in one, or one the config defines (``definitions``, the
    config's ``datasets`` section, ``{name: {npz: ...} | {load: ...}}``)."""
    key = str(name).strip()
    spec = (definitions or {}).get(key)
    if spec is not None:
        if key in builtin():
            raise ConfigError(f"datasets.{key}: {key!r} is a built-in dataset; choose another name")
        if "npz" in spec:
            from .npz import NpzSource

            return NpzSource(key, spec)
        if "subset_of" in spec:
            from .subset import SubsetSource

            if spec["subset_of"] == key:
                raise ConfigError(f"datasets.{key}.subset_of: a dataset cannot be its own subset")
            return SubsetSource(key, spec, dataset_source(spec["subset_of"], definitions))
        from .imported import ImportedSource

        return ImportedSource(key, spec)
    if key.lower() in builtin():
        return builtin()[key.lower()]
    defined = sorted(definitions or {})
    raise ConfigError(
        f"unknown dataset {name!r}; built-in: {', '.join(builtin())}"
        + (f"; defined in the config: {', '.join(defined)}" if defined else "")
        + "; define your own in the config's datasets: section (npz:, load: or subset_of:)"
    )


def prepare_dataset(
    name: str, root, checksums=None, definitions: dict | None = None, local_copy=None
) -> None:
    """Make a dataset available under ``root`` (download and verify, or check and cache);
    ``local_copy``: a folder holding its original files, taken instead of a download."""
    dataset_source(name, definitions).prepare(root, checksums, local_copy)


def load_dataset(
    name: str,
    root=None,
    device="cpu",
    *,
    verify: bool = True,
    checksums=None,
    definitions: dict | None = None,
) -> Dataset:
    """A dataset as normalised tensors on ``device`` (no download; see :func:`prepare_dataset`).
    ``checksums`` replaces a built-in's expected md5s per file name (a local mirror, or the
    archives the test suite generates); ``verify=False`` skips them."""
    return dataset_source(name, definitions).load(
        root, device=device, checksums=checksums, verify=verify
    )
