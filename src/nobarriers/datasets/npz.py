"""A user's dataset as one ``.npz`` file with ``x_train, y_train, x_test, y_test``::

    datasets:
      blobs: {npz: data/blobs.npz, augment: none}

Inputs ``[N, C, H, W]`` images, ``[N, H, W]`` one-channel images or ``[N, F]`` features, of any
real dtype (uint8 is scaled to [0, 1]); labels integers ``0..C-1``. The number of classes (the
largest label + 1, or ``num_classes``) and the input shape are read from the file, and the file
is checked before anything is trained on it (:func:`~nobarriers.datasets.base.check_arrays`).
The file's SHA-256 is the dataset's identity: a changed file changes every config hash of its
rows, so everything computed from it reruns; a moved file with the same bytes reruns nothing.
Read with ``allow_pickle=False``: an object array is refused, never unpickled.
"""

from __future__ import annotations

import functools
import os
import zipfile
from pathlib import Path

from ..core.checksums import file_digest
from ..core.errors import ConfigError, FileFormatError
from .base import Dataset, DatasetSource, check_arrays, input_shape_of, normalized_tensors

ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@functools.cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return file_digest(path)


def read_arrays(path, where: str) -> dict:
    """The four arrays of an ``.npz`` file (no pickle), or :class:`FileFormatError` naming it."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ARRAYS if k not in f.files]
            if missing:
                raise FileFormatError(
                    f"{where}: {path} has no array(s) {', '.join(missing)} (it holds "
                    f"{', '.join(f.files) or 'nothing'}); expected {', '.join(ARRAYS)}"
                )
            return {k: f[k] for k in ARRAYS}
    except FileFormatError:
        raise
    except FileNotFoundError:
        raise FileFormatError(f"{where}: {path}: file not found") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise FileFormatError(f"{where}: {path} is not a readable .npz file ({exc})") from None


class NpzSource(DatasetSource):
    """A dataset from a user's ``.npz`` file (``datasets.<name>`` in the config)."""

    def __init__(self, name: str, spec: dict):
        self.name = name
        self.path = Path(spec["npz"])
        self.label = name
        self.augment = spec.get("augment", "none")
        self.normalize = spec.get("normalize", "auto")
        self.given_classes = spec.get("num_classes")
        self.where = f"datasets.{name}.npz"

    def _stat(self):
        try:
            return os.stat(self.path)
        except OSError as exc:
            raise ConfigError(f"{self.where}: {self.path}: {exc.strerror or exc}") from None

    @functools.cached_property
    def _header(self) -> tuple[int, tuple]:
        """(classes, input shape), from the labels and the array headers only."""
        import numpy as np

        try:
            with zipfile.ZipFile(self.path) as z:
                with z.open("x_train.npy") as f:
                    fmt = np.lib.format
                    version = fmt.read_magic(f)
                    read = (
                        fmt.read_array_header_1_0
                        if version == (1, 0)
                        else fmt.read_array_header_2_0
                    )
                    shape, _, _ = read(f)
            with np.load(self.path, allow_pickle=False) as f:
                high = max(int(f["y_train"].max()), int(f["y_test"].max()))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise FileFormatError(
                f"{self.where}: {self.path} is not a readable .npz with {', '.join(ARRAYS)} ({exc})"
            ) from None
        classes = int(self.given_classes) if self.given_classes else high + 1
        return classes, input_shape_of(shape)

    @property
    def num_classes(self) -> int:
        return self._header[0]

    @functools.cached_property
    def sizes(self) -> tuple[int, int]:
        import numpy as np

        with np.load(self.path, allow_pickle=False) as f:
            return len(f["y_train"]), len(f["y_test"])

    @property
    def input_shape(self) -> tuple:
        return self._header[1]

    def sha256(self) -> str:
        st = self._stat()
        return _digest(os.fspath(self.path.resolve()), st.st_size, st.st_mtime_ns)

    def identity(self) -> dict:
        return {
            "sha256": self.sha256(),
            "augment": self.augment,
            "normalize": self.normalize,
            "num_classes": self.given_classes,
        }

    def inputs(self) -> list[str]:
        return [os.fspath(self.path)]

    def arrays(self) -> dict:
        arrays = read_arrays(self.path, self.where)
        check_arrays(f"{self.where} ({self.path})", arrays, self.given_classes)
        return arrays

    def prepare(self, root, checksums=None, local_copy=None) -> None:
        self.arrays()

    def load(self, root, device="cpu", checksums=None, verify: bool = True) -> Dataset:
        return dataset_from_arrays(self, self.arrays(), device)


def dataset_from_arrays(source: DatasetSource, arrays: dict, device) -> Dataset:
    """A checked set of arrays as a :class:`Dataset` of ``source`` (its normalisation, its
    augmentation): ``normalize: auto`` is ``per_channel`` for images, ``per_feature`` for
    feature vectors."""
    import torch

    classes = check_arrays(source.name, arrays, getattr(source, "given_classes", None))
    normalize = source.normalize
    if normalize == "auto":
        normalize = "per_feature" if arrays["x_train"].ndim == 2 else "per_channel"
    if source.augment == "crop_flip" and arrays["x_train"].ndim not in (3, 4):
        raise ConfigError(
            f"datasets.{source.name}.augment: crop_flip needs images, the inputs have shape "
            f"{arrays['x_train'].shape[1:]}"
        )
    x_train, x_test, mean, std = normalized_tensors(arrays, normalize, device)
    return Dataset(
        name=source.name,
        num_classes=classes,
        input_shape=tuple(x_train.shape[1:]),
        x_train=x_train,
        y_train=torch.as_tensor(arrays["y_train"].astype("int64"), device=device),
        x_test=x_test,
        y_test=torch.as_tensor(arrays["y_test"].astype("int64"), device=device),
        augment=source.augment,
        mean=mean,
        std=std,
    )
