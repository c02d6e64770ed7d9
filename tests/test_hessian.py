"""Curvature at a point (engine.hessian, ``inspect --hessian``): Lanczos eigenvalues against
analytic spectra, the Mueller-Brown saddle, a network's dense Hessian; the eps rule, the gap, the
cosine to the tangent; non-convergence reported with residuals, never as eigenvalues."""

from __future__ import annotations

import copy
import json
import shutil

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_autoneb import MB_A, MB_X, MB_Y, MB_a, MB_b, MB_c, muller_brown, newton
from torch import nn

import nobarriers.engine.hessian as hessian
from nobarriers.cli import main
from nobarriers.core.errors import ConfigError
from nobarriers.datasets import load_dataset
from nobarriers.engine.autoneb import CycleRecord
from nobarriers.engine.hessian import function_spectrum, highest_point, network_spectrum
from nobarriers.formats.pathfile import write_evaluation, write_path
from nobarriers.models import build_model
from nobarriers.nn.batches import seeded_subset
from nobarriers.nn.points import load_point, point_of, recompute_bn_statistics
from nobarriers.settings.config import WorkflowConfig, stage_settings

D = 30
LAMBDA_MAX = 12.0
#: the three lowest eigenvalues of each quadratic; the rest lie in [1, 10], the largest is 12.
#: -0.006 = -0.5 eps lambda_max: below zero, but within the eps band, so not negative
LOWEST = {0: [-0.006, 0.5, 0.8], 1: [-2.0, -0.006, 0.5], 2: [-3.0, -1.0, 0.5]}


def quadratic(lowest, rotate: bool, seed: int = 0):
    """``f(x) = x^T A x / 2`` with eigenvalues ``lowest`` + D-4 in [1, 10] + 12, and the
    eigenvectors (columns), the identity unless ``rotate``."""
    rng = np.random.default_rng(seed)
    spectrum = np.concatenate([lowest, rng.uniform(1.0, 10.0, D - 4), [LAMBDA_MAX]])
    q = np.linalg.qr(rng.normal(size=(D, D)))[0] if rotate else np.eye(D)
    a = torch.from_numpy(q @ np.diag(spectrum) @ q.T)
    return (lambda x: 0.5 * x @ a @ x), torch.from_numpy(q)


@pytest.mark.parametrize("rotate", [False, True], ids=["diagonal", "rotated"])
@pytest.mark.parametrize("index", [0, 1, 2])
def test_quadratic_saddles_have_their_index_eigenvalues_and_gap(index, rotate):
    """The three lowest eigenvalues and lambda_max to 1e-7; the index counts only eigenvalues
    below -eps lambda_max (the -0.006 of index 0 and 1 is not counted); the gap is the distance
    from the last negative eigenvalue to the next (from zero without one)."""
    fn, _ = quadratic(LOWEST[index], rotate)
    result = function_spectrum(fn, torch.zeros(D))
    assert result.converged, result.message
    assert result.lowest == pytest.approx(LOWEST[index], abs=1e-7)
    assert result.lambda_max == pytest.approx(LAMBDA_MAX, abs=1e-7)
    assert result.n_negative == index
    expected_gap = {0: -0.006, 1: -0.006 + 2.0, 2: 0.5 + 1.0}[index]
    assert result.gap == pytest.approx(expected_gap, abs=1e-7)
    assert result.grad_norm == 0.0 and result.cosine_to_tangent is None
    assert len(result.residuals) == 4 and (result.residuals < 1e-4).all()
    assert result.n_products >= 4 and result.seconds > 0


def test_index_above_k_is_a_lower_bound_without_a_gap():
    fn, _ = quadratic([-3.0, -2.0, -1.0], rotate=True)
    result = function_spectrum(fn, torch.zeros(D), k=2)
    assert result.converged and result.lowest == pytest.approx([-3.0, -2.0], abs=1e-7)
    assert result.n_negative == 2 and result.gap is None and "raise k" in result.message


def test_weight_decay_adds_to_every_eigenvalue_and_to_the_gradient():
    """The NEB's L2 term wd/2 |x|^2: +wd on the Hessian's diagonal, +wd x in the gradient."""
    fn, _ = quadratic(LOWEST[1], rotate=True)
    x = torch.linspace(-1.0, 1.0, D, dtype=torch.float64)
    plain = function_spectrum(fn, x)
    decayed = function_spectrum(fn, x, weight_decay=0.5)
    assert decayed.lowest == pytest.approx(np.array(LOWEST[1]) + 0.5, abs=1e-7)
    assert decayed.lambda_max == pytest.approx(LAMBDA_MAX + 0.5, abs=1e-7)
    grad = torch.func.grad(fn)(x)
    assert plain.grad_norm == pytest.approx(float(grad.norm()), rel=1e-12)
    assert decayed.grad_norm == pytest.approx(float((grad + 0.5 * x).norm()), rel=1e-12)


