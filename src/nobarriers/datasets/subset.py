"""A seeded subset of another dataset, for runs that must be small::

    datasets:
      fashion-5k: {subset_of: fashion-mnist, n_train: 5000}

``n_train`` training samples (and ``n_test`` test samples; null: all) drawn without replacement
with ``seed``, in their original order; the inputs keep the full training set's normalisation.
The base dataset, the sizes and the seed are the subset's identity.
"""

from __future__ import annotations

from ..core.errors import ConfigError
from .base import Dataset, DatasetSource


def _indices(n: int, size: int | None, seed: int, where: str):
    import numpy as np

    if size is None:
        return None
    if size > n:
        raise ConfigError(f"{where}: {size} samples asked for, the dataset has {n}")
    return np.sort(np.random.default_rng(seed).permutation(n)[:size])


class SubsetSource(DatasetSource):
    """``n_train`` / ``n_test`` samples of ``base`` (a source), drawn with ``seed``."""

    def __init__(self, name: str, spec: dict, base: DatasetSource):
        self.name, self.base = name, base
        self.n_train, self.n_test = spec["n_train"], spec.get("n_test")
        self.seed = spec.get("seed", 0)
        self.label = f"{base.label} ({self.n_train // 1000}k)" if self.n_train >= 1000 else name
        self.augment, self.recipe = base.augment, base.recipe
        self.num_classes, self.input_shape = base.num_classes, base.input_shape
        if base.sizes is not None:
            self.sizes = (self.n_train, self.n_test or base.sizes[1])

    def identity(self) -> dict:
        return {
            "subset_of": self.base.name,
            **({"base": self.base.identity()} if self.base.identity() else {}),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "seed": self.seed,
        }

    def inputs(self) -> list[str]:
        return self.base.inputs()

    def prepare(self, root, checksums=None, local_copy=None) -> None:
        self.base.prepare(root, checksums, local_copy)

    def load(self, root, device="cpu", checksums=None, verify: bool = True) -> Dataset:
        import torch

        data = self.base.load(root, "cpu", checksums, verify)
        where = f"datasets.{self.name}"
        train = _indices(len(data.y_train), self.n_train, self.seed, f"{where}.n_train")
        test = _indices(len(data.y_test), self.n_test, self.seed + 1, f"{where}.n_test")

        def pick(x, idx):
            return (x if idx is None else x[torch.from_numpy(idx)]).to(device)

        return Dataset(
            name=self.name,
            num_classes=data.num_classes,
            input_shape=data.input_shape,
            x_train=pick(data.x_train, train),
            y_train=pick(data.y_train, train),
            x_test=pick(data.x_test, test),
            y_test=pick(data.y_test, test),
            augment=data.augment,
            mean=data.mean,
            std=data.std,
        )
