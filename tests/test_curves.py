"""Parametric curves between minima (Garipov et al. 2018): the two parametrisations, training of
the bend on a surface with a hand-computed optimum, on a small network with BatchNorm, resuming,
and the resume state's refusals."""

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nobarriers.core.errors import ConfigError, FileFormatError
from nobarriers.engine.curves import (
    CURVE_KINDS,
    control_points,
    curve_coefficients,
    curve_point,
    curve_points,
    initial_bend,
    train_curve,
)
from nobarriers.engine.energy import FunctionEnergy
from nobarriers.engine.evaluate import evaluate_line, evaluate_path
from nobarriers.engine.optim import SGD
from nobarriers.formats import torchfile
from nobarriers.nn.points import point_of
from nobarriers.settings.recipes import lr_at_epoch

SGD_SETTINGS = {
    "lr": 0.05,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 0.0,
    "lr_milestones": [0.5, 0.75],
    "lr_gamma": 0.1,
}


# ------------------------------------------------------------------------- (a) parametrisations


@pytest.mark.parametrize("kind", CURVE_KINDS)
def test_endpoints_are_hit_exactly(kind):
    g = torch.Generator().manual_seed(0)
    w1, theta, w2 = (torch.randn(7, generator=g) for _ in range(3))
    assert torch.equal(curve_point(kind, w1, theta, w2, 0.0), w1)
    assert torch.equal(curve_point(kind, w1, theta, w2, 1.0), w2)
    pts = curve_points(kind, w1, theta, w2, [0.0, 0.3, 1.0])
    assert pts.shape == (3, 7) and torch.equal(pts[0], w1) and torch.equal(pts[2], w2)
    assert torch.equal(pts[1], curve_point(kind, w1, theta, w2, 0.3))
    assert torch.equal(control_points(w1, theta, w2), torch.stack([w1, theta, w2]))


@pytest.mark.parametrize("t", [0.0, 0.1, 0.25, 0.5, 0.6, 0.9, 1.0])
def test_coefficients_of_the_bend(t):
    a, b, c = curve_coefficients("bezier", t)
    assert (a, b, c) == pytest.approx(((1 - t) ** 2, 2 * t * (1 - t), t**2))
    a, b, c = curve_coefficients("polychain", t)
    expected = (1 - 2 * t, 2 * t, 0.0) if t <= 0.5 else (0.0, 2 * (1 - t), 2 * t - 1)
    assert (a, b, c) == pytest.approx(expected)
    for kind in CURVE_KINDS:  # an affine combination: the weights sum to 1
        assert sum(curve_coefficients(kind, t)) == pytest.approx(1.0)


def test_polychain_is_continuous_and_passes_through_the_bend():
    w1, theta, w2 = torch.tensor([0.0, 0.0]), torch.tensor([3.0, 5.0]), torch.tensor([1.0, -2.0])
    assert torch.equal(curve_point("polychain", w1, theta, w2, 0.5), theta)
    left = curve_point("polychain", w1, theta, w2, 0.5 - 1e-7)
    right = curve_point("polychain", w1, theta, w2, 0.5 + 1e-7)
    assert torch.allclose(left, theta, atol=1e-5) and torch.allclose(right, theta, atol=1e-5)
    # each half is a straight segment: w1 -> theta, theta -> w2
    assert torch.allclose(curve_point("polychain", w1, theta, w2, 0.25), (w1 + theta) / 2)
    assert torch.allclose(curve_point("polychain", w1, theta, w2, 0.75), (theta + w2) / 2)
    # the Bezier does not pass through its bend: at t = 0.5 it is (w1 + 2 theta + w2) / 4
    mid = curve_point("bezier", w1, theta, w2, 0.5)
    assert torch.allclose(mid, (w1 + 2 * theta + w2) / 4)


def test_bad_kind_and_position_refused():
    w = torch.zeros(2)
    with pytest.raises(ConfigError, match="unknown curve kind 'spline'"):
        curve_point("spline", w, w, w, 0.5)
    for t in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="outside"):
            curve_coefficients("bezier", t)


