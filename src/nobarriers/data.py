"""Datasets as in-memory tensors and batched, vectorised augmentation.

Names: ``"cifar10"``, ``"cifar100"`` (torchvision's on-disk format, md5-verified) and ``"digits"``
(scikit-learn's bundled 8×8 digits, no download). Everything is returned as normalised float32
images (N×C×H×W) with int64 labels on the requested device; augmentation (random 4-px crop +
horizontal flip for CIFAR) runs on whole batches on that device.

CIFAR files live under ``root``: either the archive ``root/cifar-10-python.tar.gz`` /
``root/cifar-100-python.tar.gz`` or the extracted ``root/cifar-10-batches-py/`` /
``root/cifar-100-python/`` folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import DATASETS
from .errors import ConfigError, FileFormatError, NoBarriersError

AUGMENTATIONS = ("cifar", "none")

DIGITS_TEST_SIZE = 360  # 1797 samples -> 1437 train / 360 test
DIGITS_SPLIT_SEED = 0

__all__ = [
    "AUGMENTATIONS",
    "Dataset",
    "DatasetUnavailable",
    "augment_batch",
    "seeded_subset",
    "index_batches",
    "iterate_minibatches",
    "load_dataset",
    "prepare_dataset",
]


class DatasetUnavailable(NoBarriersError):
    """A dataset that is neither on disk nor downloadable (e.g. no network on a compute node)."""


@dataclass
class Dataset:
    name: str
    num_classes: int
    input_shape: tuple  # (C, H, W) or (F,)
    x_train: torch.Tensor  # normalised float32
    y_train: torch.Tensor  # int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    augment: str  # "cifar" (crop 4 px pad + flip) or "none"
    mean: tuple | None = None  # per-channel normalisation statistics of the training set
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


def _check_name(name: str) -> str:
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return key


def _cifar_class(name: str):
    from torchvision.datasets import CIFAR10, CIFAR100

    return CIFAR10 if name == "cifar10" else CIFAR100


def _where(cls, root) -> str:
    root = Path(root)
    return (
        f"put the archive at {root / cls.filename} (md5 {cls.tgz_md5}, from {cls.url}) or the "
        f"extracted folder at {root / cls.base_folder}/"
    )


def _verified_class(name: str, verify: bool, checksums: Mapping[str, str] | None):
    """torchvision's CIFAR class, optionally with other expected md5s or without the md5 check.

    ``checksums`` (file name -> md5, e.g. ``{"cifar-10-python.tar.gz": "…", "data_batch_1": "…"}``)
    replaces torchvision's expected md5s of those files (the config's ``dataset_checksums``: a
    local mirror whose files differ, or the archive the test suite generates in CIFAR's own
    format). ``verify=False`` only checks that the files exist.
    """
    base = _cifar_class(name)
    if verify and not checksums:
        return base
    checksums = dict(checksums or {})

    def md5(file_name, default):
        if not verify:
            return None  # torchvision's check_integrity: existence only
        return checksums.get(file_name, default)

    attrs = {
        "tgz_md5": md5(base.filename, base.tgz_md5),
        "train_list": [[f, md5(f, m)] for f, m in base.train_list],
        "test_list": [[f, md5(f, m)] for f, m in base.test_list],
        "meta": {**base.meta, "md5": md5(base.meta["filename"], base.meta["md5"])},
    }
    return type(base.__name__, (base,), attrs)


def _bad_files(cls, folder: Path) -> list[str]:
    """What is wrong with an extracted CIFAR folder: ``"<file> missing"`` or ``"<file> md5
    mismatch"`` per file (empty: every file is there with its expected md5)."""
    bad = []
    for fname, md5 in cls.train_list + cls.test_list + [[cls.meta["filename"], cls.meta["md5"]]]:
        path = folder / fname
        if not path.is_file():
            bad.append(f"{fname} missing")
        elif md5 is not None and _file_md5(path) != md5:
            bad.append(f"{fname} md5 mismatch")
    return bad