def test_cosine_to_the_tangent_is_one_along_the_negative_direction():
    """An index-1 saddle whose negative direction is the given tangent: cosine 1; a tangent
    along another eigenvector: cosine 0 (the lowest eigenvector, not another, is compared)."""
    fn, q = quadratic(LOWEST[1], rotate=True)
    along = function_spectrum(fn, torch.zeros(D), tangent=-3.0 * q[:, 0])
    assert along.cosine_to_tangent == pytest.approx(1.0, abs=1e-8)
    across = function_spectrum(fn, torch.zeros(D), tangent=q[:, 1])
    assert across.cosine_to_tangent == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ConfigError, match="non-zero vector of 30"):
        function_spectrum(fn, torch.zeros(D), tangent=torch.zeros(D))


def mueller_brown_hessian(p: np.ndarray) -> np.ndarray:
    """The closed form: f = sum A e^q with q = a dx^2 + b dx dy + c dy^2, so
    H = sum A e^q (grad q grad q^T + [[2a, b], [b, 2c]])."""
    h = np.zeros((2, 2))
    for big_a, a, b, c, x0, y0 in zip(MB_A, MB_a, MB_b, MB_c, MB_X, MB_Y, strict=True):
        big_a, a, b, c = float(big_a), float(a), float(b), float(c)
        dx, dy = p[0] - float(x0), p[1] - float(y0)
        e = big_a * np.exp(a * dx * dx + b * dx * dy + c * dy * dy)
        g = np.array([2 * a * dx + b * dy, b * dx + 2 * c * dy])
        h += e * (np.outer(g, g) + np.array([[2 * a, b], [b, 2 * c]]))
    return h


def test_mueller_brown_saddle_has_index_1_and_its_analytic_eigenvalues():
    saddle = newton(muller_brown, torch.tensor([-0.822, 0.624]))
    exact = np.linalg.eigvalsh(mueller_brown_hessian(saddle.numpy()))
    assert exact[0] < 0 < exact[1]
    result = function_spectrum(muller_brown, saddle)
    assert result.converged, result.message
    assert result.lowest == pytest.approx(exact[:1], rel=1e-8)  # k is cut to D - 1 = 1
    assert result.lambda_max == pytest.approx(exact[1], rel=1e-8)
    assert result.n_negative == 1 and result.gap == pytest.approx(exact[1] - exact[0], rel=1e-8)
    assert result.grad_norm < 1e-8
    minimum = function_spectrum(muller_brown, newton(muller_brown, torch.tensor([-0.558, 1.442])))
    assert minimum.n_negative == 0 and minimum.lowest[0] > 0


def tiny_network():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3))


def test_network_spectrum_matches_the_dense_hessian():
    """A BatchNorm MLP (69 parameters) at a point of index 1: Lanczos on double-backward
    products in batches of 8 agrees with torch's dense Hessian of the same energy -- the mean
    cross-entropy on the seeded subset, BN in eval mode on that subset's statistics, + wd/2
    |w|^2 -- and the model given is left as it was."""
    model = tiny_network()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(40, 5, generator=generator)
    y = torch.randint(0, 3, (40,), generator=generator)
    point = point_of(model) + 0.5 * torch.randn(69, generator=generator)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wd = 0.5  # large, so that the point has a few negative eigenvalues, not two dozen
    result = network_spectrum(
        model, point, x, y, subset=32, subset_seed=3, batch_size=8, weight_decay=wd
    )
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())

    reference = copy.deepcopy(model).double()
    load_point(reference, point.double())
    idx = seeded_subset(40, 32, 3)
    xs, ys = x[idx].double(), y[idx]
    recompute_bn_statistics(reference, xs, batch_size=32)
    reference.eval()
    names = [n for n, _ in reference.named_parameters()]
    shapes = [p.shape for _, p in reference.named_parameters()]

    def energy(w):
        parts = w.split([s.numel() for s in shapes])
        params = {n: p.view(s) for n, p, s in zip(names, parts, shapes, strict=True)}
        logits = torch.func.functional_call(reference, params, (xs,))
        return F.cross_entropy(logits, ys) + 0.5 * wd * w.dot(w)

    w = point.double()
    exact = torch.linalg.eigvalsh(torch.autograd.functional.hessian(energy, w)).numpy()
    assert result.converged, result.message
    assert result.lowest == pytest.approx(exact[:3], abs=1e-7)
    assert result.lambda_max == pytest.approx(exact[-1], rel=1e-8)
    assert result.n_negative == int((exact < -1e-3 * exact[-1]).sum()) == 1
    assert result.gap == pytest.approx(exact[1] - exact[0], abs=1e-7)
    assert result.grad_norm == pytest.approx(float(torch.func.grad(energy)(w).norm()), rel=1e-8)