# ------------------------------------------------------------------- (b) frozen bend = the line


@pytest.mark.parametrize("kind", CURVE_KINDS)
def test_bend_frozen_at_midpoint_is_the_straight_line(kind):
    w1, w2 = torch.tensor([-1.0, 0.5, 2.0]), torch.tensor([1.0, 1.5, -2.0])
    ts = np.linspace(0, 1, 11)
    line = torch.stack([(1 - t) * w1 + t * w2 for t in ts])

    def energy(x):
        return ((x - 3.0) ** 2).sum()

    frozen = {**SGD_SETTINGS, "lr": 0.0, "weight_decay": 0.1, "epochs": 3, "steps_per_epoch": 5}
    zero_epochs = {**SGD_SETTINGS, "epochs": 0, "steps_per_epoch": 5}
    for settings in (frozen, zero_epochs):
        result = train_curve(kind, energy, w1, w2, settings, seed=0)
        assert torch.equal(result.theta, initial_bend(w1, w2))
        assert torch.allclose(result.points(ts), line, atol=1e-6)
    # a nonzero lr does move the bend (the frozen result is not vacuous)
    moved = train_curve(kind, energy, w1, w2, {**frozen, "lr": 0.1}, seed=0)
    assert not torch.allclose(moved.theta, initial_bend(w1, w2))
    assert moved.n_gradient_evaluations == moved.n_sample_gradients == 15


# ----------------------------------------------------- (c) a surface with a hand-computed optimum

# E(x, y) = (x - d)^2 + (y - c)^2, endpoints (-1, 0) and (1, 0), bend coefficient b(t):
# x(t) = (2t - 1) + b(t) theta_x (for both curves), y(t) = b(t) theta_y. The expected loss is a
# quadratic in theta; setting its gradient 2 E[b^2] theta - 2 E[b (target - line)] + wd theta to 0,
# with E[b (2t - 1)] = 0 (b is symmetric about t = 1/2, 2t - 1 antisymmetric):
#   theta = 2 E[b] (d, c) / (2 E[b^2] + wd).
# Bezier b = 2t(1-t): E[b] = 1/3, E[b^2] = 2/15, so wd = 0 gives theta = 2.5 (d, c).
# Chain b = 2t on [0, 1/2], 2(1-t) after: E[b] = 1/2, E[b^2] = 1/3, so theta = 1.5 (d, c).
MOMENTS = {"bezier": (1 / 3, 2 / 15), "polychain": (1 / 2, 1 / 3)}
C, D = 1.0, -0.4


def surface(p):
    return (p[0] - D) ** 2 + (p[1] - C) ** 2


@pytest.mark.parametrize("kind", CURVE_KINDS)
@pytest.mark.parametrize("wd", [0.0, 0.2])
def test_bend_converges_to_the_closed_form_optimum(kind, wd):
    mean_b, mean_b2 = MOMENTS[kind]
    optimum = torch.tensor([D, C]) * 2 * mean_b / (2 * mean_b2 + wd)
    # one t per step makes the gradient noisy: the lr halves every epoch, like a 1/k schedule
    halving = {"lr": 0.1, "lr_gamma": 0.5, "lr_milestones": [k / 10 for k in range(1, 10)]}
    settings = {**SGD_SETTINGS, **halving, "weight_decay": wd, "epochs": 10, "steps_per_epoch": 200}
    w1, w2 = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])
    result = train_curve(kind, FunctionEnergy(surface, 2), w1, w2, settings, seed=3)
    # 32 seeds: max error 0.06, mean 0.02; the wrong answers below are >= 0.5 away
    assert torch.allclose(result.theta, optimum, atol=0.08), (result.theta, optimum)
    # the midpoint, the other curve's optimum and the optimum without decay are all far off
    assert (result.theta - optimum).norm() < 0.2 * (initial_bend(w1, w2) - optimum).norm()
    if wd:
        assert result.theta[1] < 0.9 * C * mean_b / mean_b2
    assert [h["lr"] for h in result.history] == [lr_at_epoch(settings, e) for e in range(10)]
    assert result.n_gradient_evaluations == 10 * 200


