"""NEB geometry and steps: HJ-2000 tangents, redistribution, projection, optimiser, divergence."""

import math

import numpy as np
import pytest
import torch

from nobarriers.core.errors import ConfigError, DivergenceError
from nobarriers.engine.energy import FunctionEnergy
from nobarriers.engine.neb import NEBStep, run_neb
from nobarriers.engine.optim import make_optimizer
from nobarriers.nn import path_geometry
from nobarriers.nn.path_geometry import project, redistribute, tangents
from nobarriers.settings.autoneb_config import OPTIMIZERS, NEBSettings

# A bent chain: tau_plus = (0, 1), tau_minus = (1, 0), so the weights of the two are readable.
BENT = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])


def tangent_of(v):
    return tangents(BENT, torch.tensor(v, dtype=torch.float64))[0]


def close(a, b):
    return torch.allclose(a, torch.tensor(b, dtype=a.dtype), atol=1e-6)


def test_tangent_monotone_increasing_points_to_next_pivot():
    assert close(tangent_of([0.0, 1.0, 2.0]), [0.0, 1.0])  # tau_plus


def test_tangent_monotone_decreasing_points_to_previous_pivot():
    assert close(tangent_of([2.0, 1.0, 0.0]), [1.0, 0.0])  # tau_minus


def test_tangent_maximum_next_higher_uses_published_weights():
    # V[i+1]=1 > V[i-1]=0: tau = tau_plus*dV_max + tau_minus*dV_min, dV_max=3, dV_min=2
    s = math.sqrt(13)
    assert close(tangent_of([0.0, 3.0, 1.0]), [2 / s, 3 / s])  # the authors' swap gives (3, 2)


def test_tangent_maximum_previous_higher_uses_published_weights():
    # V[i+1]=0 < V[i-1]=1: tau = tau_plus*dV_min + tau_minus*dV_max, dV_max=3, dV_min=2
    s = math.sqrt(13)
    assert close(tangent_of([1.0, 3.0, 0.0]), [3 / s, 2 / s])


def test_tangent_minimum_uses_same_extremum_rule():
    # local minimum: V[i+1]=3 > V[i-1]=2; dV_max = 3, dV_min = 2
    s = math.sqrt(13)
    assert close(tangent_of([2.0, 0.0, 3.0]), [2 / s, 3 / s])
    assert close(tangent_of([3.0, 0.0, 2.0]), [3 / s, 2 / s])


def test_tangent_flat_energies_fall_back_to_bisector():
    s = math.sqrt(2)
    assert close(tangent_of([1.0, 1.0, 1.0]), [1 / s, 1 / s])


def test_tangents_vectorised_over_chain_are_unit():
    pivots = torch.randn(7, 5)
    v = torch.tensor([0.0, 2.0, 1.0, 3.0, 3.5, 1.0, 0.5])
    tau = tangents(pivots, v)
    assert tau.shape == (5, 5)
    assert torch.allclose(tau.norm(dim=1), torch.ones(5), atol=1e-6)
    # pivot 3 (index 2 of the interior list is pivot 3): V 1 < 3 < 3.5, increasing -> tau_plus
    expected = (pivots[4] - pivots[3]) / (pivots[4] - pivots[3]).norm()
    assert torch.allclose(tau[2], expected, atol=1e-6)


# polyline (0,0) -> (1,0) -> (1,1) -> (1,3): segment lengths 1, 1, 2, total 4
POLY = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 3.0]])


def test_redistribute_equal_weights():
    out = redistribute(POLY, [1 / 3, 1 / 3, 1 / 3])
    expected = torch.tensor([[0.0, 0.0], [1.0, 1 / 3], [1.0, 5 / 3], [1.0, 3.0]])
    assert torch.allclose(out, expected, atol=1e-6)


def test_redistribute_unequal_weights_and_unnormalised():
    out = redistribute(POLY, [0.5, 0.25, 0.25])  # arc lengths 2 and 3
    assert torch.allclose(out[1:3], torch.tensor([[1.0, 1.0], [1.0, 2.0]]), atol=1e-6)
    out = redistribute(POLY, [1.0, 2.0, 1.0])  # arc lengths 1 and 3
    assert torch.allclose(out[1:3], torch.tensor([[1.0, 0.0], [1.0, 2.0]]), atol=1e-6)


def test_redistribute_keeps_endpoints_and_puts_pivots_on_the_old_polyline():
    torch.manual_seed(0)
    pivots = torch.randn(6, 4)
    w = np.array([0.1, 0.3, 0.2, 0.25, 0.15])
    out = redistribute(pivots, w)
    assert torch.equal(out[0], pivots[0]) and torch.equal(out[-1], pivots[-1])
    for q in out[1:-1]:  # distance of q to the nearest segment of the old polyline is ~0
        a, b = pivots[:-1], pivots[1:]
        s = ((q - a) * (b - a)).sum(1) / ((b - a) ** 2).sum(1)
        foot = a + s.clamp(0, 1)[:, None] * (b - a)
        assert (q - foot).norm(dim=1).min() < 1e-5
    # the arc length along the old polyline up to each pivot follows the cumulative weights
    seg = (pivots[1:] - pivots[:-1]).norm(dim=1)
    cum = torch.cat([torch.zeros(1), seg.cumsum(0)])
    target = torch.tensor(np.cumsum(w)[:-1] / w.sum(), dtype=torch.float32) * cum[-1]
    k = torch.searchsorted(cum, target, right=True) - 1
    frac = (target - cum[k]) / seg[k]
    assert torch.allclose(
        out[1:-1], pivots[k] + frac[:, None] * (pivots[k + 1] - pivots[k]), atol=1e-5
    )