def test_non_convergence_gives_residuals_not_eigenvalues():
    """ARPACK stopped after one restart: no eigenvalue, the residuals of the best Ritz pairs
    it had reached (true residuals: not small), and which solve failed."""
    rng = np.random.default_rng(1)
    spectrum = np.concatenate([[-1.0, -0.99, -0.98], rng.uniform(-0.97, 1.0, 196), [10.0]])
    a = torch.from_numpy(np.diag(spectrum))
    result = function_spectrum(lambda x: 0.5 * x @ a @ x, torch.zeros(200), maxiter=1)
    assert not result.converged and "lowest eigenvalues did not converge" in result.message
    assert result.lowest.size == 0 and result.lambda_max is None and result.n_negative is None
    assert result.gap is None and len(result.residuals) == 3 and (result.residuals > 1e-3).all()
    tiny = function_spectrum(lambda x: 0.5 * x @ a @ x, torch.zeros(200), maxiter=1, ncv=3)
    assert not tiny.converged and "lambda_max did not converge" in tiny.message
    assert tiny.lambda_max is None and len(tiny.residuals) == 1 and tiny.residuals[0] > 1e-3


def test_a_returned_pair_with_a_large_residual_is_not_reported(monkeypatch):
    """ARPACK's own test relies on its recurrence; the residuals are recomputed with fresh
    products, and a pair off by 1 % (as a noisy product could give) is refused."""
    real = hessian.eigsh

    def off(*args, **kwargs):
        values, vectors = real(*args, **kwargs)
        return values * 1.01, vectors

    monkeypatch.setattr(hessian, "eigsh", off)
    fn, _ = quadratic(LOWEST[1], rotate=True)
    result = function_spectrum(fn, torch.zeros(D))
    assert not result.converged and "residuals up to" in result.message
    assert result.lowest.size == 0 and result.lambda_max is None
    assert result.residuals.max() > 1e-3


def test_highest_point_is_the_climber_or_the_dense_maximum():
    pivots = torch.arange(12, dtype=torch.float64).view(4, 3) ** 2
    climber = highest_point(pivots, [0.0], [0.0], climbing=1)  # interior index 1 = row 2
    assert torch.equal(climber.point, pivots[2]) and climber.t == 2.0
    assert torch.equal(climber.tangent, pivots[3] - pivots[1])
    t = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    inside = highest_point(pivots, t, [0, 1, 2, 5, 3, 2, 0])
    assert inside.t == 1.5 and torch.allclose(inside.point, (pivots[1] + pivots[2]) / 2)
    assert torch.equal(inside.tangent, pivots[2] - pivots[1]) and inside.where == "dense maximum"
    at_pivot = highest_point(pivots, t, [0, 1, 5, 2, 1, 0, 0])
    assert torch.equal(at_pivot.point, pivots[1])
    assert torch.equal(at_pivot.tangent, pivots[2] - pivots[0])
    at_end = highest_point(pivots, t, [0, 1, 2, 3, 4, 5, 6])
    assert torch.equal(at_end.tangent, pivots[3] - pivots[2])
    assert at_end.where == "path's end (no barrier)"
    with pytest.raises(ConfigError, match="climbing pivot 2 is not one of the 2 interior"):
        highest_point(pivots, t, t, climbing=2)


# ---- nobarriers inspect --hessian ----------------------------------------------------------


def write_digits_path(out, climbing, **config_changes):
    """A path file of digits/mlp-4 (random pivots around a bump) with the workflow's config."""
    row = WorkflowConfig({"rows": [{"dataset": "digits", "arch": "mlp-4"}]}).row("digits", "mlp-4")
    config = {**stage_settings(row, "paths"), **config_changes}
    config = {k: v for k, v in config.items() if v is not None}
    torch.manual_seed(0)
    a, b = (point_of(build_model("mlp-4", 10, (1, 8, 8))) for _ in range(2))
    generator = torch.Generator().manual_seed(0)
    pivots = torch.stack([a, a + 0.1 * torch.randn(310, generator=generator), b, b])
    pivots[2] = (a + b) / 2 + 0.1 * torch.randn(310, generator=generator)
    t = np.linspace(0, 3, 7)
    loss = np.array([0.1, 0.5, 0.7, 0.9, 0.6, 0.3, 0.1])  # dense maximum at t = 1.5
    cycle = CycleRecord(1, 10, 0.1, 2, t, loss, loss[::2], 0.9, [], 0.0, climbing=climbing)
    result = type("Result", (), {"pivots": pivots, "target_weights": np.ones(3) / 3})()
    result.history, result.saddle_loss = [cycle], 0.9
    write_path(out, result, saddle={"t": t, "train_loss": loss}, weight_subset=None,
               endpoints=(1, 2), config=config, seed=7, dataset="digits", arch="mlp-4",
               config_hash="0" * 12)  # fmt: skip
    return pivots, config


