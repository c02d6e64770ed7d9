"""GPU speed options (channels_last, bf16 autocast) and the fast NEB step: results must match the
plain fp32 path within stated tolerances on the CPU."""

import numpy as np
import pytest
import torch
from torch import nn

from nobarriers.datasets.builtin.digits import DIGITS_RECIPE
from nobarriers.engine.autoneb import run_autoneb
from nobarriers.engine.model_energy import ModelEnergy
from nobarriers.engine.neb import NEBStep
from nobarriers.nn.path_geometry import redistribute, tangents
from nobarriers.settings.autoneb_config import EnergySettings, split_autoneb
from nobarriers.settings.recipes import RECIPE_KEYS, built_in_recipes, validate_recipe

# bf16 keeps 8 significant bits: a loss of O(1) is reproduced to about 1e-2 relative, gradients
# (averaged over the batch) to about 5e-2 of their norm
BF16_LOSS_RTOL = 2e-2
BF16_GRAD_RTOL = 8e-2


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


@pytest.fixture
def cnn_data():
    torch.manual_seed(0)
    return small_cnn(), torch.randn(64, 3, 8, 8), torch.randint(0, 10, (64,))


def _losses_grads(energy, points, seed=0):
    batch = energy.sample_batch(torch.Generator().manual_seed(seed))
    return energy.losses_and_grads(points, batch)


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_channels_last_matches_fp32(cnn_data, mode):
    model, x, y = cnn_data
    ref = ModelEnergy(model, x, y, batch_size=32, mode=mode)
    fast = ModelEnergy(model, x, y, batch_size=32, mode=mode, channels_last=True)
    points = ref.point_of(model)[None] + 0.01 * torch.randn(3, ref.dim)
    lr, gr = _losses_grads(ref, points)
    lf, gf = _losses_grads(fast, points)
    torch.testing.assert_close(lf, lr, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gf, gr, rtol=1e-4, atol=1e-5)


def small_mlp_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, 10))
    return model, torch.randn(64, 3, 4, 4), torch.randint(0, 10, (64,))


@pytest.mark.parametrize("mode,net", [("loop", "cnn"), ("loop", "mlp"), ("vmap", "mlp")])
def test_bf16_autocast_close_to_fp32(cnn_data, mode, net):
    # (vmap over bf16 convolutions fails in torch's batched conv backward; mode "auto" then
    # measures only the loop, see test_bf16_auto_falls_back_to_loop_for_convolutions)
    model, x, y = cnn_data if net == "cnn" else small_mlp_data()
    ref = ModelEnergy(model, x, y, batch_size=32, mode=mode)
    fast = ModelEnergy(model, x, y, batch_size=32, mode=mode, autocast_bf16=True)
    points = ref.point_of(model)[None] + 0.01 * torch.randn(3, ref.dim)
    lr, gr = _losses_grads(ref, points)
    lf, gf = _losses_grads(fast, points)
    assert lf.dtype == torch.float32 and gf.dtype == torch.float32
    torch.testing.assert_close(lf, lr, rtol=BF16_LOSS_RTOL, atol=1e-3)
    rel = (gf - gr).norm(dim=1) / gr.norm(dim=1)
    assert float(rel.max()) < BF16_GRAD_RTOL
    # the insertion evaluation stays fp32
    torch.testing.assert_close(fast.evaluation_losses(points), ref.evaluation_losses(points))


def test_bf16_auto_falls_back_to_loop_for_convolutions(cnn_data):
    model, x, y = cnn_data
    energy = ModelEnergy(model, x, y, batch_size=32, mode="auto", autocast_bf16=True)
    points = energy.point_of(model)[None].repeat(3, 1)
    losses, grads = _losses_grads(energy, points)
    assert energy.resolved_mode == "loop" and torch.isfinite(grads).all()


