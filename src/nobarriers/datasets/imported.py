"""A user's dataset from a function named by import path::

    datasets:
      shapes: {load: "mylab.data:load_shapes", kwargs: {n: 5000}, augment: none}

``load(**kwargs)`` returns the four arrays (a tuple ``(x_train, y_train, x_test, y_test)`` or a
mapping with those keys; numpy arrays or tensors), or a pair ``(train, test)`` of
torchvision-style datasets whose items are ``(input, label)``. The prepare job calls it once,
checks the data (:func:`~nobarriers.datasets.base.check_arrays`) and caches the arrays as
``<data_dir>/<name>/<name>.npz``; every job then reads that file. The import path and the
keyword arguments are the dataset's identity (a changed one reruns what depends on it); to take
a changed function's new output under the same identity, delete the cache and the dataset's
``data/<name>.json``.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import ConfigError, DatasetUnavailable
from ..models.user import import_object
from .base import Dataset, DatasetSource
from .npz import ARRAYS, dataset_from_arrays, read_arrays


def _numpy(value, where: str):
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot be read as an array ({exc})") from None


def _stack(ds, part: str, where: str) -> tuple:
    """(inputs, labels) of a torchvision-style dataset: every item ``(input, label)``."""
    import numpy as np

    xs, ys = [], []
    for i in range(len(ds)):
        x, y = ds[i]
        xs.append(_numpy(x, f"{where}: {part} item {i}"))
        ys.append(int(y))
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def arrays_from(result, where: str) -> dict:
    """The four arrays of what a user's loader returned."""
    if isinstance(result, dict):
        missing = [k for k in ARRAYS if k not in result]
        if missing:
            raise ConfigError(f"{where} returned a mapping without {', '.join(missing)}")
        return {k: _numpy(result[k], f"{where}: {k}") for k in ARRAYS}
    if isinstance(result, (tuple, list)) and len(result) == 4:
        keys = ("x_train", "y_train", "x_test", "y_test")
        return {k: _numpy(v, f"{where}: {k}") for k, v in zip(keys, result, strict=True)}
    if isinstance(result, (tuple, list)) and len(result) == 2:
        (x_tr, y_tr), (x_te, y_te) = (
            _stack(d, p, where) for d, p in zip(result, ("train", "test"), strict=True)
        )
        return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}
    raise ConfigError(
        f"{where} returned {type(result).__name__}; expected (x_train, y_train, x_test, y_test), "
        "a mapping with those keys, or (train_dataset, test_dataset)"
    )


class ImportedSource(DatasetSource):
    """A dataset from a user's function (``datasets.<name>.load`` in the config)."""

    def __init__(self, name: str, spec: dict):
        self.name = name
        self.function = spec["load"]
        self.kwargs = dict(spec.get("kwargs", {}))
        self.label = name
        self.augment = spec.get("augment", "none")
        self.normalize = spec.get("normalize", "auto")
        self.given_classes = spec.get("num_classes")
        self.where = f"datasets.{name}.load"

    def identity(self) -> dict:
        return {
            "load": self.function,
            "kwargs": self.kwargs,
            "augment": self.augment,
            "normalize": self.normalize,
            "num_classes": self.given_classes,
        }

    def cache(self, root) -> Path:
        return Path(root) / self.name / f"{self.name}.npz"

    def prepare(self, root, checksums=None, local_copy=None) -> None:
        import numpy as np

        from ..core.atomic import atomic_path
        from .base import check_arrays

        load = import_object(self.function, self.where)
        try:
            result = load(**self.kwargs)
        except Exception as exc:  # noqa: BLE001 - the user's code; its error, named
            raise ConfigError(
                f"{self.where}: {self.function}(**{self.kwargs}) raised {type(exc).__name__}: {exc}"
            ) from exc
        arrays = arrays_from(result, f"{self.where}: {self.function}")
        check_arrays(f"{self.where} ({self.function})", arrays, self.given_classes)
        with atomic_path(self.cache(root)) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def load(self, root, device="cpu", checksums=None, verify: bool = True) -> Dataset:
        cache = self.cache(root if root is not None else ".")
        if not cache.is_file():
            raise DatasetUnavailable(
                f"dataset {self.name!r}: {cache} is missing; the workflow's prepare_dataset job "
                "writes it (nobarriers.datasets.prepare_dataset)"
            )
        return dataset_from_arrays(self, read_arrays(cache, f"dataset {self.name} cache"), device)
