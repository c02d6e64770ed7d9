"""Table B.1, pair details and figures on small synthetic data (no training, no torch)."""

from __future__ import annotations

import math

import matplotlib.image as mpimg
import numpy as np
import pytest

from nobarriers.errors import ConfigError, NoBarriersError
from nobarriers.report import figures as F
from nobarriers.report import table as T

HASH = "abc123def456"


def _history(final: float, n_epochs: int = 12, lrs=(0.1, 0.01, 0.001)) -> list[dict]:
    """Loss decaying geometrically from 2.0 to ``final``; lr in three equal phases."""
    losses = np.geomspace(2.0, final, n_epochs)
    third = n_epochs / len(lrs)
    return [
        {"epoch": e + 1, "lr": lrs[min(int(e // third), len(lrs) - 1)], "train_loss": float(v)}
        for e, v in enumerate(losses)
    ]


def _minima():
    # train losses 0.10 / 0.20 / 0.30 -> mean 0.20; test losses 0.5 / 0.6 / 0.7 -> 0.6
    return [
        {
            "seed": s,
            "train_loss": 0.1 * (k + 1),
            "train_error": 0.01 * (k + 1),
            "test_loss": 0.5 + 0.1 * k,
            "test_error": 0.10 + 0.01 * k,
            "history": _history(0.1 * (k + 1)),
            "config_hash": HASH,
        }
        for k, s in enumerate([0, 1, 2])
    ]


def _saddles():
    return [
        {"a": 0, "b": 1, "train_loss": 0.35, "train_error": 0.05, "test_loss": 0.8,
         "test_error": 0.13},
        {"a": 1, "b": 2, "train_loss": 0.45, "train_error": 0.07, "test_loss": 0.9,
         "test_error": 0.15},
    ]  # fmt: skip


def _row(**kw):
    return T.table_b1_row("cifar10", "resnet-20", _minima(), _saddles(), 12, config_hash=HASH, **kw)


def test_table_row_values():
    row = _row(n_paths=3, n_overlap_flagged=1)
    assert list(row) == T.TABLE_B1_COLUMNS
    assert row["train_min"] == pytest.approx(0.2)
    assert row["train_sadd"] == pytest.approx(0.4)
    assert row["factor"] == pytest.approx(2.0)
    assert row["test_min"] == pytest.approx(0.6)
    assert row["test_sadd"] == pytest.approx(0.85)
    assert row["test_error_min"] == pytest.approx(0.11)
    assert row["test_error_sadd"] == pytest.approx(0.14)
    assert row["delta"] == pytest.approx(3.0)  # percentage points
    assert row["train_min_std"] == pytest.approx(0.1)  # sample std of 0.1, 0.2, 0.3
    assert row["train_sadd_std"] == pytest.approx(np.std([0.35, 0.45], ddof=1))
    assert (row["n_minima"], row["n_edges"], row["n_paths"]) == (3, 2, 3)
    assert row["n_overlap_flagged"] == 1 and row["config_hash"] == HASH
    assert row["n_edges_sadd_below_min"] == 0
    # mean curve: geomspace(2, f, 12) averaged over f = .1, .2, .3; first epoch below 0.4
    mean = np.mean([np.geomspace(2.0, f, 12) for f in (0.1, 0.2, 0.3)], axis=0)
    expected = int(np.nonzero(mean < 0.4)[0][0]) + 1
    assert row["epoch"] == expected
    assert row["epoch_fraction"] == pytest.approx(expected / 12)
    assert row["epoch_in_last_phase"] == (expected >= 9)  # lr 0.001 from epoch 9


def test_crossing_epoch_constructed():
    hist = [
        [{"epoch": e, "lr": 0.1 if e <= 5 else 0.01, "train_loss": 1.0 / e} for e in range(1, 11)]
    ]
    c = T.crossing_epoch(hist, 0.3, epochs_total=10)
    assert c["epoch"] == 4 and c["fraction"] == 0.4 and c["in_last_phase"] is False
    c = T.crossing_epoch(hist, 0.15, epochs_total=10)
    assert c["epoch"] == 7 and c["in_last_phase"] is True
    assert T.crossing_epoch(hist, 0.01)["epoch"] is None
    # histories of different length: only common epochs are averaged
    e, m = T.mean_learning_curve([[{"epoch": 1, "train_loss": 1}, {"epoch": 2, "train_loss": 3}],
                                  [{"epoch": 1, "train_loss": 3}]])  # fmt: skip
    assert e.tolist() == [1] and m.tolist() == [2.0]


def test_saddle_below_minimum_counted_and_bad_edge():
    saddles = _saddles()
    saddles[1]["train_loss"] = 0.25  # below minimum 2 (0.30)
    row = T.table_b1_row("cifar10", "resnet-20", _minima(), saddles, 12)
    assert row["n_edges_sadd_below_min"] == 1
    saddles[0]["b"] = 7
    with pytest.raises(ConfigError, match="edge 0-7"):
        T.table_b1_row("cifar10", "resnet-20", _minima(), saddles, 12)


def test_config_hash_mixing_raises(tmp_path):
    with pytest.raises(ConfigError, match="config hashes"):
        T.table_b1_row("cifar10", "cnn-12", _minima(), _saddles(), 12, config_hash="other")
    r1 = _row()
    r2 = dict(r1, architecture="cnn-12", config_hash="ffffffffffff")
    expected = {("cifar10", "resnet-20"): r1["config_hash"], ("cifar10", "cnn-12"): "eeeeeeeeeeee"}
    with pytest.raises(ConfigError, match="must not mix"):
        T.write_table_b1(
            [r1, r2], tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.tex", expected
        )
    assert not (tmp_path / "t.csv").exists()
    assert issubclass(ConfigError, NoBarriersError)


def test_write_and_read_table(tmp_path):
    rows = [
        _row(n_overlap_flagged=2),
        dict(_row(), dataset="cifar100", architecture="densenet-bc-100-12", epoch=None,
             epoch_fraction=None, epoch_in_last_phase=None),
    ]  # fmt: skip
    T.write_table_b1(rows, tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.tex")
    back = T.read_table_b1(tmp_path / "t.csv")
    assert len(back) == 2
    for a, b in zip(rows, back, strict=True):
        for c in T.TABLE_B1_COLUMNS:
            assert a[c] == b[c], c  # full precision round trip
    md = (tmp_path / "t.md").read_text()
    tex = (tmp_path / "t.tex").read_text()
    for header in ["Train energy", "Test energy", "Test error rate [%]", "Min.", "Sadd.",
                   "Factor", "Epoch", "Δ", "Dataset", "Architecture"]:  # fmt: skip
        assert header in md, header
    for header in [r"\textsc{Train energy}", r"\textsc{Test energy}", r"Test error rate [\%]",
                   r"\textsc{Min.}", r"\textsc{Sadd.}", r"\textsc{Factor}", r"\textsc{Epoch}",
                   r"$\Delta$"]:  # fmt: skip
        assert header in tex, header
    # the paper's precision and labels
    line = next(x for x in md.splitlines() if "RESNET-20" in x)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:6] == ["C10+", "RESNET-20†", "0.2000", "0.4000", "2.0", cells[5]]
    assert cells[6:] == ["0.60", "0.85", "11.0", "14.0", "3.0"]
    assert "C100+" in md and "DENSENET-100-12-BC" in md and "†" in md.split("\n\n", 2)[-1]
    assert r"$^\dagger$" in tex and HASH in md and HASH in tex


def test_display_names():
    assert T.display_arch("cnn-48x2") == "CNN-48X2"
    assert T.display_arch("resnet-20") == "RESNET-20"
    assert T.display_arch("densenet-40-12") == "DENSENET-40-12"
    assert T.display_arch("densenet-bc-100-12") == "DENSENET-100-12-BC"
    assert T.display_arch("mlp-32x2") == "MLP-32X2"
    assert T.display_dataset("cifar10") == "C10+" and T.display_dataset("cifar100") == "C100+"
    assert T.arch_family("densenet-bc-100-12") == "densenet"


def test_pair_details(tmp_path):
    computed = {(0, 1): 0.35, (2, 1): 0.45, (0, 2): 0.6}
    mst = [(0, 1, 0.35), (1, 2, 0.45)]
    dense = {(0, 1): {"train_loss": 0.36, "train_error": 0.05, "test_loss": 0.8, "test_error": 0.1}}
    rows = T.pair_details("digits", "mlp-32", computed, mst, minimum_loss={0: 0.1, 1: 0.2, 2: 0.3},
                          dense=dense, config_hash=HASH)  # fmt: skip
    assert [(r["i"], r["j"]) for r in rows] == [(0, 1), (0, 2), (1, 2)]
    assert [r["on_mst"] for r in rows] == [True, False, True]
    assert rows[1]["ultrametric_bound"] == pytest.approx(0.45)  # max edge on the MST path
    assert rows[0]["dense_train_loss"] == 0.36 and rows[2]["dense_train_loss"] is None
    T.write_pair_details(rows, tmp_path / "p.csv")
    back = T.read_pair_details(tmp_path / "p.csv")
    assert back == rows


# --------------------------------------------------------------------------- figures


def _check_images(paths):
    png, pdf = paths
    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[0] > 150 and img.shape[1] > 150
    assert img.std() > 0  # not blank
    assert pdf.read_bytes()[:4] == b"%PDF"


def test_plane_basis_and_projection():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 50))
    basis = F.plane_basis(a, b, c)
    assert np.allclose(basis @ basis.T, np.eye(2), atol=1e-12)
    uv = F.project_to_plane(np.stack([a, b, c]), a, basis)
    for point, (u, v) in zip([a, b, c], uv, strict=True):
        assert np.allclose(F.plane_point(a, basis, u, v), point, atol=1e-10)
    with pytest.raises(ValueError, match="collinear"):
        F.plane_basis(a, b, 2 * b - a)


def test_linear_deviation_zero_for_straight_path():
    p0, p1 = np.array([1.0, -2.0, 0.5]), np.array([-1.0, 3.0, 0.5])
    s = np.array([0.0, 0.1, 0.5, 0.75, 1.0])
    pivots = (1 - s)[:, None] * p0 + s[:, None] * p1
    assert np.allclose(F.linear_deviation(pivots, s), 0.0)
    assert np.allclose(F.arc_fractions(pivots), s)
    # a bump towards the origin is negative whatever the sign of the coordinate
    bent = pivots.copy()
    bent[2] *= 0.5
    dev = F.linear_deviation(bent, s)
    assert dev[2, 0] == 0.0  # line value 0 there
    assert dev[2, 1] < 0 and dev[2, 2] < 0


def test_figures_written(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "DPI", 60)  # speed; the layout is what is tested
    rng = np.random.default_rng(1)
    # Figure 4
    records = []
    for c in range(1, 7):
        n = 3 + c // 2
        t = np.linspace(0, n + 1, 10 * (n + 1) + 1)
        records.append({"cycle": c, "lr": 0.1 if c <= 4 else 0.01, "t": t,
                        "loss": 0.2 + np.sin(np.pi * t / (n + 1)) / c,
                        "pivot_loss": 0.2 + np.sin(np.pi * np.arange(n + 2) / (n + 1)) / c,
                        "inserted": [1.5]})  # fmt: skip
    assert F.default_cycles(records) == [1, 4, 5, 6]
    _check_images(F.plot_path_cycles(records, [1, 4, 99, -1], tmp_path / "fig4", "path",
                                     log_y=True, config_hash=HASH))  # fmt: skip
    # Figure 5
    rows = [_row(), dict(_row(), architecture="cnn-12"),
            dict(_row(), dataset="cifar100", architecture="densenet-40-12")]  # fmt: skip
    _check_images(F.plot_min_vs_saddle(rows, tmp_path / "fig5.png", config_hash=HASH))
    assert (tmp_path / "fig5.pdf").exists()
    # Figure 6
    hist = [m["history"] for m in _minima()]
    _check_images(F.plot_learning_curves(hist, 0.4, tmp_path / "fig6", "curves"))
    # Figure 7
    s = np.linspace(0, 1, 7)
    pivots = (1 - s)[:, None] * rng.normal(size=40) + s[:, None] * rng.normal(size=40)
    pivots[1:-1] += 0.3 * rng.normal(size=(5, 40))
    dense_t = np.linspace(0, 6, 61)
    _check_images(F.plot_parallel_coordinates(pivots, None, dense_t, np.sin(dense_t / 2) + 1,
                                              tmp_path / "fig7"))  # fmt: skip
    # Figure 1 slice
    basis = F.plane_basis(pivots[0], pivots[-1], pivots.mean(axis=0))
    path_uv = F.project_to_plane(pivots, pivots[0], basis)
    gu, gv = F.plane_grid(path_uv, n=15)
    loss = np.array([[0.1 + u * u + v * v for u in gu] for v in gv])
    _check_images(F.plot_plane_slice(gu, gv, loss, path_uv, path_uv[[0, -1]], tmp_path / "fig1",
                                     "slice", path_profile=(s, 1 + s * (1 - s)),
                                     line_profile=(s, 1 + 4 * s * (1 - s))))  # fmt: skip
    # MST, disconnectivity
    nodes = [0, 1, 2, 3]
    node_loss = {0: 0.1, 1: 0.2, 2: 0.15, 3: 0.3}
    edges = [(0, 2, 0.2), (0, 1, 0.25), (1, 3, 0.4)]
    _check_images(F.plot_mst(nodes, node_loss, edges, tmp_path / "mst", "MST"))
    merges = [(0, 2, 0.2, 2), (1, 4, 0.25, 3), (3, 5, 0.4, 4)]
    _check_images(F.plot_disconnectivity(nodes, node_loss, merges, tmp_path / "dis", "dis"))
    merges_inf = [(0, 2, 0.2, 2), (1, 4, 0.25, 3), (3, 5, math.inf, 4)]
    _check_images(F.plot_disconnectivity(nodes, node_loss, merges_inf, tmp_path / "dis2", "d"))
    members = [([0], [2], 0.2), ([1], [0, 2], 0.25), ([3], [0, 1, 2], 0.4)]
    assert F._merge_tree(nodes, members) == F._merge_tree(nodes, merges)


def test_path_cycles_none_recorded(tmp_path):
    rec = [{"cycle": 1, "t": np.arange(3.0), "loss": np.ones(3), "pivot_loss": np.ones(3)}]
    with pytest.raises(ConfigError, match="none of the cycles"):
        F.plot_path_cycles(rec, [5], tmp_path / "x", "x")