def test_speed_options_of_the_autoneb_section_configure_the_energy(cnn_data):
    # the workflow's autoneb section holds both the algorithm's and the energy's settings; the
    # energy is built once with its part, and run_autoneb never changes it
    model, x, y = cnn_data
    section = {"schedule": [{"steps": 3, "lr": 0.01}], "initial_pivots": 1, "eval_subset": None,
               "batch_size": 32, "mode": "loop"}  # fmt: skip
    config, plain = split_autoneb(section)
    _, fast = split_autoneb({**section, "channels_last": True, "autocast_bf16": True})
    ref_energy = ModelEnergy.from_settings(model, x, y, plain)
    fast_energy = ModelEnergy.from_settings(model, x, y, fast)
    assert fast_energy.channels_last and fast_energy.autocast_bf16 and fast_energy.mode == "loop"
    start = ref_energy.point_of(model)
    end = start + 0.05 * torch.randn(ref_energy.dim)
    ref = run_autoneb(ref_energy, start, end, config)
    fast_result = run_autoneb(fast_energy, start, end, config)
    assert fast_energy.channels_last and fast_energy.autocast_bf16
    # three tiny steps: the paths agree to bf16 precision of the gradients times lr
    torch.testing.assert_close(fast_result.pivots, ref.pivots, rtol=0, atol=1e-3)
    assert EnergySettings().channels_last is False and EnergySettings().autocast_bf16 is False


def test_recipe_speed_options_default_false_and_optional():
    assert "channels_last" in RECIPE_KEYS and "autocast_bf16" in RECIPE_KEYS
    for recipe in built_in_recipes().values():
        checked = validate_recipe(recipe)
        assert checked["channels_last"] is False and checked["autocast_bf16"] is False


def test_training_with_speed_options_close_to_fp32(tmp_path):
    from nobarriers.datasets import Dataset
    from nobarriers.engine.train import train_minimum

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 3, 8, 8, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    data = Dataset("toy", 2, (3, 8, 8), x, y, x[:32], y[:32], "none")
    recipe = {**DIGITS_RECIPE, "epochs": 2, "batch_size": 32}
    ref = train_minimum("cnn-4", data, recipe, 0, tmp_path / "a.st", tmp_path / "a.ckpt")
    fast = train_minimum(
        "cnn-4",
        data,
        {**recipe, "channels_last": True, "autocast_bf16": True},
        0,
        tmp_path / "b.st",
        tmp_path / "b.ckpt",
    )
    # two short epochs from the same seed: bf16 rounding moves the loss by a few percent at most
    assert abs(fast["train_loss"] - ref["train_loss"]) < 0.05 * ref["train_loss"] + 1e-3


def test_fast_step_geometry_matches_reference_formulas():
    # the NEB step's host-side redistribution / tangents give the public functions' results
    torch.manual_seed(0)
    path = torch.randn(7, 5, dtype=torch.float64)
    w = np.array([1.0, 2.0, 1.0, 3.0, 1.0, 2.0])
    out = redistribute(path, w)
    seg = (out[1:] - out[:-1]).norm(dim=1)
    # pivots lie on the old polyline, endpoints fixed
    assert torch.equal(out[0], path[0]) and torch.equal(out[-1], path[-1])
    v = torch.tensor([0.0, 1.0, 3.0, 2.0, 2.0, 2.0, 0.5], dtype=torch.float64)
    tau = tangents(path, v)
    torch.testing.assert_close(tau.norm(dim=1), torch.ones(5, dtype=torch.float64))
    assert seg.numel() == 6


def test_neb_step_state_is_one_buffer():
    torch.manual_seed(0)
    x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    energy = ModelEnergy(nn.Linear(3, 2), x, y, batch_size=5, mode="vmap")
    pivots = torch.stack([torch.zeros(energy.dim) + k for k in range(5)])
    neb = NEBStep(energy, pivots, np.full(4, 0.25), lr=0.1)
    before = neb.pivots
    info = neb.step(torch.Generator().manual_seed(0))
    after = neb.pivots
    assert info.losses.shape == (5,) and np.isfinite(info.max_loss)
    assert torch.equal(after[0], before[0]) and torch.equal(after[-1], before[-1])
    assert not torch.equal(after[1:-1], before[1:-1])
