"""Table B.1, pair details and figures on small synthetic data (no training, no torch)."""

from __future__ import annotations

import math

import matplotlib.image as mpimg
import numpy as np
import pytest

from nobarriers.core.errors import ConfigError, NoBarriersError
from nobarriers.formats.records import TABLE_B1_COLUMNS
from nobarriers.report import landscape_figures, path_figures, style, summary_figures
from nobarriers.report import learning_curves as L
from nobarriers.report import pairs as P
from nobarriers.report import table as T
from nobarriers.report.labels import arch_family, arch_label, dataset_label

HASH = "abc123def456"


def _lr(epoch: int) -> float:
    """Three phases of four epochs: 0.1 (1-4), 0.01 (5-8), 0.001 (9-12)."""
    return 0.1 if epoch <= 4 else 0.01 if epoch <= 8 else 0.001


def _history(k: int) -> list[dict]:
    """Minimum k's curve: 1/epoch + (k - 1) / 100, so the mean over k = 0, 1, 2 is 1/epoch."""
    return [{"epoch": e, "lr": _lr(e), "train_loss": 1.0 / e + (k - 1) / 100} for e in range(1, 13)]


def _minima():
    # train losses 0.10 / 0.20 / 0.30 -> mean 0.20; test losses 0.5 / 0.6 / 0.7 -> 0.6
    return [
        {
            "seed": s,
            "train_loss": 0.1 * (k + 1),
            "train_error": 0.01 * (k + 1),
            "test_loss": 0.5 + 0.1 * k,
            "test_error": 0.10 + 0.01 * k,
            "history": _history(k),
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
    row = _row(n_paths=3, n_overlap_flagged=1).to_json()
    assert list(row) == TABLE_B1_COLUMNS
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
    # the mean curve is 1/epoch: 1/2 = 0.5 is above the saddle 0.4, 1/3 below -> epoch 3,
    # a quarter of the 12 epochs, in the first phase
    assert row["epoch"] == 3 and row["epoch_fraction"] == 0.25
    assert row["epoch_in_last_phase"] is False


def test_crossing_epoch_of_constructed_curves():
    # mean 1/epoch over three minima; lr phases 1-4, 5-8, 9-12 (see _lr)
    hist = [_history(k) for k in range(3)]
    # strictly below: 1/4 equals the level 0.25, so the crossing is epoch 5 (1-based, as stored)
    c = L.crossing_epoch(hist, 0.25, epochs_total=12)
    assert c["epoch"] == 5 and c["fraction"] == 5 / 12 and c["in_last_phase"] is False
    # 1/11 = 0.0909 > 0.09 > 1/12: the last epoch, in the last learning-rate phase
    c = L.crossing_epoch(hist, 0.09, epochs_total=12)
    assert c["epoch"] == 12 and c["in_last_phase"] is True
    assert L.crossing_epoch(hist, 0.01)["epoch"] is None
    # the mean, not one minimum: minimum 2 alone (1/e + 0.01) would cross 0.25 only at epoch 5,
    # minimum 0 (1/e - 0.01) already at epoch 4
    assert L.crossing_epoch([hist[0]], 0.25)["epoch"] == 4
    # histories of different length: only common epochs are averaged
    e, m = L.mean_learning_curve([[{"epoch": 1, "train_loss": 1}, {"epoch": 2, "train_loss": 3}],
                                  [{"epoch": 1, "train_loss": 3}]])  # fmt: skip
    assert e.tolist() == [1] and m.tolist() == [2.0]


def test_saddle_below_minimum_counted_and_bad_edge():
    saddles = _saddles()
    saddles[1]["train_loss"] = 0.25  # below minimum 2 (0.30)
    row = T.table_b1_row("cifar10", "resnet-20", _minima(), saddles, 12)
    assert row.n_edges_sadd_below_min == 1
    saddles[0]["b"] = 7
    with pytest.raises(ConfigError, match="edge 0-7"):
        T.table_b1_row("cifar10", "resnet-20", _minima(), saddles, 12)


def test_config_hash_mixing_raises(tmp_path):
    with pytest.raises(ConfigError, match="config hashes"):
        T.table_b1_row("cifar10", "cnn-12", _minima(), _saddles(), 12, config_hash="other")
    r1 = _row().to_json()
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
        _row(n_overlap_flagged=2).to_json(),
        dict(_row().to_json(), dataset="cifar100", architecture="densenet-bc-100-12", epoch=None,
             epoch_fraction=None, epoch_in_last_phase=None),
    ]  # fmt: skip
    T.write_table_b1(rows, tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.tex")
    back = [r.to_json() for r in T.read_table_b1(tmp_path / "t.csv")]
    assert back == rows  # full precision, types and missing values round trip
    md = (tmp_path / "t.md").read_text()
    tex = (tmp_path / "t.tex").read_text()
    for header in ["Train energy", "Test energy", "Test error rate [%]", "Min.", "Sadd.",
                   "Factor", "Epoch", "Δ", "Dataset", "Architecture"]:  # fmt: skip
        assert header in md, header
    for header in [r"\multicolumn{4}{c}{Train energy}", r"\multicolumn{2}{c}{Test energy}",
                   r"\multicolumn{3}{c}{Test error rate [\%]}", "Min.", "Sadd.", "Factor",
                   "Epoch", r"$\Delta$", r"\toprule", r"\bottomrule"]:  # fmt: skip
        assert header in tex, header
    # the paper's precision and labels
    line = next(x for x in md.splitlines() if "ResNet-20" in x)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells == ["C10+", "ResNet-20†", "0.2000", "0.4000", "2.0", "3", "0.60", "0.85",
                     "11.0", "14.0", "3.0"]  # fmt: skip
    assert "C100+" in md and "DenseNet-100-12-BC" in md and "†" in md.split("\n\n", 2)[-1]
    assert r"$^\dagger$" in tex and HASH in md and HASH in tex
    assert " & 3 & " in tex and r"\textbf" not in tex  # epoch 3 is not in the last phase


def test_display_names():
    assert arch_label("cnn-48x2") == "CNN-48×2"
    assert arch_label("resnet-20") == "ResNet-20"
    assert arch_label("densenet-40-12") == "DenseNet-40-12"
    assert arch_label("densenet-bc-100-12") == "DenseNet-100-12-BC"
    assert arch_label("mlp-32x2") == "MLP-32×2"
    assert dataset_label("cifar10") == "C10+" and dataset_label("cifar100") == "C100+"
    assert arch_family("densenet-bc-100-12") == "densenet"


def test_pair_details(tmp_path):
    computed = {(0, 1): 0.35, (2, 1): 0.45, (0, 2): 0.6}
    mst = [(0, 1, 0.35), (1, 2, 0.45)]
    dense = {(0, 1): {"train_loss": 0.36, "train_error": 0.05, "test_loss": 0.8, "test_error": 0.1}}
    bounds = ([0, 1, 2], np.array([[0.1, 0.35, 0.45], [0.35, 0.2, 0.45], [0.45, 0.45, 0.3]]))
    rows = P.pair_details("digits", "mlp-32", computed, mst, minimum_loss={0: 0.1, 1: 0.2, 2: 0.3},
                          bounds=bounds, dense=dense, config_hash=HASH)  # fmt: skip
    assert [(r["i"], r["j"]) for r in rows] == [(0, 1), (0, 2), (1, 2)]
    assert [r["on_mst"] for r in rows] == [True, False, True]
    assert rows[1]["ultrametric_bound"] == pytest.approx(0.45)  # from the bounds matrix
    assert rows[0]["dense_train_loss"] == 0.36 and rows[2]["dense_train_loss"] is None
    P.write_pair_details(rows, tmp_path / "p.csv")
    back = P.read_pair_details(tmp_path / "p.csv")
    assert back == rows


# --------------------------------------------------------------------------- figures


def _check_images(paths):
    png, pdf = paths
    assert png.suffix == ".png" and pdf.suffix == ".pdf"
    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[0] > 150 and img.shape[1] > 150
    assert img.std() > 0  # not blank
    assert pdf.read_bytes()[:4] == b"%PDF"


def test_plane_basis_and_projection():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 50))
    basis = path_figures.plane_basis(a, b, c)
    assert np.allclose(basis @ basis.T, np.eye(2), atol=1e-12)
    uv = path_figures.project_to_plane(np.stack([a, b, c]), a, basis)
    for point, (u, v) in zip([a, b, c], uv, strict=True):
        assert np.allclose(path_figures.plane_point(a, basis, u, v), point, atol=1e-10)
    with pytest.raises(ValueError, match="collinear"):
        path_figures.plane_basis(a, b, 2 * b - a)