# ------------------------------------------------------------------- (d) a network with BatchNorm


def tiny_net():
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(16, 24),
        nn.BatchNorm1d(24),
        nn.ReLU(),
        nn.Dropout(0.05),
        nn.Linear(24, 3),
    )


@pytest.fixture(scope="module")
def minima():
    """Two minima (different seeds) of a tiny MLP on 256 4x4 'images' labelled by a random
    teacher; the straight line between them crosses a barrier."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(256, 1, 4, 4, generator=g)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in teacher.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        y = teacher(x).argmax(1)
    points = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = tiny_net()
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(250):
            idx = torch.randint(0, 256, (64,))
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        points.append(point_of(model))
    return model, x, y, points[0], points[1]


NET_SETTINGS = {**SGD_SETTINGS, "weight_decay": 1e-4, "batch_size": 32, "augment": False}


@pytest.mark.parametrize("kind", CURVE_KINDS)
def test_trained_curve_lowers_the_barrier_of_the_line(minima, kind):
    model, x, y, w1, w2 = minima
    data = (x, y, None, None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = {**NET_SETTINGS, "epochs": 12}
    result = train_curve(kind, model, w1, w2, settings, seed=0, data=(x, y))
    for k, v in model.state_dict().items():  # a private copy trained
        assert torch.equal(v, before[k]), k
    line = evaluate_line(model, w1, w2, 21, data, batch_size=256)
    pivots = result.points(np.linspace(0, 1, 21))
    curve = evaluate_path(model, pivots, data, n_between=0, batch_size=256)
    assert len(curve["train_loss"]) == 21
    # same endpoints, so the ends of both evaluations agree
    assert curve["train_loss"][[0, -1]] == pytest.approx(line["train_loss"][[0, -1]], abs=1e-5)
    # measured: endpoints 0.03 / 0.02, line 0.43, either curve 0.16
    assert line["train_loss"].max() > 0.3
    assert curve["train_loss"].max() < 0.6 * line["train_loss"].max()
    steps_per_epoch = -(-256 // 32)
    assert result.n_gradient_evaluations == 12 * steps_per_epoch
    assert result.n_sample_gradients == 12 * 256
    assert result.wall_s > 0 and len(result.history) == 12
    assert result.control_points().shape == (3, w1.numel())


class Killed(Exception):
    pass


def test_resume_after_interruption_is_bitwise_identical(minima, tmp_path):
    model, x, y, w1, w2 = minima
    # augmentation, Nesterov momentum, dropout and weight decay: every piece of state matters
    settings = {**NET_SETTINGS, "augment": True, "nesterov": True, "epochs": 4}
    settings["lr_milestones"] = [0.5]  # the lr drops after epoch 2, where the kill happens
    kwargs = {"data": (x, y), "augment": "crop_flip"}
    full = train_curve("bezier", model, w1, w2, settings, seed=5, **kwargs)

    state = tmp_path / "curve.state.pt"
    rerun = functools.partial(train_curve, "bezier", model, w1, w2, settings, 5, **kwargs)

    def kill_after_2(epoch, entry):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        rerun(state_path=state, on_epoch_end=kill_after_2)
    assert state.exists()
    torch.manual_seed(1234)  # the global RNG moved on (dropout draws from it): restored anyway
    seen = []
    resumed = rerun(state_path=state, on_epoch_end=lambda e, _: seen.append(e))
    assert seen == [3, 4]
    assert torch.equal(resumed.theta, full.theta)
    strip = [{k: v for k, v in h.items() if k != "wall_s"} for h in full.history]
    assert [{k: v for k, v in h.items() if k != "wall_s"} for h in resumed.history] == strip
    assert resumed.n_gradient_evaluations == full.n_gradient_evaluations
    assert resumed.n_sample_gradients == full.n_sample_gradients
    # a rerun of the finished training returns its result without training
    again = rerun(state_path=state, on_epoch_end=lambda e, _: pytest.fail("trained again"))
    assert torch.equal(again.theta, full.theta) and again.wall_s == resumed.wall_s
    # a different seed is a different run: the curve differs (the seed is not ignored)
    other = train_curve("bezier", model, w1, w2, {**settings, "epochs": 1}, 6, **kwargs)
    one = train_curve("bezier", model, w1, w2, {**settings, "epochs": 1}, 5, **kwargs)
    assert not torch.equal(other.theta, one.theta)


# --------------------------------------------------------------------- (e) resume state refused


def test_foreign_or_damaged_state_is_refused(tmp_path):
    w1, w2 = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])
    settings = {**SGD_SETTINGS, "epochs": 2, "steps_per_epoch": 3}
    state = tmp_path / "bend.state.pt"
    train_curve("bezier", surface, w1, w2, settings, 0, state_path=state)
    good = state.read_bytes()

    def run(**change):
        args = {"kind": "bezier", "w1": w1, "w2": w2, "settings": settings, "seed": 0}
        args.update(change)
        return train_curve(
            args["kind"],
            surface,
            args["w1"],
            args["w2"],
            args["settings"],
            args["seed"],
            state_path=state,
        )

    foreign = {
        "kind": {"kind": "polychain"},
        "seed": {"seed": 1},
        "settings": {"settings": {**settings, "lr": 0.1}},
        "other endpoints": {"w2": torch.tensor([1.0, 0.5])},
        "dim": {"w1": torch.zeros(3), "w2": torch.ones(3)},
    }
    for what, change in foreign.items():
        with pytest.raises(ConfigError, match=what) as err:
            run(**change)
        assert str(state) in str(err.value) and "delete" in str(err.value)

    state.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(FileFormatError, match="cannot be read") as err:
        run()
    assert str(state) in str(err.value) and "delete" in str(err.value)

    state.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(FileFormatError, match=str(state)):
        run()

    torchfile.save(state, {"format": "train-checkpoint/1"})  # another kind of resume file
    with pytest.raises(FileFormatError, match="not a nobarriers-curve-state/1 file"):
        run()

    state.write_bytes(good)
    payload = torch.load(state, weights_only=True)
    del payload["optimizer"]  # incomplete
    torchfile.save(state, payload)
    with pytest.raises(FileFormatError, match="lacks optimizer"):
        run()

    torch.save({"format": "nobarriers-curve-state/1", "theta": FunctionEnergy}, state)
    with pytest.raises(FileFormatError, match="other than tensors"):  # never unpickled
        run()


def test_settings_are_checked():
    w = torch.zeros(2)
    with pytest.raises(ConfigError, match="lack steps_per_epoch"):
        train_curve("bezier", surface, w, w, {**SGD_SETTINGS, "epochs": 1}, 0)
    with pytest.raises(ConfigError, match="finite"):
        bad = {**SGD_SETTINGS, "lr": float("nan"), "epochs": 1, "steps_per_epoch": 1}
        train_curve("bezier", surface, w, w, bad, 0)
    with pytest.raises(ConfigError, match="needs data"):
        train_curve("bezier", tiny_net(), w, w, {**NET_SETTINGS, "epochs": 1}, 0)
    with pytest.raises(ConfigError, match="trainable parameters"):
        x, y = torch.randn(8, 1, 4, 4), torch.zeros(8, dtype=torch.long)
        train_curve("bezier", tiny_net(), w, w, {**NET_SETTINGS, "epochs": 1}, 0, data=(x, y))


def test_batchnorm_trains_on_batch_statistics(minima):
    """Garipov et al. train the curve with BatchNorm in train mode: the model's own running
    statistics must not matter (in eval mode these absurd ones would wreck every step)."""
    model, x, y, w1, w2 = minima
    settings = {**NET_SETTINGS, "epochs": 1}
    plain = train_curve("bezier", model, w1, w2, settings, 0, data=(x, y))
    odd = tiny_net()
    odd.load_state_dict(model.state_dict())
    odd[2].running_mean.fill_(1e3)
    odd[2].running_var.fill_(1e-6)
    assert torch.equal(
        train_curve("bezier", odd, w1, w2, settings, 0, data=(x, y)).theta, plain.theta
    )
