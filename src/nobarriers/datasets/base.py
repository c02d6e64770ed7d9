"""What every dataset is behind: :class:`DatasetSource` (prepare, load, what is known before
loading) and :class:`Dataset` (the loaded tensors), with the checks every loaded dataset passes.

A dataset is normalised float32 inputs ``[N, C, H, W]`` (images) or ``[N, F]`` (features) and
int64 labels in ``0..num_classes-1``, on one device; the training augmentation is a name of
:data:`nobarriers.nn.batches.AUGMENTATIONS`. Torch-free at import: the workflow reads what a
source knows (classes, shape, identity) at start-up without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import FileFormatError

#: what a dataset's training augmentation can be: random 4-px crops of the zero-padded image and
#: horizontal flips (He et al.'s CIFAR augmentation), or none
AUGMENTATIONS = ("crop_flip", "none")
NORMALIZATIONS = ("per_channel", "per_feature", "none")


@dataclass
class Dataset:
    """A loaded dataset: normalised tensors on one device."""

    name: str
    num_classes: int
    input_shape: tuple  # (C, H, W) or (F,)
    x_train: object  # torch.Tensor, normalised float32
    y_train: object  # torch.Tensor, int64
    x_test: object
    y_test: object
    augment: str  # "crop_flip" or "none"
    mean: tuple | None = None  # normalisation statistics of the training set
    std: tuple | None = None

    def to(self, device) -> Dataset:
        return Dataset(
            self.name,
            self.num_classes,
            self.input_shape,
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_test.to(device),
            self.y_test.to(device),
            self.augment,
            self.mean,
            self.std,
        )


class DatasetSource:
    """One dataset: what is known about it before loading, and how to prepare and load it.

    ``num_classes`` and ``input_shape`` are ``None`` where only loading tells (a user's loader
    function). ``recipe``: the dataset's own default training recipe (digits), else the model
    family's applies. ``identity()``: what the dataset's content depends on besides its name
    (a user file's checksum, its options), part of every config hash. ``inputs()``: files the
    workflow watches (a changed file reruns what depends on it)."""

    name: str = ""
    label: str = ""
    augment: str = "none"
    recipe: dict | None = None
    num_classes: int | None = None
    input_shape: tuple | None = None
    sizes: tuple[int, int] | None = None  # (training, test) samples, where known before loading

    def identity(self) -> dict:
        return {}

    def inputs(self) -> list[str]:
        return []

    def prepare(self, root, checksums=None, local_copy=None) -> None:
        """Make the data available under ``root`` (download, verify, cache); idempotent.
        ``local_copy``: a folder holding the dataset's original files, taken instead of a
        download (the config's ``local_copies``)."""

    def load(self, root, device="cpu", checksums=None, verify: bool = True) -> Dataset:
        raise NotImplementedError


def check_arrays(where: str, arrays: dict, num_classes: int | None = None) -> int:
    """Refuse data no network can be trained on, naming ``where`` (a file or a function):
    NaN or inf inputs, labels that are not integers in ``0..num_classes-1``, inputs and labels
    of different lengths, a test set whose samples have another shape than the training set's.
    ``arrays``: numpy arrays ``x_train, y_train, x_test, y_test``. Returns the number of classes
    (``num_classes``, or the largest label + 1)."""
    import numpy as np

    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim < 2 or len(x) == 0:
            raise FileFormatError(f"{where}: x_{part} must hold samples [N, ...], got {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise FileFormatError(
                f"{where}: x_{part} has {len(x)} samples but y_{part} has shape {y.shape}"
            )
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise FileFormatError(f"{where}: x_{part} is {x.dtype}, not real numbers")
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            bad = int((~np.isfinite(x)).sum())
            raise FileFormatError(f"{where}: x_{part} holds {bad} NaN or infinite values")
        integral = np.issubdtype(y.dtype, np.integer) or (
            np.issubdtype(y.dtype, np.floating)
            and np.isfinite(y).all()
            and (y == np.round(y)).all()
        )
        if not integral:
            raise FileFormatError(f"{where}: y_{part} must hold integer class labels ({y.dtype})")
    if arrays["x_test"].shape[1:] != arrays["x_train"].shape[1:]:
        raise FileFormatError(
            f"{where}: test samples have shape {arrays['x_test'].shape[1:]}, training samples "
            f"{arrays['x_train'].shape[1:]}"
        )
    low = min(int(arrays["y_train"].min()), int(arrays["y_test"].min()))
    high = max(int(arrays["y_train"].max()), int(arrays["y_test"].max()))
    classes = high + 1 if num_classes is None else int(num_classes)
    if low < 0 or high >= classes:
        raise FileFormatError(
            f"{where}: labels range over {low}..{high}, outside 0..{classes - 1}"
            + ("" if num_classes is None else f" (num_classes {num_classes})")
        )
    if classes < 2:
        raise FileFormatError(f"{where}: only one class ({classes}); a classifier needs two")
    return classes


def normalized_tensors(arrays: dict, normalize: str, device="cpu"):
    """``x_train, x_test`` as float32 tensors on ``device``, scaled to [0, 1] if they are uint8,
    then standardised with the training set's statistics: ``per_channel`` (images ``[N, C, H, W]``
    or ``[N, H, W]``, read as one channel), ``per_feature`` (every input value on its own; a
    constant feature keeps std 1) or ``none``. Returns ``(x_train, x_test, mean, std)``."""
    import numpy as np
    import torch

    def tensor(a):
        t = torch.from_numpy(np.ascontiguousarray(a))
        t = t.to(torch.float32).div_(255.0) if a.dtype == np.uint8 else t.to(torch.float32)
        return t.unsqueeze(1) if t.dim() == 3 else t  # [N, H, W] -> one channel

    x_train, x_test = tensor(arrays["x_train"]), tensor(arrays["x_test"])
    mean = std = None
    if normalize == "per_channel":
        dims = (0, 2, 3) if x_train.dim() == 4 else tuple(range(x_train.dim()))
        shape = (1, -1, 1, 1) if x_train.dim() == 4 else ()
        m = x_train.mean(dim=dims)
        s = x_train.std(dim=dims).clamp_min(1e-8)
        x_train = (x_train - m.reshape(shape)) / s.reshape(shape)
        x_test = (x_test - m.reshape(shape)) / s.reshape(shape)
        mean, std = tuple(m.reshape(-1).tolist()), tuple(s.reshape(-1).tolist())
    elif normalize == "per_feature":
        m = x_train.mean(dim=0, keepdim=True)
        s = x_train.std(dim=0, unbiased=False, keepdim=True)
        s = torch.where(s == 0, torch.ones_like(s), s)
        x_train, x_test = (x_train - m) / s, (x_test - m) / s
        mean, std = (float(m.mean()),), (float(s.mean()),)
    return x_train.to(device), x_test.to(device), mean, std


def input_shape_of(x_shape: tuple) -> tuple:
    """A sample's shape as the networks see it: ``[N, H, W]`` images become one channel."""
    shape = tuple(int(s) for s in x_shape[1:])
    return (1, *shape) if len(shape) == 2 else shape