def test_linear_deviation_zero_for_straight_path():
    p0, p1 = np.array([1.0, -2.0, 0.5]), np.array([-1.0, 3.0, 0.5])
    s = np.array([0.0, 0.1, 0.5, 0.75, 1.0])
    pivots = (1 - s)[:, None] * p0 + s[:, None] * p1
    assert np.allclose(path_figures.linear_deviation(pivots, s), 0.0)
    assert np.allclose(path_figures.arc_fractions(pivots), s)
    # a bump towards the origin is negative whatever the sign of the coordinate
    bent = pivots.copy()
    bent[2] *= 0.5
    dev = path_figures.linear_deviation(bent, s)
    assert dev[2, 0] == 0.0  # line value 0 there
    assert dev[2, 1] < 0 and dev[2, 2] < 0


def test_figures_written(tmp_path, monkeypatch):
    monkeypatch.setattr(style, "DPI", 60)  # speed; the layout is what is tested
    rng = np.random.default_rng(1)

    def out(name):
        return tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"

    # Figure 4
    records = []
    for c in range(1, 7):
        n = 3 + c // 2
        t = np.linspace(0, n + 1, 10 * (n + 1) + 1)
        records.append({"cycle": c, "lr": 0.1 if c <= 4 else 0.01, "t": t,
                        "loss": 0.2 + np.sin(np.pi * t / (n + 1)) / c,
                        "pivot_loss": 0.2 + np.sin(np.pi * np.arange(n + 2) / (n + 1)) / c,
                        "inserted": [1.5]})  # fmt: skip
    assert path_figures.default_cycles(records) == [1, 4, 5, 6]
    _check_images(path_figures.plot_path_cycles(records, [1, 4, 99, -1], *out("fig4"), "path",
                                                log_y=True, config_hash=HASH))  # fmt: skip
    # Figure 5
    rows = [_row().to_json(), dict(_row().to_json(), architecture="cnn-12"),
            dict(_row().to_json(), dataset="cifar100", architecture="densenet-40-12")]  # fmt: skip
    _check_images(summary_figures.plot_min_vs_saddle(rows, *out("fig5"), config_hash=HASH))
    # Figure 6
    hist = [m["history"] for m in _minima()]
    _check_images(summary_figures.plot_learning_curves(hist, 0.4, *out("fig6"), "curves"))
    # Figure 7
    s = np.linspace(0, 1, 7)
    pivots = (1 - s)[:, None] * rng.normal(size=40) + s[:, None] * rng.normal(size=40)
    pivots[1:-1] += 0.3 * rng.normal(size=(5, 40))
    dense_t = np.linspace(0, 6, 61)
    _check_images(path_figures.plot_parallel_coordinates(
        pivots, None, dense_t, np.sin(dense_t / 2) + 1, *out("fig7")))  # fmt: skip
    # Figure 1 slice
    basis = path_figures.plane_basis(pivots[0], pivots[-1], pivots.mean(axis=0))
    path_uv = path_figures.project_to_plane(pivots, pivots[0], basis)
    gu, gv = path_figures.plane_grid(path_uv, n=15)
    loss = np.array([[0.1 + u * u + v * v for u in gu] for v in gv])
    _check_images(path_figures.plot_plane_slice(
        gu, gv, loss, path_uv, path_uv[[0, -1]], *out("fig1"), "slice",
        path_profile=(s, 1 + s * (1 - s)), line_profile=(s, 1 + 4 * s * (1 - s))))  # fmt: skip
    # MST, disconnectivity, overlap
    nodes = [0, 1, 2, 3]
    node_loss = {0: 0.1, 1: 0.2, 2: 0.15, 3: 0.3}
    edges = [(0, 2, 0.2), (0, 1, 0.25), (1, 3, 0.4)]
    _check_images(landscape_figures.plot_mst(nodes, node_loss, edges, *out("mst"), "MST"))
    merges = [(0, 2, 0.2, 2), (1, 4, 0.25, 3), (3, 5, 0.4, 4)]
    _check_images(
        landscape_figures.plot_disconnectivity(nodes, node_loss, merges, *out("dis"), "dis")
    )
    merges_inf = [(0, 2, 0.2, 2), (1, 4, 0.25, 3), (3, 5, math.inf, 4)]
    _check_images(
        landscape_figures.plot_disconnectivity(nodes, node_loss, merges_inf, *out("dis2"), "d")
    )
    members = [([0], [2], 0.2), ([1], [0, 2], 0.25), ([3], [0, 1, 2], 0.4)]
    assert landscape_figures._merge_tree(nodes, members) == landscape_figures._merge_tree(
        nodes, merges
    )
    matrix = np.array([[1.0, 0.2, 0.9], [0.2, 1.0, 0.1], [0.9, 0.1, 1.0]])
    _check_images(landscape_figures.plot_overlap_heatmap(
        [0, 1, 2], matrix, *out("overlap"), "overlap", threshold=0.7))  # fmt: skip


