"""CIFAR10 and CIFAR100 (Krizhevsky 2009), the paper's data, through torchvision's own classes.

Files live under ``root``: either the archive ``cifar-10-python.tar.gz`` /
``cifar-100-python.tar.gz`` or the extracted ``cifar-10-batches-py/`` / ``cifar-100-python/``
folder. :meth:`CifarSource.prepare` downloads the archive once (torchvision's ``download_url``),
checks its md5 and every extracted member's, and moves the folder into place only then.
:meth:`CifarSource.load` reads through torchvision's ``CIFAR10``/``CIFAR100`` (md5-checked), scales
to [0, 1] and normalises with the training set's per-channel mean and std. Training augmentation:
random 4-px crops and horizontal flips (He et al.; the paper's ``+``).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import zlib
from collections.abc import Mapping
from pathlib import Path

from ...core.checksums import file_digest
from ...core.errors import DatasetUnavailable, FileFormatError
from ..base import Dataset, DatasetSource


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
        elif md5 is not None and file_digest(path, "md5") != md5:
            bad.append(f"{fname} md5 mismatch")
    return bad


def _prepare(name: str, root, checksums: Mapping[str, str] | None = None, local_copy=None) -> None:
    """Make CIFAR available under ``root``: download it once, or verify what is there.

    The archive is downloaded (torchvision's ``download_url``) unless it is already in ``root``
    or in ``local_copy``; its md5 is checked, it is extracted into a temporary folder, every
    extracted file's md5 is checked, and only then is the folder moved into place -- a damaged
    archive or member is refused with the file named and leaves nothing half-written.
    ``checksums``: see :func:`_verified_class`.

    Raises :class:`DatasetUnavailable` when the files are missing and cannot be downloaded, and
    :class:`FileFormatError` when they fail a check.
    """
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
    if not archive.is_file() and local_copy and (Path(local_copy) / cls.filename).is_file():
        archive = Path(local_copy) / cls.filename  # read where it is, never copied
    if not archive.is_file():
        try:
            download_url(cls.url, os.fspath(root), cls.filename, cls.tgz_md5)
        except (urllib.error.URLError, OSError, RuntimeError) as exc:
            archive.unlink(missing_ok=True)
            raise DatasetUnavailable(
                f"dataset {name!r}: could not download {cls.url} ({exc}). Without network "
                "access, " + _where(cls, root)
            ) from exc
    found = file_digest(archive, "md5")
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
            f"Run the workflow's prepare_dataset (nobarriers.datasets.prepare_dataset({name!r}, "
            f"{root!r})) on a machine with network access, or " + _where(cls, root)
        ) from exc

    import numpy as np
    import torch

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
        augment="crop_flip",
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
    )


class CifarSource(DatasetSource):
    augment = "crop_flip"
    input_shape = (3, 32, 32)
    sizes = (50_000, 10_000)

    def __init__(self, name: str, label: str, num_classes: int):
        self.name, self.label, self.num_classes = name, label, num_classes

    def prepare(self, root, checksums=None, local_copy=None) -> None:
        _prepare(self.name, root, checksums, local_copy)

    def load(self, root, device="cpu", checksums=None, verify: bool = True) -> Dataset:
        if root is None:
            raise DatasetUnavailable(f"dataset {self.name!r}: a data root directory is required")
        return _load_cifar(self.name, root, device, verify, checksums)


#: the paper's labels: ``+`` = trained with augmentation
SOURCES = [CifarSource("cifar10", "C10+", 10), CifarSource("cifar100", "C100+", 100)]
