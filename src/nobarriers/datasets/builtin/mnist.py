"""MNIST and Fashion-MNIST: 28×28 grey images of 10 classes, 60,000 training and 10,000 test
images each, read through torchvision's own ``MNIST`` and ``FashionMNIST`` classes.

Files: torchvision's layout, the four decompressed IDX files in ``<root>/MNIST/raw/`` or
``<root>/FashionMNIST/raw/``. :meth:`MnistSource.prepare` takes them, in this order, from

1. that folder, when the four decompressed files are there (a ``data_dir`` already holding
   torchvision's layout is used as is);
2. the four ``.gz`` files, found in that folder, in a local copy (the config's ``local_copies``,
   e.g. Debian's package ``dataset-fashion-mnist``: ``/usr/share/datasets/fashion-mnist``), or
   downloaded from torchvision's mirrors with torchvision's md5 of each ``.gz`` checked.

Each ``.gz`` is decompressed into a temporary folder; the files move into place only after all
four pass the checks, so a bad file leaves nothing half-extracted. The checks are on the
decompressed contents, because Debian's ``.gz`` files have rewritten gzip headers (their md5s
differ from upstream's while the contents are the same): the IDX magic numbers (2051 images,
2049 labels), 28×28 images, the file length the header implies (a truncated file is refused),
as many labels as images, the labels 0..9 with the dataset's known count per class, and for
Fashion-MNIST the SHA-256 of each decompressed file, measured on the original files of Debian's
package and pinned here. A folder holding another dataset's files fails them, naming the file.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import urllib.error
import zlib
from pathlib import Path

from ...core.checksums import file_digest
from ...core.errors import DatasetUnavailable, FileFormatError
from ..base import Dataset, DatasetSource

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
SIDE = 28

#: SHA-256 of the decompressed Fashion-MNIST files (Debian's dataset-fashion-mnist
#: 0.0~git20200523.55506a9-1, /usr/share/datasets/fashion-mnist, measured 2026-12-03)
FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
#: images per class (LeCun et al.'s MNIST; Fashion-MNIST is balanced)
MNIST_COUNTS = {
    "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}
FASHION_COUNTS = {"train": (6000,) * 10, "test": (1000,) * 10}


def read_idx(path: Path, magic: int) -> object:
    """An IDX file of unsigned bytes as a numpy array, refused (naming the file) when its magic
    number, its dimensions or its length are not what its header says."""
    import numpy as np

    data = path.read_bytes()
    if len(data) < 8:
        raise FileFormatError(f"{path}: {len(data)} bytes, too short for an IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise FileFormatError(
            f"{path}: IDX magic number {found}, expected {magic} "
            f"({'images' if magic == IMAGE_MAGIC else 'labels'}, unsigned bytes)"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise FileFormatError(
            f"{path}: {len(data)} bytes, but its header {shape} says {expected} (truncated or "
            "damaged)"
        )
    if ndim == 3 and shape[1:] != (SIDE, SIDE):
        raise FileFormatError(f"{path}: images of {shape[1]}x{shape[2]}, expected 28x28")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


class MnistSource(DatasetSource):
    """MNIST or Fashion-MNIST (``cls``: torchvision's class name)."""

    augment = "none"
    num_classes = 10
    input_shape = (1, SIDE, SIDE)
    sizes = (60_000, 10_000)

    def __init__(self, name: str, label: str, cls: str, sha256: dict | None, counts: dict):
        self.name, self.label, self.cls = name, label, cls
        self.sha256, self.counts = sha256, counts

    def _torchvision(self):
        import torchvision.datasets

        return getattr(torchvision.datasets, self.cls)

    def raw_folder(self, root) -> Path:
        return Path(root) / self.cls / "raw"

    def check(self, folder: Path, checksums=None) -> None:
        """The four decompressed files in ``folder`` are this dataset's. ``checksums``
        replaces the expected SHA-256 per file name and the known class counts (the test suite's
        generated files, a mirror of another version)."""
        import numpy as np

        expected = dict(checksums) if checksums else self.sha256
        sizes = {}
        for key, name in FILES.items():
            path = folder / name
            if not path.is_file():
                raise FileFormatError(f"dataset {self.name!r}: {path} is missing")
            array = read_idx(path, IMAGE_MAGIC if key.endswith("images") else LABEL_MAGIC)
            sizes[key] = len(array)
            if expected and name in expected and file_digest(path) != expected[name]:
                raise FileFormatError(
                    f"dataset {self.name!r}: {path} has SHA-256 {file_digest(path)}, expected "
                    f"{expected[name]}: another dataset's file, or a damaged one; delete "
                    f"{folder} and prepare again"
                )
            if key.endswith("labels"):
                part = key.split("_")[0]
                if int(array.max()) > 9:
                    raise FileFormatError(f"{path}: label {int(array.max())}, expected 0..9")
                counts = tuple(int(c) for c in np.bincount(array, minlength=10))
                if not checksums and counts != self.counts[part]:
                    raise FileFormatError(
                        f"dataset {self.name!r}: {path} has {counts} labels per class, "
                        f"{self.name} has {self.counts[part]}: another dataset's file"
                    )
        for part in ("train", "test"):
            if sizes[f"{part}_images"] != sizes[f"{part}_labels"]:
                raise FileFormatError(
                    f"dataset {self.name!r}: {folder / FILES[f'{part}_images']} holds "
                    f"{sizes[f'{part}_images']} images but {folder / FILES[f'{part}_labels']} "
                    f"{sizes[f'{part}_labels']} labels"
                )

    def prepare(self, root, checksums=None, local_copy=None) -> None:
        """Make the four decompressed files available in ``<root>/<cls>/raw`` (see the module
        doc): verified where they are, else decompressed from ``.gz`` files found there, in
        ``local_copy`` or downloaded, verified, and only then moved into place."""
        if root is None:
            raise DatasetUnavailable(f"dataset {self.name!r}: a data root directory is required")
        raw = self.raw_folder(root)
        if all((raw / name).is_file() for name in FILES.values()):
            self.check(raw, checksums)
            return
        raw.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".extract-", dir=raw))
        sources = {}
        try:
            for name in FILES.values():
                sources[name] = self._gz(name, raw, local_copy, scratch)
                self._decompress(sources[name], scratch / name)
            try:
                self.check(scratch, checksums)
            except FileFormatError as exc:  # name the file the user has, not the scratch copy
                text = str(exc)
                for name, gz in sources.items():
                    text = text.replace(str(scratch / name), f"{gz} (decompressed)")
                raise FileFormatError(text) from None
            for name in FILES.values():
                os.replace(scratch / name, raw / name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _gz(self, name: str, raw: Path, local_copy, scratch: Path) -> Path:
        """The ``.gz`` of a file: in the raw folder, in the local copy, or downloaded."""
        for folder in (raw, Path(local_copy) if local_copy else None):
            if folder is not None and (folder / f"{name}.gz").is_file():
                return folder / f"{name}.gz"
        from torchvision.datasets.utils import download_url

        cls = self._torchvision()
        md5 = dict(cls.resources)[f"{name}.gz"]
        errors = []
        for mirror in cls.mirrors:
            try:
                download_url(f"{mirror}{name}.gz", os.fspath(scratch), f"{name}.gz", md5)
                return scratch / f"{name}.gz"
            except (urllib.error.URLError, OSError, RuntimeError) as exc:
                errors.append(f"{mirror}: {exc}")
        raise DatasetUnavailable(
            f"dataset {self.name!r}: {name}.gz is neither in {raw} nor in a local copy, and "
            f"could not be downloaded ({'; '.join(errors)}). Offline, put the four files "
            f"(*-idx?-ubyte or .gz) in {raw}, or set local_copies: {{{self.name}: <folder>}}"
            + (
                " (Debian: apt-get install dataset-fashion-mnist; the folder is "
                "/usr/share/datasets/fashion-mnist)"
                if self.name == "fashion-mnist"
                else ""
            )
        )

    @staticmethod
    def _decompress(gz: Path, out: Path) -> None:
        try:
            with gzip.open(gz, "rb") as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError, zlib.error) as exc:
            raise FileFormatError(
                f"{gz}: cannot be decompressed ({exc}): a truncated or damaged file"
            ) from None

    def load(self, root, device="cpu", checksums=None, verify: bool = True) -> Dataset:
        import torch

        if root is None:
            raise DatasetUnavailable(f"dataset {self.name!r}: a data root directory is required")
        raw = self.raw_folder(root)
        if not all((raw / name).is_file() for name in FILES.values()):
            raise DatasetUnavailable(
                f"dataset {self.name!r}: the four files are not in {raw}; the workflow's "
                "prepare_dataset job puts them there (nobarriers.datasets.prepare_dataset)"
            )
        if verify:
            self.check(raw, checksums)
        cls = self._torchvision()
        train = cls(os.fspath(root), train=True, download=False)
        test = cls(os.fspath(root), train=False, download=False)

        def images(ds) -> torch.Tensor:  # uint8 N×28×28 -> float32 N×1×28×28 in [0, 1]
            return ds.data.to(device).unsqueeze(1).to(torch.float32).div_(255.0).contiguous()

        x_train, x_test = images(train), images(test)
        mean, std = x_train.mean(), x_train.std().clamp_min(1e-8)
        return Dataset(
            name=self.name,
            num_classes=10,
            input_shape=self.input_shape,
            x_train=(x_train - mean) / std,
            y_train=train.targets.to(torch.int64).to(device),
            x_test=(x_test - mean) / std,
            y_test=test.targets.to(torch.int64).to(device),
            augment=self.augment,
            mean=(float(mean),),
            std=(float(std),),
        )


SOURCES = [
    MnistSource("mnist", "MNIST", "MNIST", None, MNIST_COUNTS),
    MnistSource("fashion-mnist", "F-MNIST", "FashionMNIST", FASHION_SHA256, FASHION_COUNTS),
]