def test_path_cycles_none_recorded(tmp_path):
    rec = [{"cycle": 1, "t": np.arange(3.0), "loss": np.ones(3), "pivot_loss": np.ones(3)}]
    with pytest.raises(ConfigError, match="none of the cycles"):
        path_figures.plot_path_cycles(rec, [5], tmp_path / "x.png", tmp_path / "x.pdf", "x")


def test_the_trends_figure_finds_width_and_depth_series():
    """Rows of one family at several widths (and, at one width, several depths) become the
    panels of the trends figure; a single width or a user's network makes none."""
    from nobarriers.report.summary_figures import _series

    def row(arch, ds="fashion-mnist"):
        return {"dataset": ds, "architecture": arch, "train_min": 0.1, "train_sadd": 0.12,
                "barrier_mean": 0.01, "line_barrier_mean": 0.5}  # fmt: skip

    rows = [row("mlp-4"), row("mlp-16"), row("mlp-64"), row("cnn-16", "fashion-5k"),
            row("cnn-16x2", "fashion-5k"), row("cnn-4", "fashion-5k"), row("tiny_net")]  # fmt: skip
    series = {(title, axis): [x for x, _ in points] for title, axis, points in _series(rows)}
    assert series[("F-MNIST MLP at depth 1", "width")] == [4, 16, 64]
    assert series[("fashion-5k CNN at depth 1", "width")] == [4, 16]
    assert series[("fashion-5k CNN at width 16", "depth")] == [1, 2]
    assert len(series) == 3  # no series from the user's network or single points