def prepare_dataset(name: str, root, checksums: Mapping[str, str] | None = None) -> None:
    """Make a dataset available under ``root``: download CIFAR once, or verify what is there.

    CIFAR: the archive is downloaded (torchvision's ``download_url``) unless it is already in
    ``root``, its md5 is checked, it is extracted into a temporary folder, every extracted file's
    md5 is checked, and only then is the folder moved into place -- a damaged archive or member
    is refused with the file named and leaves nothing half-written. ``checksums``: see
    :func:`_verified_class`. Digits are bundled with scikit-learn: the fixed split is cached as
    ``root/digits/digits-split.npz`` so that jobs need not import scikit-learn.

    Raises :class:`DatasetUnavailable` when the files are missing and cannot be downloaded, and
    :class:`FileFormatError` when they fail a check.
    """
    name = _check_name(name)
    if name == "digits":
        if root is not None:
            _write_digits_cache(Path(root) / DIGITS_CACHE)
        return
    from torchvision.datasets.utils import download_url, extract_archive

    cls = _verified_class(name, True, checksums)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folder, archive = root / cls.base_folder, root / cls.filename
    if folder.is_dir():
        bad = _bad_files(cls, folder)
        if bad:
            raise FileFormatError(
                f"dataset {name!r}: {folder} fails the integrity check ({'; '.join(bad)}); "
                f"delete the folder (and a damaged {archive.name}) and run again"
            )
        return
    if not archive.is_file():
        try:
            download_url(cls.url, os.fspath(root), cls.filename, cls.tgz_md5)
        except (urllib.error.URLError, OSError, RuntimeError) as exc:
            archive.unlink(missing_ok=True)
            raise DatasetUnavailable(
                f"dataset {name!r}: could not download {cls.url} ({exc}). Without network "
                "access, " + _where(cls, root)
            ) from exc
    found = _file_md5(archive)
    if cls.tgz_md5 is not None and found != cls.tgz_md5:
        raise FileFormatError(
            f"dataset {name!r}: {archive} has md5 {found}, expected {cls.tgz_md5} (damaged or "
            "not the CIFAR archive); delete it and run again to download it"
        )
    scratch = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        try:
            extract_archive(os.fspath(archive), os.fspath(scratch))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise FileFormatError(
                f"dataset {name!r}: {archive} cannot be extracted ({exc}): a truncated or "
                "damaged member; delete it and run again to download it"
            ) from None
        bad = _bad_files(cls, scratch / cls.base_folder)
        if bad:
            raise FileFormatError(
                f"dataset {name!r}: {archive} holds damaged members ({'; '.join(bad)}); "
                "delete it and run again to download it"
            )
        os.replace(scratch / cls.base_folder, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _file_md5(path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_cifar(name, root, device, verify, checksums) -> Dataset:
    cls = _verified_class(name, verify, checksums)
    root = os.fspath(root)
    try:
        train = cls(root, train=True, download=False)
        test = cls(root, train=False, download=False)
    except RuntimeError as exc:
        folder = Path(root) / cls.base_folder
        detail = "; ".join(_bad_files(cls, folder)) or str(exc)
        error = DatasetUnavailable if not folder.is_dir() else FileFormatError
        raise error(
            f"dataset {name!r}: {folder} is missing or fails the integrity check ({detail}). "
            f"Run prepare_dataset({name!r}, {root!r}) on a machine with network access, or "
            + _where(cls, root)
        ) from exc

    def images(ds) -> torch.Tensor:  # uint8 N×H×W×C -> float32 N×C×H×W in [0, 1]
        data = torch.from_numpy(np.ascontiguousarray(ds.data)).to(device)
        return data.permute(0, 3, 1, 2).to(torch.float32).div_(255.0).contiguous()

    x_train, x_test = images(train), images(test)
    mean = x_train.mean(dim=(0, 2, 3))
    std = x_train.std(dim=(0, 2, 3)).clamp_min(1e-8)
    x_train = (x_train - mean[:, None, None]) / std[:, None, None]
    x_test = (x_test - mean[:, None, None]) / std[:, None, None]
    return Dataset(
        name=name,
        num_classes=10 if name == "cifar10" else 100,
        input_shape=(3, 32, 32),
        x_train=x_train,
        y_train=torch.as_tensor(train.targets, dtype=torch.int64, device=device),
        x_test=x_test,
        y_test=torch.as_tensor(test.targets, dtype=torch.int64, device=device),
        augment="cifar",
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
    )


DIGITS_CACHE = Path("digits") / "digits-split.npz"
_DIGITS_ARRAYS = ("x_train", "x_test", "y_train", "y_test")


def _digits_split() -> dict[str, np.ndarray]:
    """The fixed stratified split of scikit-learn's digits (raw pixel values 0..16)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float64)
    y = digits.target.astype(np.int64)
    parts = train_test_split(
        x, y, test_size=DIGITS_TEST_SIZE, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    return dict(zip(("x_train", "x_test", "y_train", "y_test"), parts, strict=True))


def _write_digits_cache(path: Path) -> None:
    from .atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **_digits_split())


def _read_digits_cache(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in _DIGITS_ARRAYS}
    except (OSError, KeyError, ValueError) as exc:
        raise FileFormatError(
            f"digits cache {path}: unreadable or incomplete ({exc}); delete it to rebuild"
        ) from exc
    if arrays["x_train"].shape != (1797 - DIGITS_TEST_SIZE, 64):
        raise FileFormatError(f"digits cache {path}: unexpected shape {arrays['x_train'].shape}")
    return arrays


def _load_digits(device, root=None) -> Dataset:
    cache = Path(root) / DIGITS_CACHE if root is not None else None
    split = _read_digits_cache(cache) if cache and cache.exists() else _digits_split()
    x_tr, x_te, y_tr, y_te = (split[k] for k in ("x_train", "x_test", "y_train", "y_test"))
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0)
    std[std == 0] = 1.0  # constant (always blank) pixels stay 0 after centring

    def prep(a):
        a = ((a - mean) / std).astype(np.float32).reshape(-1, 1, 8, 8)
        return torch.from_numpy(a).to(device)

    return Dataset(
        name="digits",
        num_classes=10,
        input_shape=(1, 8, 8),
        x_train=prep(x_tr),
        y_train=torch.from_numpy(y_tr).to(device),
        x_test=prep(x_te),
        y_test=torch.from_numpy(y_te).to(device),
        augment="none",
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
    )


def load_dataset(
    name: str,
    root=None,
    device="cpu",
    *,
    verify: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> Dataset:
    """Load a dataset as normalised tensors on ``device`` (no download; see prepare_dataset).

    CIFAR: read through torchvision's ``CIFAR10``/``CIFAR100`` (``download=False``), whose md5
    check of the extracted files is kept unless ``verify=False``; ``checksums`` replaces expected
    md5s per file name (test hook for generated archives). Images are scaled to [0, 1] and
    normalised with the per-channel mean/std of the training set.

    Digits: scikit-learn's ``load_digits``, a fixed stratified split (1437 train / 360 test,
    ``random_state=0``), each of the 64 features standardised with training-set statistics
    (constant features: std 1), shaped 1×8×8 (MLPs flatten it).
    """
    name = _check_name(name)
    if name == "digits":
        return _load_digits(device, root)
    if root is None:
        raise ConfigError(f"dataset {name!r}: a data root directory is required")
    return _load_cifar(name, root, device, verify, checksums)


def seeded_subset(n: int, size: int | None, seed: int) -> torch.Tensor | None:
    """Sorted indices (CPU, int64) of ``size`` of ``n`` samples drawn with ``seed``; ``None``
    when ``size`` is ``None`` or covers them all. The one seeded subset of the package (the
    insertion evaluation, BatchNorm statistics on a subset)."""
    if size is None or size >= n:
        return None
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=generator)[:size].sort().values


def _random(generator: torch.Generator | None, device, kind: str, *args):
    """Random draws from ``generator`` (on its own device), moved to ``device``."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if kind == "randint":
        high, size = args
        out = torch.randint(0, high, size, generator=generator, device=gen_device)
    else:
        (n,) = args
        out = torch.randperm(n, generator=generator, device=gen_device)
    return out.to(device)


def augment_batch(
    x: torch.Tensor, kind: str, generator: torch.Generator | None = None, padding: int = 4
) -> torch.Tensor:
    """Augment a whole batch ``x`` [N, C, H, W] at once on its device.

    ``"cifar"``: zero-pad ``padding`` pixels on each side, take a random H×W crop per sample
    (offsets uniform in 0..2*padding) and flip it horizontally with probability 1/2. Zero in the
    normalised space is the training-set mean colour (He et al. pad mean-subtracted images with
    zeros). Random numbers come from ``generator`` only, so equal generator states give equal
    batches. ``"none"``: returns ``x`` unchanged.
    """
    if kind == "none":
        return x
    if kind != "cifar":
        raise ConfigError(f"unknown augmentation {kind!r}; valid: {', '.join(AUGMENTATIONS)}")
    if x.dim() != 4:
        raise ConfigError(f"augmentation 'cifar' needs images [N, C, H, W], got {tuple(x.shape)}")
    n, c, h, w = x.shape
    p = int(padding)
    offsets = _random(generator, x.device, "randint", 2 * p + 1, (2, n))
    dy, dx = offsets[0], offsets[1]
    flip = _random(generator, x.device, "randint", 2, (n,)).bool()
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = dy[:, None] + ar_h[None, :]  # [N, H]
    cols_src = torch.where(flip[:, None], (w - 1 - ar_w)[None, :], ar_w[None, :])
    cols = dx[:, None] + cols_src  # [N, W]
    idx_n = torch.arange(n, device=x.device)[:, None, None, None]
    idx_c = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[idx_n, idx_c, rows[:, None, :, None], cols[:, None, None, :]]


def index_batches(
    n: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    shuffle: bool = True,
    device="cpu",
) -> Iterator[torch.Tensor]:
    """Yield int64 index tensors covering ``range(n)`` once, in an order drawn from
    ``generator`` (deterministic for a given generator state); ``drop_last`` skips a short tail."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if shuffle:
        order = _random(generator, device, "randperm", n)
    else:
        order = torch.arange(n, device=device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def iterate_minibatches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    shuffle: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x[idx], y[idx])`` for the batches of :func:`index_batches` over one epoch."""
    if y.shape[0] != x.shape[0]:
        raise ConfigError(f"iterate_minibatches: {x.shape[0]} inputs but {y.shape[0]} labels")
    for idx in index_batches(x.shape[0], batch_size, generator, drop_last, shuffle, x.device):
        yield x[idx], y[idx.to(y.device)]
