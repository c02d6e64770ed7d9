"""Datasets: CIFAR loaders on generated archives in CIFAR's own format, offline errors,
batched augmentation, the digits split."""

import tarfile
import urllib.error

import numpy as np
import pytest
import torch
import torchvision.datasets.utils as tv_utils
from cifar_archive import md5, write_cifar_archive, write_cifar_folder

from nobarriers.core.errors import ConfigError, DatasetUnavailable, FileFormatError, NoBarriersError
from nobarriers.datasets import load_dataset, prepare_dataset
from nobarriers.nn.batches import augment_batch

torch.set_num_threads(1)


def _write_cifar(root, name, per_file=4, seed=0):
    return write_cifar_folder(root, name, per_file, seed)


@pytest.mark.parametrize("name, n_train, n_test", [("cifar10", 20, 4), ("cifar100", 4, 4)])
def test_cifar_loader_on_generated_files(tmp_path, name, n_train, n_test):
    _, checksums, images = _write_cifar(tmp_path, name)
    ds = load_dataset(name, tmp_path, checksums=checksums)
    assert ds.name == name and ds.augment == "crop_flip" and ds.input_shape == (3, 32, 32)
    assert ds.num_classes == (10 if name == "cifar10" else 100)
    assert ds.x_train.shape == (n_train, 3, 32, 32) and ds.x_train.dtype == torch.float32
    assert ds.x_test.shape == (n_test, 3, 32, 32)
    assert ds.y_train.dtype == torch.int64
    assert ds.y_train.tolist() == images["train"][1].tolist()
    assert ds.y_test.tolist() == images["test"][1].tolist()
    # per-channel statistics of the training set, applied to both splits
    raw_tr = torch.from_numpy(images["train"][0]).permute(0, 3, 1, 2).double() / 255
    mean, std = raw_tr.mean(dim=(0, 2, 3)), raw_tr.std(dim=(0, 2, 3))
    torch.testing.assert_close(torch.tensor(ds.mean).double(), mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ds.x_train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(ds.x_train.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4, rtol=0)
    raw_te = torch.from_numpy(images["test"][0]).permute(0, 3, 1, 2).double() / 255
    expect = ((raw_te - mean[:, None, None]) / std[:, None, None]).float()
    torch.testing.assert_close(ds.x_test, expect, atol=1e-4, rtol=1e-4)


def test_cifar_md5_check_is_kept(tmp_path):
    folder, checksums, _ = _write_cifar(tmp_path, "cifar10")
    # torchvision's own md5s of the real files do not match the generated files
    with pytest.raises(FileFormatError) as err:
        load_dataset("cifar10", tmp_path)
    assert "md5 mismatch" in str(err.value) and "data_batch_1" in str(err.value)
    # a corrupted file fails the (replaced) check as well
    (folder / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(FileFormatError, match="data_batch_3 md5 mismatch"):
        load_dataset("cifar10", tmp_path, checksums=checksums)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileFormatError, match="data_batch_3 missing"):
        load_dataset("cifar10", tmp_path, verify=False)


def test_cifar_missing_says_where_to_put_it(tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("cifar100", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "cifar-100-python.tar.gz") in msg
    assert str(tmp_path / "cifar-100-python") in msg


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(tv_utils.urllib.request, "urlopen", refuse)


def test_prepare_dataset_without_network(tmp_path, no_network):
    with pytest.raises(DatasetUnavailable) as err:
        prepare_dataset("cifar10", tmp_path)
    msg = str(err.value)
    assert isinstance(err.value, NoBarriersError)
    assert "could not download" in msg and "network is unreachable" in msg
    assert str(tmp_path / "cifar-10-python.tar.gz") in msg
    assert str(tmp_path / "cifar-10-batches-py") in msg
    prepare_dataset("digits", tmp_path)  # bundled: nothing to download


def test_prepare_dataset_uses_a_placed_archive_offline(tmp_path, no_network):
    archive, checksums, images = write_cifar_archive(tmp_path / "data", "cifar10")
    prepare_dataset("cifar10", archive.parent, checksums=checksums)
    ds = load_dataset("cifar10", archive.parent, checksums=checksums)
    assert ds.y_test.tolist() == images["test"][1].tolist()
    # a second call finds the verified folder and leaves it alone
    folder = archive.parent / "cifar-10-batches-py"
    stamp = folder.stat().st_mtime_ns
    prepare_dataset("cifar10", archive.parent, checksums=checksums)
    assert folder.stat().st_mtime_ns == stamp


def _leftovers(root):
    return sorted(p.name for p in root.iterdir() if p.name != "cifar-10-python.tar.gz")


def test_archive_with_a_wrong_checksum_is_refused_and_nothing_written(tmp_path, no_network):
    archive, checksums, _ = write_cifar_archive(tmp_path, "cifar10")
    with open(archive, "ab") as f:
        f.write(b"\0")  # one byte more: another md5
    with pytest.raises(FileFormatError) as err:
        prepare_dataset("cifar10", tmp_path, checksums=checksums)
    assert str(archive) in str(err.value) and "md5" in str(err.value)
    assert "delete it" in str(err.value)
    assert _leftovers(tmp_path) == []


def test_truncated_archive_is_refused_and_nothing_half_written(tmp_path, no_network):
    archive, checksums, _ = write_cifar_archive(tmp_path, "cifar10", per_file=40)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    # even with the truncated archive's own md5 expected, extraction fails on a cut member
    checksums = {**checksums, archive.name: md5(archive)}
    with pytest.raises(FileFormatError) as err:
        prepare_dataset("cifar10", tmp_path, checksums=checksums)
    assert str(archive) in str(err.value) and "truncated or damaged member" in str(err.value)
    assert _leftovers(tmp_path) == []  # no half-extracted folder


def test_archive_with_a_damaged_member_is_refused(tmp_path, no_network):
    src = tmp_path / "src"
    folder, checksums, _ = write_cifar_folder(src, "cifar10")
    (folder / "data_batch_2").write_bytes(b"not the batch the checksums describe")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    with pytest.raises(FileFormatError, match="data_batch_2 md5 mismatch"):
        prepare_dataset("cifar10", tmp_path, checksums={**checksums, archive.name: md5(archive)})
    assert _leftovers(tmp_path) == ["src"]


def test_unknown_dataset():
    with pytest.raises(ConfigError, match="cifar10, cifar100, digits, mnist, fashion-mnist"):
        load_dataset("svhn", "/nonexistent")
    with pytest.raises(ConfigError, match="define your own in the config's datasets"):
        prepare_dataset("imagenet", "/nonexistent")


def _identify(x, out, p):
    """For each sample the unique (dy, dx, flip) such that out = crop of padded (flipped) x."""
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    found = []
    for i in range(x.shape[0]):
        hits = [
            (dy, dx, flip)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            for flip in (False, True)
            if torch.equal(
                out[i],
                padded[i, :, dy : dy + h, dx : dx + w].flip(-1)
                if flip
                else padded[i, :, dy : dy + h, dx : dx + w],
            )
        ]
        assert len(hits) == 1, (i, hits)
        found.append(hits[0])
    return found


def test_augment_is_a_padded_crop_and_flip_of_each_sample():
    n, c, h, w = 300, 2, 6, 6
    x = torch.arange(1, n * c * h * w + 1, dtype=torch.float32).reshape(n, c, h, w)
    out = augment_batch(x, "crop_flip", torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    found = _identify(x, out, 4)
    dys, dxs, flips = zip(*found, strict=True)
    assert set(dys) == set(range(9)) and set(dxs) == set(range(9))
    assert 0.35 < np.mean(flips) < 0.65


def test_augment_moves_a_known_pixel_predictably():
    # all-zero images with one marked pixel; a 32×32 image like CIFAR
    x = torch.zeros(64, 3, 32, 32)
    x[:, 1, 10, 20] = 1.0
    out = augment_batch(x, "crop_flip", torch.Generator().manual_seed(1))
    ones = out.nonzero()
    assert (ones[:, 1] == 1).all() and len(ones) == 64  # offsets <= 4 px keep the pixel inside
    for i, (dy, dx, flip) in enumerate(_identify(x[:16], out[:16], 4)):
        row = 10 + 4 - dy  # padded row 14, crop starts at dy
        col = 20 + 4 - dx
        col = 31 - col if flip else col
        assert out[i, 1, row, col] == 1.0 and out[i].sum() == 1.0


def test_augment_determinism_and_none():
    x = torch.randn(16, 3, 32, 32)
    a = augment_batch(x, "crop_flip", torch.Generator().manual_seed(5))
    b = augment_batch(x, "crop_flip", torch.Generator().manual_seed(5))
    c = augment_batch(x, "crop_flip", torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert augment_batch(x, "none", None) is x
    with pytest.raises(ConfigError, match="crop_flip, none"):
        augment_batch(x, "autoaugment", None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_on_cuda_matches_cpu_with_a_cpu_generator():
    x = torch.randn(32, 3, 32, 32)
    cpu = augment_batch(x, "crop_flip", torch.Generator().manual_seed(2))
    gpu = augment_batch(x.cuda(), "crop_flip", torch.Generator().manual_seed(2))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)


def test_digits_split_and_normalisation():
    ds = load_dataset("digits")
    assert ds.input_shape == (1, 8, 8) and ds.augment == "none" and ds.num_classes == 10
    assert ds.x_train.shape == (1437, 1, 8, 8) and ds.x_test.shape == (360, 1, 8, 8)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    # stratified: every class has its share (about 10%) in the test split
    counts = torch.bincount(ds.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    # fixed: a second load gives the same split
    again = load_dataset("digits")
    assert torch.equal(again.x_test, ds.x_test) and torch.equal(again.y_train, ds.y_train)
    flat = ds.x_train.reshape(1437, 64).double()
    torch.testing.assert_close(
        flat.mean(0), torch.zeros(64, dtype=torch.float64), atol=1e-6, rtol=0
    )
    std = flat.std(0, unbiased=False)
    constant = torch.tensor(ds.std) == 1.0
    assert constant.any()  # the always-blank border pixels
    assert torch.allclose(std[~constant], torch.ones(int((~constant).sum()), dtype=torch.float64))
    assert (flat[:, constant] == 0).all()


def test_digits_cache_gives_the_same_dataset_and_refuses_garbage(tmp_path):
    from nobarriers.datasets.builtin.digits import CACHE as DIGITS_CACHE

    fresh = load_dataset("digits")
    prepare_dataset("digits", tmp_path)
    assert (tmp_path / DIGITS_CACHE).is_file()
    cached = load_dataset("digits", tmp_path)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(fresh, key), getattr(cached, key)), key
    (tmp_path / DIGITS_CACHE).write_bytes(b"not an npz file")
    with pytest.raises(FileFormatError, match="digits-split.npz"):
        load_dataset("digits", tmp_path)


def test_the_pinned_cifar_md5s_are_torchvisions():
    """Jobs reading the decoded cache check it against these without importing torchvision."""
    from torchvision.datasets import CIFAR10, CIFAR100

    from nobarriers.datasets.builtin.cifar import FOLDERS, expected_md5s

    for name, cls in (("cifar10", CIFAR10), ("cifar100", CIFAR100)):
        files = cls.train_list + cls.test_list + [[cls.meta["filename"], cls.meta["md5"]]]
        assert FOLDERS[name][0] == cls.base_folder
        assert expected_md5s(name) == dict(files)
        assert expected_md5s(name, {"meta": "x", files[0][0]: "y"})[files[0][0]] == "y"
