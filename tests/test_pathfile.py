"""HDF5 path files and evaluation files: round trip, size, and refusal of bad files."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import h5py
import numpy as np
import pytest
import torch

from nobarriers.core.errors import FileFormatError
from nobarriers.formats.pathfile import (
    EVALUATION_FORMAT,
    PATH_FORMAT,
    read_evaluation,
    read_path,
    write_evaluation,
    write_path,
)

torch.set_num_threads(1)


@dataclass
class FakeCycle:  # duck-types autoneb.CycleRecord
    cycle: int
    steps: int
    lr: float
    n_pivots: int
    t: np.ndarray
    loss: np.ndarray
    pivot_loss: np.ndarray
    saddle_loss: float
    inserted: list
    pivots: np.ndarray | None = None
    climbing: int | None = None


@dataclass
class FakeResult:  # duck-types autoneb.AutoNEBResult
    pivots: torch.Tensor
    target_weights: np.ndarray
    history: list
    saddle_loss: float


def make_result(rng, dim=50, n_interior=(3, 5, 7), keep=(False, True, False)):
    history = []
    for k, (n, kp) in enumerate(zip(n_interior, keep, strict=True)):
        m = (n + 1) * 10 + 1
        t = np.linspace(0, n + 1, m)
        loss = rng.uniform(size=m)
        history.append(
            FakeCycle(
                cycle=k,
                steps=1000 * (k + 1),
                lr=0.1 / 10**k,
                n_pivots=n,
                t=t,
                loss=loss,
                pivot_loss=loss[::10].copy(),
                saddle_loss=float(loss.max()),
                inserted=[] if k == 0 else [1.3, 4.7],
                pivots=rng.normal(size=(n + 2, dim)).astype(np.float32) if kp else None,
                climbing=2 if k == len(n_interior) - 1 else None,
            )
        )
    n = n_interior[-1]
    pivots = torch.from_numpy(rng.normal(size=(n + 2, dim)).astype(np.float32))
    w = rng.uniform(size=n + 1)
    return FakeResult(pivots, w / w.sum(), history, history[-1].saddle_loss)


META = dict(
    endpoints=(3, 7),
    config={"schedule": [{"steps": 1000, "lr": 0.1}], "insert_threshold": 0.2},
    seed=11,
    dataset="cifar10",
    arch="resnet-20",
    config_hash="abc123",
)
SADDLE = {"t": np.linspace(0.0, 8.0, 81), "train_loss": np.sin(np.linspace(0, 3, 81)) + 1}
PATH_META = dict(META, saddle=SADDLE, weight_subset=None)


def test_path_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    res = make_result(rng)
    fn = write_path(tmp_path / "paths" / "3-7.h5", res, **PATH_META, extra_attrs={"note": "x"})
    rec = read_path(fn, expect_config_hash="abc123", expect_endpoints=(3, 7))
    assert rec.pivots.dtype == np.float32
    assert np.array_equal(rec.pivots.view(np.int32), res.pivots.numpy().view(np.int32))  # bitwise
    np.testing.assert_array_equal(rec.target_weights, res.target_weights)
    assert rec.saddle_loss == SADDLE["train_loss"].max()  # the MST weight
    assert rec.autoneb_saddle_loss == res.saddle_loss and rec.weight_subset is None
    np.testing.assert_array_equal(rec.saddle["train_loss"], SADDLE["train_loss"])
    np.testing.assert_array_equal(rec.cycle_saddle_loss, [c.saddle_loss for c in res.history])
    assert len(rec.history) == len(res.history)
    for got, want in zip(rec.history, res.history, strict=True):
        for name in ("cycle", "steps", "lr", "n_pivots", "saddle_loss", "inserted", "climbing"):
            assert getattr(got, name) == getattr(want, name), name
        for name in ("t", "loss", "pivot_loss"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        if want.pivots is None:
            assert got.pivots is None
        else:
            np.testing.assert_array_equal(got.pivots, want.pivots)
    assert rec.endpoints == (3, 7)
    assert rec.config == META["config"]
    assert (rec.config_hash, rec.seed, rec.dataset, rec.arch) == (
        "abc123",
        11,
        "cifar10",
        "resnet-20",
    )
    assert rec.attrs["nobarriers_format"] == PATH_FORMAT
    assert rec.attrs["note"] == "x"
    for key in ("version", "git_revision", "torch", "pivots_sha256", "content_sha256"):
        assert isinstance(rec.attrs[key], str) and rec.attrs[key]
    assert "created_utc" not in rec.attrs
    light = read_path(fn, load_pivots=False)
    assert light.pivots is None and all(c.pivots is None for c in light.history)
    assert light.saddle_loss == rec.saddle_loss
    assert [p.name for p in fn.parent.iterdir()] == ["3-7.h5"]  # no temp files left


def test_resnet20_sized_path_fits_40mb(tmp_path):
    # Worst case: i.i.d. normal weights do not compress, so this checks raw float32 + overhead.
    # 33 pivots x 269,722 parameters x 4 bytes = 35.6 MB.
    rng = np.random.default_rng(1)
    res = make_result(rng, dim=4, n_interior=(31,), keep=(False,))
    res.pivots = torch.from_numpy(rng.standard_normal((33, 269_722), dtype=np.float32))
    fn = write_path(tmp_path / "big.h5", res, **PATH_META)
    assert os.path.getsize(fn) <= 40e6
    with h5py.File(fn) as f:
        assert f["pivots"].dtype == np.float32 and f["pivots"].compression == "gzip"


def test_refuses_missing_and_non_hdf5(tmp_path):
    with pytest.raises(FileFormatError, match="no such file"):
        read_path(tmp_path / "nope.h5")
    bad = tmp_path / "text.h5"
    bad.write_text("hello, not hdf5\n")
    with pytest.raises(FileFormatError, match="not an HDF5 file") as err:
        read_path(bad)
    assert str(bad) in str(err.value)


def test_refuses_truncated(tmp_path):
    rng = np.random.default_rng(2)
    fn = write_path(tmp_path / "t.h5", make_result(rng, dim=3000), **PATH_META)
    size = os.path.getsize(fn)
    for keep in (size // 2, size - 100):
        cut = tmp_path / f"cut{keep}.h5"
        cut.write_bytes(fn.read_bytes()[:keep])
        with pytest.raises(FileFormatError) as err:
            read_path(cut)
        assert str(cut) in str(err.value)


def test_refuses_foreign_and_other_marker(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["pivots"] = np.zeros((3, 4), np.float32)
    with pytest.raises(FileFormatError, match="nobarriers_format") as err:
        read_path(foreign)
    assert str(foreign) in str(err.value)
    ev = write_evaluation(tmp_path / "ev.h5", {"t": [0, 1], "train_loss": [1, 2]}, None, **META)
    with pytest.raises(
        FileFormatError, match=re.escape(f"format '{EVALUATION_FORMAT}', expected '{PATH_FORMAT}'")
    ):
        read_path(ev)
    rng = np.random.default_rng(3)
    fn = write_path(tmp_path / "p.h5", make_result(rng), **PATH_META)
    with pytest.raises(FileFormatError, match=f"expected '{EVALUATION_FORMAT}'"):
        read_evaluation(fn)


def test_refuses_missing_dataset_and_bad_shape(tmp_path):
    rng = np.random.default_rng(4)
    fn = write_path(tmp_path / "m.h5", make_result(rng), **PATH_META)
    with h5py.File(fn, "a") as f:
        del f["cycles/001/loss"]
    with pytest.raises(FileFormatError, match="/cycles/001/loss"):
        read_path(fn)
    fn = write_path(tmp_path / "w.h5", make_result(rng), **PATH_META)
    with h5py.File(fn, "a") as f:
        del f["target_weights"]
        f["target_weights"] = np.ones(2)
    with pytest.raises(FileFormatError, match="target_weights"):
        read_path(fn)


def test_refuses_config_hash_and_endpoint_mismatch(tmp_path):
    rng = np.random.default_rng(5)
    fn = write_path(tmp_path / "h.h5", make_result(rng), **PATH_META)
    with pytest.raises(FileFormatError) as err:
        read_path(fn, expect_config_hash="fff999")
    msg = str(err.value)
    assert "abc123" in msg and "fff999" in msg and str(fn) in msg
    with pytest.raises(FileFormatError, match="3-7"):
        read_path(fn, expect_endpoints=(3, 8))


def test_write_rejects_bad_input_and_keeps_old_file(tmp_path):
    rng = np.random.default_rng(6)
    fn = write_path(tmp_path / "k.h5", make_result(rng), **PATH_META)
    before = fn.read_bytes()
    with pytest.raises(ValueError, match="reserved"):
        write_path(fn, make_result(rng), **PATH_META, extra_attrs={"seed": 1})
    res = make_result(rng)
    res.target_weights = res.target_weights[:-1]
    with pytest.raises(ValueError, match="target_weights"):
        write_path(fn, res, **PATH_META)
    assert fn.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.h5"]


def test_evaluation_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    m = 91
    dense = {"t": np.linspace(0, 9, m)} | {
        k: rng.uniform(size=m) for k in ("train_loss", "train_error", "test_loss", "test_error")
    }
    line = {"t": np.linspace(0, 1, 21)} | {
        k: rng.uniform(size=21) for k in ("train_loss", "test_error")
    }
    fn = write_evaluation(tmp_path / "e.h5", dense, line, **META, extra_attrs={"path_file": "p"})
    rec = read_evaluation(fn, expect_config_hash="abc123", expect_endpoints=(3, 7))
    assert set(rec.dense) == set(dense) and set(rec.line) == set(line)
    for k in dense:
        np.testing.assert_array_equal(rec.dense[k], dense[k])
    for k in line:
        np.testing.assert_array_equal(rec.line[k], line[k])
    assert rec.saddles == {k: float(v.max()) for k, v in dense.items() if k != "t"}
    assert rec.line_saddles == {k: float(v.max()) for k, v in line.items() if k != "t"}
    assert rec.attrs["nobarriers_format"] == EVALUATION_FORMAT
    with h5py.File(fn) as f:
        assert f["dense"].attrs["saddle_test_error"] == dense["test_error"].max()
    no_line = write_evaluation(tmp_path / "n.h5", dense, None, **META)
    assert read_evaluation(no_line).line == {}
    with pytest.raises(ValueError, match="train_loss"):
        write_evaluation(tmp_path / "x.h5", {"t": [0, 1], "train_loss": [1.0]}, None, **META)
    with pytest.raises(FileFormatError, match="abc123"):
        read_evaluation(fn, expect_config_hash="zzz")


def test_identical_results_give_identical_bytes(tmp_path):
    a = write_path(tmp_path / "a.h5", make_result(np.random.default_rng(8)), **PATH_META)
    b = write_path(tmp_path / "b.h5", make_result(np.random.default_rng(8)), **PATH_META)
    assert a.read_bytes() == b.read_bytes()
    dense = {"t": np.linspace(0, 2, 5), "train_loss": np.arange(5.0)}
    c = write_evaluation(tmp_path / "c.h5", dense, None, **META)
    d = write_evaluation(tmp_path / "d.h5", dense, None, **META)
    assert c.read_bytes() == d.read_bytes()


def _overwrite(path, offset: int, size: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + size] = bytes((b + 1) % 256 for b in data[offset : offset + size])
    path.write_bytes(bytes(data))


def test_changed_values_are_refused(tmp_path):
    rng = np.random.default_rng(9)
    # a value changed through HDF5 itself (header and structure intact)
    fn = write_path(tmp_path / "v.h5", make_result(rng), **PATH_META)
    with h5py.File(fn, "a") as f:
        f["saddle/train_loss"][3] = 0.0
    with pytest.raises(FileFormatError, match="content checksum mismatch") as err:
        read_path(fn, load_pivots=False)
    assert str(fn) in str(err.value) and "delete it" in str(err.value)
    # bytes overwritten inside the (uncompressed) pivot data: found when the pivots are read
    raw = write_path(tmp_path / "r.h5", make_result(rng, dim=4000), **PATH_META, compression=None)
    with h5py.File(raw) as f:
        offset = f["pivots"].id.get_offset()
    _overwrite(raw, offset + 1000, 224)
    assert read_path(raw, load_pivots=False).saddle_loss == SADDLE["train_loss"].max()
    with pytest.raises(FileFormatError, match="checksum mismatch of /pivots"):
        read_path(raw)
    ev = write_evaluation(tmp_path / "e.h5", {"t": [0, 1], "train_loss": [1, 2]}, None, **META)
    with h5py.File(ev, "a") as f:
        f["dense/train_loss"][0] = 5.0
    with pytest.raises(FileFormatError, match="content checksum mismatch"):
        read_evaluation(ev)
