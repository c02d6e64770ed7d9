"""CIFAR10 and CIFAR100 (Krizhevsky 2009), the paper's data, through torchvision's own classes.

Files live under ``root``: either the archive ``cifar-10-python.tar.gz`` /
``cifar-100-python.tar.gz`` or the extracted ``cifar-10-batches-py/`` / ``cifar-100-python/``
folder. :meth:`CifarSource.prepare` downloads the archive once (torchvision's ``download_url``),
checks its md5 and every extracted member's, and moves the folder into place only then.
:meth:`CifarSource.load` reads through torchvision's ``CIFAR10``/``CIFAR100`` (md5-checked), scales
to [0, 1] and normalises with the training set's per-channel mean and std. Training augmentation:
random 4-px crops and horizontal flips (He et al.; the paper's ``+``).

The prepare job also decodes the verified batches once, through the same torchvision class, into
``<root>/<folder>.arrays.npz`` (uint8 images and int64 labels, no pickle) with a record
``<folder>.arrays.json`` of the npz's SHA-256 and the md5s of the batches it came from. A job
whose expected md5s are the record's reads the npz after checking its SHA-256, instead of
importing torchvision (about 2 s per job on a CPU) and unpickling the batches; a cache built from
other batches is ignored (the batches are read and checked), a damaged one is refused by name.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import zlib
from collections.abc import Mapping
from pathlib import Path

from ...core.atomic import atomic_path
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
        _write_cache(name, root, checksums)
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
    _write_cache(name, root, checksums)


_ARRAYS = ("x_train", "y_train", "x_test", "y_test")

#: the extracted folder and the md5 of each of its files, as torchvision's ``CIFAR10`` and
#: ``CIFAR100`` expect them (their class attributes, pinned here so that a job reading the cache
#: need not import torchvision; tests/test_data.py checks that they are torchvision's)
FOLDERS = {
    "cifar10": ("cifar-10-batches-py", {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    }),
    "cifar100": ("cifar-100-python", {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    }),
}  # fmt: skip


def expected_md5s(name: str, checksums: Mapping[str, str] | None = None) -> dict[str, str]:
    """The md5 each file of the extracted folder must have (``checksums`` replaces some)."""
    checksums = checksums or {}
    return {f: checksums.get(f, md5) for f, md5 in FOLDERS[name][1].items()}


def _cache_files(name: str, root) -> tuple[Path, Path]:
    """The decoded arrays and their record, beside the batch folder."""
    base = Path(root) / f"{FOLDERS[name][0]}.arrays"
    return base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")


def _decode(cls, root) -> dict:
    """The four arrays, read by torchvision's class (which checks every batch's md5)."""
    import numpy as np

    train = cls(os.fspath(root), train=True, download=False)
    test = cls(os.fspath(root), train=False, download=False)
    return {
        "x_train": np.ascontiguousarray(train.data),  # uint8 N×H×W×C
        "y_train": np.asarray(train.targets, dtype=np.int64),
        "x_test": np.ascontiguousarray(test.data),
        "y_test": np.asarray(test.targets, dtype=np.int64),
    }


def _cache_is_current(name: str, root, checksums) -> bool:
    npz, record = _cache_files(name, root)
    try:
        saved = json.loads(record.read_text())
        sources = expected_md5s(name, checksums)
        return saved["sources"] == sources and file_digest(npz) == saved["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_cache(name: str, root, checksums) -> None:
    """Decode the verified batches into the npz cache, unless it is there and current. The old
    record goes first, so that a job killed in between leaves no record that vouches for the
    wrong arrays (the batches are then read, and the next prepare writes the cache again)."""
    import numpy as np

    if _cache_is_current(name, root, checksums):
        return
    npz, record = _cache_files(name, root)
    record.unlink(missing_ok=True)
    arrays = _decode(_verified_class(name, True, checksums), root)
    with atomic_path(npz) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    saved = {"sha256": file_digest(npz), "sources": expected_md5s(name, checksums)}
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(saved, indent=1))


def _read_cache(name: str, root, checksums) -> dict | None:
    """The cached arrays, if their record names these expected md5s (else None: read the
    batches); a cache whose bytes are not the recorded ones is refused, naming it."""
    import numpy as np

    npz, record = _cache_files(name, root)
    try:
        saved = json.loads(record.read_text())
        current = saved["sources"] == expected_md5s(name, checksums)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FileFormatError(
            f"dataset {name!r}: {record} is unreadable ({exc}); delete it and {npz.name}, and "
            "run prepare_dataset again"
        ) from None
    if not current:
        return None
    if not npz.is_file() or file_digest(npz) != saved["sha256"]:
        raise FileFormatError(
            f"dataset {name!r}: {npz} is missing or does not match the SHA-256 in {record} "
            f"(damaged); delete both and run prepare_dataset again"
        )
    try:
        with np.load(npz, allow_pickle=False) as f:
            return {k: f[k] for k in _ARRAYS}
    except (OSError, KeyError, ValueError) as exc:
        raise FileFormatError(f"dataset {name!r}: {npz} is unreadable ({exc})") from None


def _load_cifar(name, root, device, verify, checksums) -> Dataset:
    arrays = _read_cache(name, root, checksums) if verify else None
    if arrays is None:
        cls = _verified_class(name, verify, checksums)
        try:
            arrays = _decode(cls, root)
        except RuntimeError as exc:
            folder = Path(root) / cls.base_folder
            detail = "; ".join(_bad_files(cls, folder)) or str(exc)
            error = DatasetUnavailable if not folder.is_dir() else FileFormatError
            raise error(
                f"dataset {name!r}: {folder} is missing or fails the integrity check ({detail}). "
                f"Run the workflow's prepare_dataset (nobarriers.datasets.prepare_dataset("
                f"{name!r}, {os.fspath(root)!r})) on a machine with network access, or "
                + _where(cls, root)
            ) from exc

    import torch

    def images(data) -> torch.Tensor:  # uint8 N×H×W×C -> float32 N×C×H×W in [0, 1]
        data = torch.from_numpy(data).to(device)
        return data.permute(0, 3, 1, 2).to(torch.float32).div_(255.0).contiguous()

    x_train, x_test = images(arrays["x_train"]), images(arrays["x_test"])
    mean = x_train.mean(dim=(0, 2, 3))
    std = x_train.std(dim=(0, 2, 3)).clamp_min(1e-8)
    x_train = (x_train - mean[:, None, None]) / std[:, None, None]
    x_test = (x_test - mean[:, None, None]) / std[:, None, None]
    return Dataset(
        name=name,
        num_classes=10 if name == "cifar10" else 100,
        input_shape=(3, 32, 32),
        x_train=x_train,
        y_train=torch.from_numpy(arrays["y_train"]).to(device),
        x_test=x_test,
        y_test=torch.from_numpy(arrays["y_test"]).to(device),
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
