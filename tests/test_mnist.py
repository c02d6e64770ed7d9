"""MNIST and Fashion-MNIST: prepared from .gz files (a local copy or torchvision's layout),
their decompressed contents verified, loaded through torchvision's classes; on IDX files the
tests write, and on the real Fashion-MNIST of Debian's dataset-fashion-mnist where installed."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from nobarriers.core.errors import DatasetUnavailable, FileFormatError
from nobarriers.datasets import load_dataset, prepare_dataset
from nobarriers.datasets.builtin.mnist import FILES

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def idx(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000080<ndim>, the dimensions, the data."""
    header = (0x800 + array.ndim).to_bytes(4, "big")
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_gz_files(folder: Path, n_train=30, n_test=10, seed=0, **replace) -> dict:
    """The four .gz files of a small MNIST-format dataset, and the SHA-256 of each decompressed
    file (for ``checksums``: the real class counts do not apply to it)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)),
        "train_labels": np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28)),
        "test_labels": np.arange(n_test) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for key, name in FILES.items():
        raw = replace.get(key, idx(arrays[key]))
        (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        checksums[name] = hashlib.sha256(raw).hexdigest()
    return {"arrays": arrays, "checksums": checksums}


def test_prepared_from_a_local_copy_and_loaded_through_torchvision(tmp_path):
    made = write_gz_files(tmp_path / "copy")
    root = tmp_path / "data"
    prepare_dataset(
        "fashion-mnist", root, checksums=made["checksums"], local_copy=tmp_path / "copy"
    )
    raw = root / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(FILES.values())  # no scratch left
    data = load_dataset("fashion-mnist", root, checksums=made["checksums"])
    assert data.x_train.shape == (30, 1, 28, 28) and data.x_test.shape == (10, 1, 28, 28)
    assert data.num_classes == 10 and data.input_shape == (1, 28, 28) and data.augment == "none"
    assert data.y_train.tolist() == made["arrays"]["train_labels"].tolist()
    pixels = torch.from_numpy(made["arrays"]["train_images"]).double() / 255
    torch.testing.assert_close(data.x_train.mean().double(), torch.zeros((), dtype=torch.float64),
                               atol=1e-5, rtol=0)  # fmt: skip
    expect = torch.from_numpy(made["arrays"]["test_images"]).double() / 255 - pixels.mean()
    expect = (expect / pixels.std()).float().unsqueeze(1)
    torch.testing.assert_close(data.x_test, expect, atol=1e-4, rtol=1e-4)
    # the files in torchvision's layout are used as they are: nothing else needed
    prepare_dataset("fashion-mnist", root, checksums=made["checksums"])


def test_gz_files_in_torchvisions_layout_are_decompressed_in_place(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    made = write_gz_files(raw)
    prepare_dataset("mnist", tmp_path, checksums=made["checksums"])
    assert all((raw / name).is_file() for name in FILES.values())
    assert load_dataset("mnist", tmp_path, checksums=made["checksums"]).x_train.shape[0] == 30


def test_without_files_or_network_it_says_where_to_put_them(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    with pytest.raises(DatasetUnavailable) as err:
        prepare_dataset("fashion-mnist", tmp_path)
    text = str(err.value)
    assert "train-images-idx3-ubyte.gz" in text and "local_copies" in text
    assert "/usr/share/datasets/fashion-mnist" in text
    assert not any((tmp_path / "FashionMNIST" / "raw").iterdir())  # nothing half-written
    with pytest.raises(DatasetUnavailable, match="prepare_dataset"):
        load_dataset("fashion-mnist", tmp_path)


def _refused(tmp_path, **replace) -> str:
    made = write_gz_files(tmp_path / "copy", **replace)
    root = tmp_path / "data"
    with pytest.raises(FileFormatError) as err:
        prepare_dataset("mnist", root, checksums=made["checksums"], local_copy=tmp_path / "copy")
    assert not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()  # nothing extracted
    assert [p.name for p in (root / "MNIST" / "raw").iterdir()] == []  # no scratch folder left
    return str(err.value)


def test_a_truncated_idx_file_is_refused_naming_it(tmp_path):
    truncated = idx(np.zeros((30, 28, 28)))[:-100]
    text = _refused(tmp_path, train_images=truncated)
    assert "train-images-idx3-ubyte.gz (decompressed)" in text and "truncated" in text


def test_a_wrong_magic_number_is_refused_naming_it(tmp_path):
    labels_as_images = idx(np.arange(10) % 10)  # a label file where the test images belong
    text = _refused(tmp_path, test_images=labels_as_images)
    assert "t10k-images-idx3-ubyte.gz (decompressed)" in text and "magic number 2049" in text


def test_mismatched_image_and_label_counts_are_refused(tmp_path):
    text = _refused(tmp_path, test_labels=idx(np.arange(9) % 10))
    assert "holds 10 images but" in text and "9 labels" in text


def test_a_damaged_gz_is_refused(tmp_path):
    made = write_gz_files(tmp_path / "copy")
    gz = tmp_path / "copy" / "train-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:20])
    with pytest.raises(FileFormatError, match="train-labels-idx1-ubyte.gz: cannot be decompressed"):
        prepare_dataset("mnist", tmp_path / "d", made["checksums"], local_copy=tmp_path / "copy")


def test_another_datasets_files_are_refused(tmp_path):
    """A Fashion-MNIST folder holding other files fails the pinned SHA-256; an MNIST folder
    holding files with other class counts fails MNIST's known counts."""
    write_gz_files(tmp_path / "copy")
    with pytest.raises(FileFormatError) as err:
        prepare_dataset("fashion-mnist", tmp_path / "d", local_copy=tmp_path / "copy")
    assert "another dataset's file" in str(err.value) and "SHA-256" in str(err.value)
    with pytest.raises(FileFormatError, match="labels per class, mnist has"):
        prepare_dataset("mnist", tmp_path / "d", local_copy=tmp_path / "copy")


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_the_real_fashion_mnist_from_debians_package(tmp_path):
    """The original files (MIT licence): the pinned SHA-256 of the decompressed contents, 6,000
    and 1,000 images per class; and MNIST's loader refuses them."""
    prepare_dataset("fashion-mnist", tmp_path, local_copy=DEBIAN)
    data = load_dataset("fashion-mnist", tmp_path)
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.y_train).tolist() == [6000] * 10
    assert torch.bincount(data.y_test).tolist() == [1000] * 10
    assert data.mean[0] == pytest.approx(0.2860, abs=1e-4)  # the known pixel mean
    with pytest.raises(FileFormatError, match="another dataset's file"):
        prepare_dataset("mnist", tmp_path / "other", local_copy=DEBIAN)