def test_redistribute_straight_line_matches_weights_exactly():
    a, b = torch.tensor([0.0, 0.0, 0.0]), torch.tensor([4.0, 0.0, 0.0])
    pivots = torch.stack([a, torch.tensor([3.5, 0, 0]), torch.tensor([3.9, 0, 0]), b])
    out = redistribute(pivots, [0.25, 0.5, 0.25])
    assert torch.allclose(out[:, 0], torch.tensor([0.0, 1.0, 3.0, 4.0]))


def test_redistribute_rejects_wrong_weight_count():
    with pytest.raises(ConfigError, match="target weights"):
        redistribute(POLY, [0.5, 0.5])


def test_project_removes_tangent_component_only():
    g = torch.tensor([[3.0, 4.0]])
    tau = torch.tensor([[1.0, 0.0]])
    assert torch.allclose(project(g, tau), torch.tensor([[0.0, 4.0]]))


def test_step_adds_weight_decay_before_projection():
    # constant energy: the only force is the projected L2 decay
    energy = FunctionEnergy(lambda x: 0.0 * x.sum(), dim=2, mode="loop")
    pivots = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    settings = NEBSettings(optimizer="SGD", optimizer_kwargs={}, weight_decay=0.5)
    neb = NEBStep(energy, pivots, [0.5, 0.5], lr=0.1, settings=settings)
    neb.step()
    # equal energies -> bisector of (1,1), (1,-1) = (1, 0); decay 0.5*(1,1) projects to (0, .5)
    assert torch.allclose(neb.pivots[1], torch.tensor([1.0, 1.0 - 0.1 * 0.5]), atol=1e-6)


def test_run_neb_bends_straight_line_into_valley():
    # curved valley y = 1 - x^2; the straight segment between (+-1, 0) crosses a barrier of 11
    def valley(p):
        return 10 * (p[1] - (1 - p[0] ** 2)) ** 2 + (p[0] ** 2 - 1) ** 2

    energy = FunctionEnergy(valley, dim=2, mode="vmap")
    line = torch.stack([torch.tensor([-1.0 + 2 * k / 6, 0.0]) for k in range(7)])
    settings = NEBSettings(optimizer_kwargs={"momentum": 0.9}, weight_decay=0.0)
    path, info = run_neb(energy, line, np.full(6, 1 / 6), steps=200, lr=0.01, settings=settings)
    assert info.max_loss < 1.1  # the true saddle at (0, 1) has energy 1
    assert torch.allclose(path[3], torch.tensor([0.0, 1.0]), atol=0.05)


def test_unknown_optimizer_lists_valid_names():
    with pytest.raises(ConfigError, match="valid names: .*SGD"):
        make_optimizer("Sgd", [torch.zeros(1, requires_grad=True)], 0.1)
    assert {"SGD", "Adam"} <= set(OPTIMIZERS)


def test_optimizer_kwargs_must_not_override_lr_or_decay():
    with pytest.raises(ConfigError, match="weight_decay"):
        make_optimizer("SGD", [torch.zeros(1, requires_grad=True)], 0.1, {"weight_decay": 1e-4})


