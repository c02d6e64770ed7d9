"""AutoNEB: schedule/config, insertion (Appendix A), analytic saddles, resume, errors."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from nobarriers.core.errors import ConfigError, DivergenceError
from nobarriers.engine.autoneb import run_autoneb
from nobarriers.engine.energy import Energy, FunctionEnergy
from nobarriers.engine.insertion import insert_pivots, select_insertions
from nobarriers.engine.model_energy import ModelEnergy
from nobarriers.settings.autoneb_config import AutoNEBConfig, Cycle, paper_schedule

# ---- analytic surfaces ------------------------------------------------------------------------

MB_A = torch.tensor([-200.0, -100.0, -170.0, 15.0], dtype=torch.float64)
MB_a = torch.tensor([-1.0, -1.0, -6.5, 0.7], dtype=torch.float64)
MB_b = torch.tensor([0.0, 0.0, 11.0, 0.6], dtype=torch.float64)
MB_c = torch.tensor([-10.0, -10.0, -6.5, 0.7], dtype=torch.float64)
MB_X = torch.tensor([1.0, 0.0, -0.5, -1.0], dtype=torch.float64)
MB_Y = torch.tensor([0.0, 0.5, 1.5, 1.0], dtype=torch.float64)


def muller_brown(p):
    """The Mueller-Brown potential (Mueller & Brown 1979), a standard MEP benchmark."""
    dx, dy = p[0] - MB_X.to(p.dtype), p[1] - MB_Y.to(p.dtype)
    args = MB_a.to(p.dtype) * dx * dx + MB_b.to(p.dtype) * dx * dy + MB_c.to(p.dtype) * dy * dy
    return (MB_A.to(p.dtype) * torch.exp(args)).sum()


def valley(p):
    """Curved valley y = 1 - x^2 between minima (+-1, 0); saddle (0, 1) with energy exactly 1;
    the straight segment crosses a barrier of 11."""
    return 10 * (p[1] - (1 - p[0] ** 2)) ** 2 + (p[0] ** 2 - 1) ** 2


def newton(f, x, iters=30):
    """Stationary point of f near x (float64): minima and saddles to machine precision."""
    x = x.double()
    for _ in range(iters):
        hessian = torch.func.jacrev(torch.func.jacrev(f))(x)
        x = x - torch.linalg.solve(hessian, torch.func.grad(f)(x))
    return x


def distance_to_path(q, pivots):
    a, b = pivots[:-1].double(), pivots[1:].double()
    s = (((q - a) * (b - a)).sum(1) / ((b - a) ** 2).sum(1)).clamp(0, 1)
    return float((q - (a + s[:, None] * (b - a))).norm(dim=1).min())


def analytic_config(**kw):
    base = dict(weight_decay=0.0, eval_subset=None, max_insert_per_cycle=3)
    base.update(kw)
    return AutoNEBConfig(**base)


def test_muller_brown_saddle_within_one_percent():
    a = newton(muller_brown, torch.tensor([-0.558, 1.442]))
    b = newton(muller_brown, torch.tensor([0.623, 0.028]))
    s = newton(muller_brown, torch.tensor([-0.822, 0.624]))  # highest saddle on the MEP A -> B
    true_saddle = float(muller_brown(s))
    assert true_saddle == pytest.approx(-40.665, abs=1e-3)
    config = analytic_config(
        schedule=[Cycle(150, 2e-4)] * 3 + [Cycle(150, 2e-5)],
        initial_pivots=4,
        insert_threshold=0.02,
    )
    result = run_autoneb(FunctionEnergy(muller_brown, 2, mode="vmap"), a.float(), b.float(), config)
    assert abs(result.saddle_loss - true_saddle) < 0.01 * abs(true_saddle)
    assert distance_to_path(s, result.pivots) < 0.05
    assert sum(len(h.inserted) for h in result.history) >= 1
    assert result.pivots.shape[0] == 2 + result.history[-1].n_pivots
    assert result.target_weights.sum() == pytest.approx(1.0)


def test_curved_valley_finds_saddle_far_below_straight_line():
    a, b = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])
    line_max = max(valley(a + (b - a) * t).item() for t in np.linspace(0, 1, 101))
    assert line_max == pytest.approx(11.0)
    config = analytic_config(
        schedule=[Cycle(100, 0.01)] * 2 + [Cycle(100, 0.001)], initial_pivots=5
    )
    result = run_autoneb(FunctionEnergy(valley, 2, mode="loop"), a, b, config)
    assert abs(result.saddle_loss - 1.0) < 0.01
    assert distance_to_path(torch.tensor([0.0, 1.0]).double(), result.pivots) < 0.02
    hist = result.history[-1]
    assert hist.t[0] == 0 and hist.t[-1] == hist.n_pivots + 1
    assert len(hist.t) == (hist.n_pivots + 1) * 10 + 1


# ---- schedule and config ----------------------------------------------------------------------


def test_paper_schedule_and_defaults():
    s = paper_schedule()
    assert len(s) == 14 and sum(c.steps for c in s) == 16000
    assert [c.lr for c in s] == [0.1] * 6 + [0.01] * 4 + [0.001] * 4
    assert [c.steps for c in s[4:6]] == [2000, 2000]
    c = AutoNEBConfig()
    assert (c.initial_pivots, c.insert_threshold, c.n_between) == (3, 0.2, 9)
    assert c.optimizer == "SGD" and c.optimizer_kwargs == {"momentum": 0.9}
    assert c.weight_decay == 1e-4 and c.total_steps == 16000


def test_config_json_round_trip_and_repeat_shorthand():
    c = AutoNEBConfig(schedule=[Cycle(10, 0.1), Cycle(20, 0.01)], max_pivots=7)
    d = json.loads(json.dumps(c.to_dict()))
    assert AutoNEBConfig.from_dict(d) == c
    short = AutoNEBConfig.from_dict({"schedule": [{"repeat": 3, "steps": 5, "lr": 0.1}, [7, 0.01]]})
    assert short.schedule == [Cycle(5, 0.1)] * 3 + [Cycle(7, 0.01)]


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="schedule: .* non-empty"):
        AutoNEBConfig(schedule=[])
    with pytest.raises(ConfigError, match="unknown key.*threshold"):
        AutoNEBConfig.from_dict({"threshold": 0.1})
    with pytest.raises(ConfigError, match="optimizer: 'sgd' is not one of"):
        AutoNEBConfig(optimizer="sgd")
    with pytest.raises(ConfigError, match="schedule\\[1\\].steps"):
        AutoNEBConfig(schedule=[Cycle(5, 0.1), Cycle(0, 0.1)])
    with pytest.raises(ConfigError, match="max_pivots=2 is below initial_pivots=3"):
        AutoNEBConfig(max_pivots=2)


# ---- insertion --------------------------------------------------------------------------------

ALPHAS = np.array([0.25, 0.5, 0.75])


def test_insertion_picks_highest_residual_gaps_one_each_with_cap():
    pivot_loss = np.array([0.0, 1.0, 0.0, 0.0])  # range 1
    gap_loss = np.array(
        [
            [0.25, 0.9, 0.75],  # guess .25 .5 .75 -> residual 0.4 at alpha 0.5
            [0.75, 0.5, 0.9],  # guess .75 .5 .25 -> residual 0.65 at alpha 0.75
            [0.1, 0.3, 0.0],  # guess 0 -> residual 0.3 at alpha 0.5
        ]
    )
    assert select_insertions(pivot_loss, gap_loss, ALPHAS, 0.2, 5, 10) == [
        (0, 0.5, pytest.approx(0.4)),
        (1, 0.75, pytest.approx(0.65)),
        (2, 0.5, pytest.approx(0.3)),
    ]
    # cap per cycle: the two highest residuals, returned in gap order
    assert [g for g, _, _ in select_insertions(pivot_loss, gap_loss, ALPHAS, 0.2, 2, 10)] == [0, 1]
    # room left under max_pivots
    assert [g for g, _, _ in select_insertions(pivot_loss, gap_loss, ALPHAS, 0.2, 5, 1)] == [1]
    # nothing at or below the threshold
    assert select_insertions(pivot_loss, gap_loss, ALPHAS, 0.65, 5, 10) == []
    assert [g for g, _, _ in select_insertions(pivot_loss, gap_loss, ALPHAS, 0.35, 5, 10)] == [0, 1]


def test_insertion_residual_is_normalised_by_pivot_range():
    pivot_loss = np.array([10.0, 30.0])  # range 20
    gap_loss = np.array([[16.0, 25.0, 25.0]])  # guess 15, 20, 25 -> residuals 1, 5, 0
    assert select_insertions(pivot_loss, gap_loss, ALPHAS, 0.2, 2, 2) == [(0, 0.5, 0.25)]
    assert select_insertions(pivot_loss, gap_loss, ALPHAS, 0.25, 2, 2) == []


def test_insert_pivots_splits_target_weights():
    pivots = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
    new, w = insert_pivots(pivots, [0.4, 0.6], [(0, 0.25, 1.0), (1, 0.5, 1.0)])
    assert torch.allclose(
        new, torch.tensor([[0.0, 0.0], [0.25, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    )
    assert np.allclose(w, [0.1, 0.3, 0.3, 0.3]) and w.sum() == pytest.approx(1.0)


# ---- resume and errors ------------------------------------------------------------------------


def tiny_problem():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 5, generator=g), torch.randint(0, 3, (48,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    energy = ModelEnergy(model, x, y, batch_size=16, mode="loop")
    start = 0.25 * torch.randn(energy.dim, generator=g)
    end = 0.25 * torch.randn(energy.dim, generator=g)
    return energy, start, end


RESUME_CONFIG = AutoNEBConfig(
    schedule=[Cycle(4, 0.1), Cycle(4, 0.1), Cycle(4, 0.01)],
    initial_pivots=2,
    insert_threshold=0.0,
    eval_subset=24,
    n_between=3,
    keep_all_pivots=True,
)


class Interrupt(Exception):
    pass


def interrupted(config, state, after_cycle: int) -> None:
    """Run the tiny problem with ``state`` and stop it after ``after_cycle``."""

    def stop(record):
        if record.cycle == after_cycle:
            raise Interrupt

    energy, start, end = tiny_problem()
    with pytest.raises(Interrupt):
        run_autoneb(energy, start, end, config, state, seed=3, on_cycle_end=stop)


def test_resume_is_bitwise_identical(tmp_path):
    energy, start, end = tiny_problem()
    full = run_autoneb(energy, start, end, RESUME_CONFIG, seed=3)

    state = tmp_path / "state.pt"
    interrupted(RESUME_CONFIG, state, after_cycle=1)
    assert torch.load(state, weights_only=True)["cycle"] == 1
    torch.manual_seed(12345)  # global RNG disturbed in between: the state restores it
    energy, start, end = tiny_problem()
    resumed = run_autoneb(energy, start, end, RESUME_CONFIG, state, seed=3)

    assert torch.equal(resumed.pivots, full.pivots)
    assert np.array_equal(resumed.target_weights, full.target_weights)
    assert len(resumed.history) == 3
    for r, f in zip(resumed.history, full.history, strict=True):
        assert np.array_equal(r.loss, f.loss) and np.array_equal(r.pivots, f.pivots)
        assert r.inserted == f.inserted and r.n_pivots == f.n_pivots
    assert any(h.inserted for h in full.history)  # weights were split on the way

    # a finished state returns the stored result without a single NEB step or evaluation
    energy, start, end = tiny_problem()

    def forbidden(*args, **kwargs):
        raise AssertionError("the finished run computed again")

    for name in ("path_losses_and_grads", "losses_and_grads", "losses", "evaluation_losses"):
        setattr(energy, name, forbidden)
    again = run_autoneb(energy, start, end, RESUME_CONFIG, state, seed=3)
    assert torch.equal(again.pivots, full.pivots) and len(again.history) == 3
    assert [r.saddle_loss for r in again.history] == [r.saddle_loss for r in full.history]


def test_state_from_other_config_or_endpoints_is_refused(tmp_path):
    state = tmp_path / "pair.pt"
    energy, start, end = tiny_problem()
    short = AutoNEBConfig(**{**RESUME_CONFIG.__dict__, "schedule": [Cycle(2, 0.1)]})
    run_autoneb(energy, start, end, short, state)
    other = AutoNEBConfig(**{**short.__dict__, "insert_threshold": 0.5})
    with pytest.raises(ConfigError, match="pair.pt.*another config"):
        run_autoneb(energy, start, end, other, state)
    with pytest.raises(ConfigError, match="pair.pt.*other endpoints"):
        run_autoneb(energy, start, end + 1, short, state)


def test_mismatched_endpoints():
    energy = FunctionEnergy(valley, 2)
    config = analytic_config(schedule=[Cycle(1, 0.1)])
    with pytest.raises(ConfigError, match="equal length"):
        run_autoneb(energy, torch.zeros(2), torch.zeros(3), config)
    with pytest.raises(ConfigError, match="expects 2"):
        run_autoneb(energy, torch.zeros(3), torch.zeros(3), config)


def test_divergence_names_cycle_and_step_and_keeps_last_good_state(tmp_path):
    energy = FunctionEnergy(lambda p: torch.sqrt(p[1]), 2, mode="loop")
    config = analytic_config(
        schedule=[Cycle(2, 1e-3), Cycle(5, 10.0)], initial_pivots=1, optimizer_kwargs={}
    )
    state = tmp_path / "s.pt"
    with pytest.raises(DivergenceError, match="cycle 2/2, step 2"):
        run_autoneb(energy, torch.tensor([0.0, 1.0]), torch.tensor([2.0, 1.0]), config, state)
    assert torch.load(state, weights_only=True)["cycle"] == 1


def test_optimizer_list_of_the_schema_matches_torch():
    # the schema states the optimisers once; torch.optim's classes minus those that cannot run
    # NEB (a closure, sparse gradients) must be exactly that list
    from nobarriers.settings.autoneb_config import OPTIMIZERS

    unusable = {"Optimizer", "LBFGS", "SparseAdam"}
    in_torch = sorted(
        name
        for name in dir(torch.optim)
        if name not in unusable
        and isinstance(getattr(torch.optim, name), type)
        and issubclass(getattr(torch.optim, name), torch.optim.Optimizer)
    )
    assert list(OPTIMIZERS) == in_torch


def test_bad_optimizer_kwargs_fail_before_the_first_cycle():
    config = AutoNEBConfig(schedule=[Cycle(2, 0.1)], optimizer_kwargs={"momentum": -1.0})
    energy = FunctionEnergy(lambda p: (p**2).sum(), dim=2)
    with pytest.raises((ConfigError, ValueError)):
        run_autoneb(energy, torch.zeros(2), torch.ones(2), config)


# ---- endpoint losses --------------------------------------------------------------------------


def test_endpoint_losses_once_is_exact_for_energies_without_batches():
    # without batch noise the mean endpoint loss IS the per-step one: identical runs
    a, b = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])
    runs = {}
    for choice in ("per_step", "once"):
        config = analytic_config(
            schedule=[Cycle(60, 0.01)] * 2, initial_pivots=3, endpoint_losses=choice
        )
        runs[choice] = run_autoneb(FunctionEnergy(valley, 2, mode="loop"), a, b, config)
    assert torch.equal(runs["once"].pivots, runs["per_step"].pivots)


class NumberedBatches(Energy):
    """A 1-D energy whose batches are numbers drawn from the generator (like NEB batches): on
    batch ``k`` the loss of a point ``p`` is ``k * (1 + p[0])``, so averages are known exactly."""

    def __init__(self):
        super().__init__(dim=1, mode="loop")

    def sample_batch(self, generator):
        return int(torch.randint(0, 1000, (1,), generator=generator))

    def _loop_losses(self, points, batch):
        return batch * (1.0 + points[:, 0])


def test_mean_batch_losses_average_the_batches_a_run_would_draw():
    energy = NumberedBatches()
    points = torch.tensor([[0.0], [1.0], [-0.5]])
    g = torch.Generator().manual_seed(3)
    drawn = [int(torch.randint(0, 1000, (1,), generator=g)) for _ in range(5)]
    mean = sum(drawn) / 5
    losses = energy.mean_batch_losses(points, 5, torch.Generator().manual_seed(3))
    torch.testing.assert_close(losses, torch.tensor([mean, 2 * mean, 0.5 * mean]))
    # one batch fewer is another mean: the count is honoured, not just the first batch
    fewer = energy.mean_batch_losses(points, 4, torch.Generator().manual_seed(3))
    assert float(fewer[0]) == pytest.approx(sum(drawn[:4]) / 4)


def test_endpoint_losses_once_never_evaluates_endpoints_in_the_steps():
    energy, start, end = tiny_problem()
    config = AutoNEBConfig(**{**RESUME_CONFIG.to_dict(), "endpoint_losses": "once"})
    config.endpoint_batches = 5
    evaluated = []
    original = energy.losses

    def recording_losses(points, batch=None):
        evaluated.append(points.shape[0])
        return original(points, batch)

    energy.losses = recording_losses
    seen = []
    result = run_autoneb(
        energy, start, end, config, seed=3, on_cycle_end=lambda r: seen.append(r.pivot_loss)
    )
    assert evaluated == [2] * 5  # only the estimate; the NEB steps never evaluate endpoints
    assert result.pivots.shape[1] == energy.dim and len(seen) == 3


def test_endpoint_losses_choice_is_validated():
    with pytest.raises(ConfigError, match="endpoint_losses: 'sometimes' is not one of"):
        AutoNEBConfig(endpoint_losses="sometimes")
    with pytest.raises(ConfigError, match="endpoint_batches: 0 is less than the minimum"):
        AutoNEBConfig(endpoint_losses="once", endpoint_batches=0)


def test_climbing_image_converges_to_the_saddle_point_where_plain_autoneb_does_not():
    """Mueller-Brown, the saddle from Newton's method: with climbing_cycles the highest pivot ends
    on the saddle point (position and energy to 1e-5); plain AutoNEB's highest pivot stays beside
    it, lower. The climber is the highest pivot after the last plain cycle."""
    a = newton(muller_brown, torch.tensor([-0.558, 1.442]))
    b = newton(muller_brown, torch.tensor([0.623, 0.028]))
    s = newton(muller_brown, torch.tensor([-0.822, 0.624]))
    true_saddle = float(muller_brown(s))
    schedule = [Cycle(150, 2e-4)] * 3 + [Cycle(300, 2e-5)] * 2
    highest = {}
    for k in (0, 2):
        config = analytic_config(
            schedule=schedule, initial_pivots=4, insert_threshold=0.02, climbing_cycles=k
        )
        result = run_autoneb(FunctionEnergy(muller_brown, 2, mode="vmap"), a.float(), b.float(),
                             config)  # fmt: skip
        pivots = result.pivots.double()
        energies = torch.stack([muller_brown(p) for p in pivots])
        i = int(energies[1:-1].argmax()) + 1
        highest[k] = (float((pivots[i] - s).norm()), float(energies[i]))
        assert [h.climbing is not None for h in result.history] == [False] * (5 - k) + [True] * k
        if k:
            assert result.history[-1].climbing == i - 1  # the climber is the highest pivot
    distance, energy = highest[2]
    assert distance < 1e-5 and abs(energy - true_saddle) < 1e-5
    plain_distance, plain_energy = highest[0]
    assert plain_distance > 1e3 * distance and plain_energy < true_saddle - 0.1


def test_climbing_needs_a_plain_cycle_first_and_resumes_bitwise(tmp_path):
    with pytest.raises(ConfigError, match="climbing_cycles=2 needs a plain cycle"):
        AutoNEBConfig(schedule=[Cycle(5, 0.1)] * 2, climbing_cycles=2)

    def valley(p):  # the README's curved valley: an interior saddle of 1.2 between the minima
        x, y = p[0], p[1]
        return (x**2 - 1) ** 2 + 2 * (y - 0.8 * (1 - x**2)) ** 2 + 0.2 * (1 - x**2)

    config = analytic_config(schedule=[Cycle(50, 0.05)] * 2 + [Cycle(50, 0.01)],
                             initial_pivots=3, climbing_cycles=1)  # fmt: skip
    ends = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])
    full = run_autoneb(FunctionEnergy(valley, 2, mode="vmap"), *ends, config, seed=3)
    state = tmp_path / "state.pt"

    def stop(record):
        if record.cycle == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_autoneb(FunctionEnergy(valley, 2, mode="vmap"), *ends, config, state, seed=3,
                    on_cycle_end=stop)  # fmt: skip
    resumed = run_autoneb(FunctionEnergy(valley, 2, mode="vmap"), *ends, config, state, seed=3)
    assert torch.equal(resumed.pivots, full.pivots)
    assert resumed.history[-1].climbing == full.history[-1].climbing is not None


def tilted_valley(p):
    """A valley rising steadily from (-1, 0) to (1, 0): the path's highest point is an endpoint,
    there is no saddle between the two ends."""
    return 0.5 * p[0] + 4.0 * p[1] ** 2 + 0.05 * torch.sin(3.0 * p[0]) ** 2


def test_no_climber_where_the_path_rises_to_an_endpoint():
    """The climber climbs only where the path's highest point is interior and above both ends;
    on a tilted valley the climbing cycles run as plain ones (the same pivots, bit for bit)
    and the record says why."""
    schedule = [Cycle(100, 0.05)] * 2 + [Cycle(100, 0.01)]
    start, end = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])
    runs = {}
    for k in (0, 2):
        config = analytic_config(schedule=schedule, initial_pivots=3, climbing_cycles=k)
        runs[k] = run_autoneb(FunctionEnergy(tilted_valley, 2, mode="vmap"), start, end, config)
    assert torch.equal(runs[0].pivots, runs[2].pivots)
    climbing = runs[2].history[-2:]
    assert all(r.climbing is None for r in climbing)
    assert all("highest point is its end" in r.no_climb for r in climbing), climbing[0].no_climb
    assert runs[0].history[-1].no_climb == ""  # plain cycles have nothing to explain


def test_climbing_with_weight_decay_climbs_the_loss_along_the_path():
    """With L2 decay the pivots relax the decayed energy across the path, as NEB does, but the
    climber climbs the loss itself along it: at the end the loss gradient has no component
    along the path at the climber (reversing the decayed force, as before, left one of
    -decay * w along the path)."""
    a = newton(muller_brown, torch.tensor([-0.558, 1.442]))
    b = newton(muller_brown, torch.tensor([0.623, 0.028]))
    decay = 20.0
    schedule = [Cycle(150, 2e-4)] * 3 + [Cycle(400, 2e-5)] * 2
    config = analytic_config(schedule=schedule, initial_pivots=4, insert_threshold=0.02,
                             climbing_cycles=2, weight_decay=decay)  # fmt: skip
    result = run_autoneb(FunctionEnergy(muller_brown, 2, mode="vmap"), a.float(), b.float(),
                         config)  # fmt: skip
    c = result.history[-1].climbing + 1
    pivots = result.pivots.double()
    tangent = pivots[c + 1] - pivots[c - 1]
    tangent = tangent / tangent.norm()
    grad = torch.func.grad(muller_brown)(pivots[c])
    along_loss = float(grad.dot(tangent))
    along_decay = float(decay * pivots[c].dot(tangent))
    assert abs(along_decay) > 1.0  # the decay's pull along the path is not negligible here
    assert abs(along_loss) < 0.02 * abs(along_decay), (along_loss, along_decay)
