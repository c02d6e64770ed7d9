"""Small CIFAR10/100 archives in the on-disk format of the real ones (pickled batches in a
gzipped tar), for tests of the real torchvision loader and of the workflow on CIFAR data."""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def write_cifar_folder(root: Path, name: str, per_file: int = 4, seed: int = 0, classes=None):
    """The extracted folder (``cifar-10-batches-py`` / ``cifar-100-python``) under ``root``.

    Returns ``(folder, checksums, images)``: the md5 of every file, and
    ``images = {"train": (uint8 N×32×32×3, labels), "test": ...}`` in file order. Labels are
    drawn from the first ``classes`` classes (default: all); images are noise plus a class-wise
    colour offset, so that a network can learn something from a few hundred of them."""
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder = Path(root) / "cifar-10-batches-py"
        files = {f"data_batch_{i}": "train" for i in range(1, 6)} | {"test_batch": "test"}
        meta, meta_key, label_key, n_classes = "batches.meta", "label_names", "labels", 10
    else:
        folder = Path(root) / "cifar-100-python"
        files = {"train": "train", "test": "test"}
        meta, meta_key, label_key, n_classes = "meta", "fine_label_names", "fine_labels", 100
    folder.mkdir(parents=True)
    draw = classes or n_classes
    out = {"train": ([], []), "test": ([], [])}
    for fname, split in files.items():
        labels = rng.integers(0, draw, size=per_file)
        offset = (labels[:, None, None, None] * 37 + np.arange(3) * 71) % 128
        noise = rng.integers(0, 128, size=(per_file, 32, 32, 3))
        img = (noise + offset).astype(np.uint8)
        entry = {"data": img.transpose(0, 3, 1, 2).reshape(per_file, 3072),
                 label_key: [int(v) for v in labels]}  # fmt: skip
        if name == "cifar100":
            entry["coarse_labels"] = [int(v) // 5 for v in labels]
        (folder / fname).write_bytes(pickle.dumps(entry, protocol=2))
        out[split][0].append(img)
        out[split][1].extend(int(v) for v in labels)
    names = {meta_key: [f"class{i}" for i in range(n_classes)]}
    (folder / meta).write_bytes(pickle.dumps(names, protocol=2))
    checksums = {p.name: md5(p) for p in folder.iterdir()}
    images = {k: (np.concatenate(v[0]), np.array(v[1])) for k, v in out.items()}
    return folder, checksums, images


ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def write_cifar_archive(root: Path, name: str, per_file: int = 4, seed: int = 0, classes=None):
    """``root/<archive>.tar.gz`` as torchvision downloads it. Returns ``(archive, checksums,
    images)``; ``checksums`` holds the archive's md5 under its file name, too (the config's
    ``dataset_checksums`` for this dataset)."""
    scratch = Path(root) / ".generated"
    folder, checksums, images = write_cifar_folder(scratch, name, per_file, seed, classes)
    archive = Path(root) / ARCHIVES[name]
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    for p in sorted(folder.iterdir()):
        p.unlink()
    folder.rmdir()
    scratch.rmdir()
    return archive, {**checksums, archive.name: md5(archive)}, images