def test_divergence_names_cycle_and_step():
    energy = FunctionEnergy(lambda p: torch.sqrt(p[1]), dim=2, mode="loop")
    line = torch.tensor([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    with pytest.raises(DivergenceError, match="cycle 7, step 2"):
        settings = NEBSettings(optimizer_kwargs={}, weight_decay=0.0)
        run_neb(energy, line, [0.5, 0.5], steps=5, lr=10.0, settings=settings, cycle=7)


def test_common_batch_switch_draws_one_or_one_per_pivot_batches():
    from torch import nn

    from nobarriers.engine.model_energy import ModelEnergy

    torch.manual_seed(0)
    x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    energy = ModelEnergy(nn.Linear(3, 2), x, y, batch_size=5, mode="vmap")
    draws = []
    original = energy.sample_batch
    energy.sample_batch = lambda g: draws.append(1) or original(g)
    pivots = torch.stack([torch.zeros(energy.dim) + k for k in range(5)])
    for common, expected in ((True, 1), (False, 5)):
        draws.clear()
        settings = NEBSettings(common_batch=common)
        neb = NEBStep(energy, pivots, np.full(4, 0.25), lr=0.1, settings=settings)
        info = neb.step(torch.Generator().manual_seed(0))
        assert len(draws) == expected and info.losses.shape == (5,)


@pytest.mark.parametrize("row_wise", [False, True])
def test_step_equals_the_composition_of_the_public_geometry(row_wise, monkeypatch):
    # the fused, buffer-reusing step against redistribute -> losses -> tangents -> project -> SGD;
    # large paths take the row-wise code path, small ones the vectorised one: both are checked
    def bumpy(p):
        return (p**2).sum() + torch.sin(3 * p).sum() + p[0] * p[1]

    energy = FunctionEnergy(bumpy, dim=5, mode="loop")
    g = torch.Generator().manual_seed(4)
    pivots = torch.randn(6, 5, generator=g, dtype=torch.float64)
    weights = np.array([1.0, 2.0, 1.0, 1.5, 0.5])
    lr, decay = 0.05, 0.3
    moved = redistribute(pivots, weights)
    losses, grads = energy.losses_and_grads(moved)
    force = project(grads[1:-1] + decay * moved[1:-1], tangents(moved, losses))
    expected = moved[1:-1] - lr * force

    monkeypatch.setattr(path_geometry, "ROW_WISE_ABOVE", 0 if row_wise else 1 << 40)
    settings = NEBSettings(optimizer_kwargs={}, weight_decay=decay)
    neb = NEBStep(energy, pivots, weights, lr=lr, settings=settings)
    info = neb.step()
    assert torch.allclose(info.losses, losses, atol=1e-12)
    assert torch.allclose(neb.pivots[1:-1], expected, atol=1e-10)
    assert torch.equal(neb.pivots[[0, -1]], pivots[[0, -1]])


def test_nan_gradient_with_finite_losses_is_divergence():
    # |p| has a finite value but a NaN gradient at the origin
    energy = FunctionEnergy(lambda p: (p**2).sum().sqrt(), dim=2, mode="loop")
    line = torch.tensor([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    with pytest.raises(DivergenceError, match="non-finite gradient"):
        NEBStep(energy, line, [0.5, 0.5], lr=0.1, cycle=3).step()


def test_given_endpoint_losses_drive_the_outer_tangents():
    # one interior pivot on the bent chain: with the endpoints' losses given, the tangent is
    # tau- or tau+ depending on which endpoint is declared higher; the projection follows it
    energy = FunctionEnergy(lambda p: p[0] + 2 * p[1], dim=2, mode="loop")  # E(pivot) = 1
    decay = 0.0
    for ends, kept in (([3.0, 0.0], 1), ([0.0, 3.0], 0)):
        neb = NEBStep(
            energy,
            BENT,
            [0.5, 0.5],
            lr=0.1,
            settings=NEBSettings(optimizer_kwargs={}, weight_decay=decay),
            endpoint_losses=torch.tensor(ends),
        )
        info = neb.step()
        assert info.losses.tolist() == [ends[0], 1.0, ends[1]]
        # gradient (1, 2); tau- = (1, 0) keeps the y-part, tau+ = (0, 1) keeps the x-part
        moved = torch.tensor([1.0, 0.0]) - 0.1 * torch.tensor([0.0, 2.0] if kept else [1.0, 0.0])
        assert torch.allclose(neb.pivots[1], moved, atol=1e-6)


@pytest.mark.parametrize("climber", [0, 2, 3])
def test_climbing_step_reverses_the_climbers_tangential_force(climber):
    """One climbing step against its definition: the pivots before and after the climber are
    redistributed on their own parts of the path (the climber stays where it is), every other
    pivot's force loses its tangential part, the climber's has it reversed."""

    def bumpy(p):
        return (p**2).sum() + torch.sin(3 * p).sum() + p[0] * p[1]

    energy = FunctionEnergy(bumpy, dim=5, mode="loop")
    pivots = torch.randn(6, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    weights = np.array([1.0, 2.0, 1.0, 1.5, 0.5])
    c = climber + 1  # path index
    left = redistribute(pivots[: c + 1], weights[:c]) if c > 1 else pivots[: c + 1]
    right = redistribute(pivots[c:], weights[c:]) if pivots.shape[0] - c > 2 else pivots[c:]
    moved = torch.cat([left, right[1:]])
    assert torch.equal(moved[c], pivots[c])
    losses, grads = energy.losses_and_grads(moved)
    tau = tangents(moved, losses)
    force = project(grads[1:-1], tau)
    g = grads[c]
    t = tau[c - 1]
    force[c - 1] = g - 2 * (g @ t) * t  # tangents() are unit vectors
    lr = 0.05
    neb = NEBStep(energy, pivots, weights, lr=lr, climbing=climber,
                  settings=NEBSettings(optimizer_kwargs={}, weight_decay=0.0))  # fmt: skip
    neb.step()
    assert torch.allclose(neb.pivots[1:-1], moved[1:-1] - lr * force, atol=1e-10)
    with pytest.raises(ConfigError, match="climbing pivot 4"):
        NEBStep(energy, pivots, weights, lr=lr, climbing=4)