def test_inspect_hessian_reports_the_spectrum_at_the_climbing_pivot(tmp_path, capsys):
    """The CLI takes the climbing pivot (row 2), the chord through its neighbours, the NEB's
    weight decay and 256 digits samples: the same numbers as network_spectrum called directly;
    a path without a climber is measured at its dense maximum."""
    climbed = tmp_path / "climbed.h5"
    pivots, config = write_digits_path(climbed, climbing=1)
    argv = ["inspect", "--hessian", "--hessian-subset", "256", "--data-dir", str(tmp_path)]
    assert main([*argv, "--json", str(climbed)]) == 0
    info = json.loads(capsys.readouterr().out)["hessian"]
    data = load_dataset("digits", tmp_path)
    direct = network_spectrum(
        build_model("mlp-4", 10, (1, 8, 8)), pivots[2], data.x_train, data.y_train,
        pivots[3] - pivots[1], subset=256, batch_size=512,
        weight_decay=config["autoneb"]["weight_decay"],
    )  # fmt: skip
    assert info["at"] == "climbing pivot 1" and info["t"] == 2.0 and info["samples"] == 256
    assert info["converged"] and info["lowest"] == pytest.approx(direct.lowest, rel=1e-9)
    assert info["lambda_max"] == pytest.approx(direct.lambda_max, rel=1e-9)
    assert info["cosine_to_tangent"] == pytest.approx(direct.cosine_to_tangent, rel=1e-6)
    assert info["grad_norm"] == pytest.approx(direct.grad_norm, rel=1e-9)
    assert info["n_products"] > 0 and info["weight_decay"] == 1e-4
    plain = tmp_path / "plain.h5"
    write_digits_path(plain, climbing=None)
    assert main([*argv, str(plain)]) == 0
    text = capsys.readouterr().out
    assert "Hessian at the dense maximum (t = 1.5): 256 training samples" in text
    assert "    index " in text and "lambda_max" in text and "Hessian-vector products" in text


def test_inspect_hessian_prints_no_eigenvalue_that_did_not_converge(tmp_path, capsys, monkeypatch):
    real = hessian.eigsh
    monkeypatch.setattr(hessian, "eigsh", lambda *a, **kw: real(*a, **{**kw, "maxiter": 1}))
    path = tmp_path / "path.h5"
    write_digits_path(path, climbing=1)
    argv = ["inspect", "--hessian", "--hessian-subset", "64", "--data-dir", str(tmp_path)]
    assert main([*argv, str(path)]) == 0
    text = capsys.readouterr().out
    assert ": NOT CONVERGED" in text and "did not converge" in text
    assert "residuals |Hv - lambda v| of the best estimates: " in text
    assert "\n    lowest eigenvalues" not in text and "\n    index" not in text
    assert main([*argv, "--json", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)["hessian"]
    assert not info["converged"] and info["lambda_max"] is None and info["lowest"] == []
    assert info["residuals"] and min(info["residuals"]) > 0


def test_inspect_hessian_without_identity_or_on_other_files_is_one_line_and_status_2(
    tmp_path, capsys
):
    unknown = tmp_path / "unknown.h5"
    write_digits_path(unknown, climbing=1, arch="my-net")
    no_decay = tmp_path / "no_decay.h5"
    write_digits_path(no_decay, climbing=1, autoneb=None)
    damaged = tmp_path / "damaged.h5"
    shutil.copy(unknown, damaged)
    with h5py.File(damaged, "r+") as f:
        f["saddle/train_loss"][0] = 0.0
    evaluation = tmp_path / "evaluation.h5"
    write_evaluation(evaluation, {"t": [0.0, 1.0], "train_loss": [1.0, 2.0]}, None,
                     endpoints=(1, 2), config={}, seed=0, dataset="digits", arch="mlp-4",
                     config_hash="0" * 12)  # fmt: skip
    cases = [
        (unknown, "network 'my-net' is not built in and the file records no 'model'"),
        (no_decay, "its config has no autoneb.weight_decay"),
        (damaged, "content checksum mismatch"),
        (evaluation, "--hessian needs a path file; this one holds an evaluation"),
    ]
    for path, expected in cases:
        assert main(["inspect", "--hessian", str(path)]) == 2, path
        err = capsys.readouterr().err
        assert err.startswith("nobarriers inspect: ") and expected in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
