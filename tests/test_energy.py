"""Energies: coordinates, common batches, vmap == loop, BatchNorm on batch statistics."""

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nobarriers.core.errors import ConfigError
from nobarriers.engine.energy import FunctionEnergy
from nobarriers.engine.linear_chain import LinearChain
from nobarriers.engine.model_energy import ModelEnergy
from nobarriers.nn.points import load_point, point_of


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def bn_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Linear(8, 3),
    )


def data(shape, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 3, (n,), generator=g)


def random_points(energy, m=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(m, energy.dim, generator=g)


def test_function_energy_vmap_equals_loop_and_analytic_gradient():
    def f(p):
        return (p[0] ** 2 - 1) ** 2 + 3 * torch.sin(p[1]) * p[0]

    points = torch.tensor([[0.3, -0.2], [1.5, 2.0], [-0.7, 0.1]])
    lv, gv = FunctionEnergy(f, 2, mode="vmap").losses_and_grads(points)
    ll, gl = FunctionEnergy(f, 2, mode="loop").losses_and_grads(points)
    x, y = points[:, 0], points[:, 1]
    grad = torch.stack([4 * x * (x**2 - 1) + 3 * torch.sin(y), 3 * torch.cos(y) * x], dim=1)
    assert torch.allclose(lv, ll) and torch.allclose(gv, gl, atol=1e-6)
    assert torch.allclose(gv, grad, atol=1e-5)
    assert torch.allclose(FunctionEnergy(f, 2).losses(points), lv)


def registry(arch):
    """One of the paper's conv nets (BatchNorm; option-A shortcuts; concatenations), small input."""

    def make():
        from nobarriers.models import build_model

        torch.manual_seed(0)
        return build_model(arch, 3, (3, 8, 8))

    return make


@pytest.mark.parametrize(
    "make, shape",
    [(mlp, (6,)), (bn_cnn, (2, 6, 6)), (registry("resnet-8"), (3, 8, 8)),
     (registry("densenet-7-4"), (3, 8, 8))],
)  # fmt: skip
def test_model_energy_vmap_equals_loop(make, shape):
    x, y = data(shape)
    ev = ModelEnergy(make(), x, y, batch_size=16, mode="vmap", chunk_size=2)
    el = ModelEnergy(make(), x, y, batch_size=16, mode="loop")
    points = random_points(ev)
    batch = ev.sample_batch(torch.Generator().manual_seed(3))
    lv, gv = ev.losses_and_grads(points, batch)
    ll, gl = el.losses_and_grads(points, batch)
    assert lv.shape == (3,) and gv.shape == (3, ev.dim)
    assert torch.allclose(lv, ll, atol=1e-5)
    assert torch.allclose(gv, gl, atol=1e-5)
    assert torch.allclose(ev.losses(points, batch), lv, atol=1e-5)


def test_model_energy_is_the_train_mode_loss_with_batch_statistics():
    x, y = data((2, 6, 6))
    model = bn_cnn()
    energy = ModelEnergy(model, x, y, batch_size=16, mode="loop")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    point = random_points(energy, 1)[0]
    batch = energy.sample_batch(torch.Generator().manual_seed(0))
    loss, grad = energy.losses_and_grads(point[None], batch)

    reference = bn_cnn()
    load_point(reference, point)
    reference.train()
    ref_loss = F.cross_entropy(reference(batch[0]), batch[1])
    ref_loss.backward()
    ref_grad = torch.cat([p.grad.reshape(-1) for p in reference.parameters()])
    assert torch.allclose(loss[0], ref_loss.detach(), atol=1e-6)
    assert torch.allclose(grad[0], ref_grad, atol=1e-5)
    # the caller's model, its running statistics included, is untouched
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_coordinates_are_trainable_parameters_only():
    model = bn_cnn()
    model[0].bias.requires_grad_(False)  # frozen parameters are not coordinates either
    x, y = data((2, 6, 6))
    energy = ModelEnergy(model, x, y, batch_size=8, mode="loop")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for b in model.buffers())
    assert buffers > 0 and energy.dim == trainable
    point = energy.point_of(model)
    other = bn_cnn()
    other[0].bias.requires_grad_(False)
    load_point(other, point)
    assert torch.equal(point_of(other), point)
    with pytest.raises(ConfigError, match="trainable parameters"):
        load_point(other, torch.zeros(energy.dim + 1))


def test_sample_batch_is_deterministic_distinct_and_augmented():
    x, y = data((6,), n=30)
    x[:, 0] = torch.arange(30.0)  # sample id in feature 0
    calls = []

    def augment(xb, generator):
        calls.append(generator)
        return xb + 100.0

    energy = ModelEnergy(mlp(), x, y, batch_size=12, mode="loop", augment=augment)
    b1 = energy.sample_batch(torch.Generator().manual_seed(5))
    b2 = energy.sample_batch(torch.Generator().manual_seed(5))
    assert torch.equal(b1[0], b2[0]) and torch.equal(b1[1], b2[1])
    ids = (b1[0][:, 0] - 100.0).long()
    assert len(set(ids.tolist())) == 12 and torch.equal(y[ids], b1[1])
    assert len(calls) == 2


def test_auto_mode_is_a_rule_not_a_timing(caplog):
    """auto: the batched kernel for an MLP, the loop for a BatchNorm conv net, logged once; the
    same choice every time, so reruns are bitwise identical (a timing differs run to run)."""
    x, y = data((6,))
    energy = ModelEnergy(mlp(), x, y, batch_size=8, mode="auto")
    batch = energy.sample_batch(torch.Generator().manual_seed(0))
    with caplog.at_level(logging.INFO, logger="nobarriers"):
        losses, _ = energy.losses_and_grads(random_points(energy), batch)
        energy.losses_and_grads(random_points(energy), batch)
    assert energy.resolved_mode == "vmap"
    assert sum("energy mode auto ->" in r.message for r in caplog.records) == 1
    assert losses.shape == (3,)
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    xi, yi = torch.randn(16, 1, 4, 4), torch.randint(0, 3, (16,))
    energy = ModelEnergy(conv, xi, yi, batch_size=8, mode="auto")
    energy.losses_and_grads(random_points(energy), energy.sample_batch(torch.Generator()))
    assert energy.resolved_mode == "loop"


def test_losses_without_batch_average_the_training_set():
    x, y = data((6,), n=20)
    energy = ModelEnergy(mlp(), x, y, batch_size=7, mode="loop")
    point = random_points(energy, 1)
    model = load_point(mlp(), point[0])
    expected = F.cross_entropy(model(x), y)
    assert torch.allclose(energy.losses(point)[0], expected, atol=1e-6)


def test_evaluation_losses_use_fixed_subset_and_exact_bn():
    from nobarriers.nn.points import evaluate_model, recompute_bn_statistics

    x, y = data((2, 6, 6), n=30)
    energy = ModelEnergy(bn_cnn(), x, y, batch_size=8, mode="loop")
    points = random_points(energy, 2)
    a = energy.evaluation_losses(points, subset_size=10, seed=4)
    b = energy.evaluation_losses(points, subset_size=10, seed=4)
    assert torch.equal(a, b)
    idx = torch.randperm(30, generator=torch.Generator().manual_seed(4))[:10].sort().values
    model = load_point(bn_cnn(), points[1])
    recompute_bn_statistics(model, x[idx], 8)
    assert abs(a[1].item() - evaluate_model(model, x[idx], y[idx], 8)["loss"]) < 1e-6


def test_shape_errors_are_clear():
    x, y = data((6,))
    with pytest.raises(ConfigError, match="labels"):
        ModelEnergy(mlp(), x, y[:-1], batch_size=8)
    energy = ModelEnergy(mlp(), x, y, batch_size=8, mode="loop")
    with pytest.raises(ConfigError, match="dimension"):
        energy.losses(torch.zeros(2, energy.dim - 1))
    with pytest.raises(ConfigError, match="mode"):
        FunctionEnergy(lambda p: p.sum(), 2, mode="fast")


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_path_evaluation_is_the_per_point_evaluation(mode):
    # one NEB step's evaluation (interior with gradients, endpoints forward-only, optionally
    # into a reused buffer) equals evaluating every pivot on its own on the same batch
    x, y = data((2, 6, 6))
    energy = ModelEnergy(bn_cnn(), x, y, batch_size=16, mode=mode)
    path = random_points(energy, m=5)
    batch = energy.sample_batch(torch.Generator().manual_seed(3))
    losses, grads = energy.losses_and_grads(path, batch)
    out = torch.full((3, energy.dim), float("nan"))
    for buffer in (None, out):
        path_losses, path_grads = energy.path_losses_and_grads(path, batch, out=buffer)
        assert torch.allclose(path_losses, losses, atol=1e-5)
        assert torch.allclose(path_grads, grads[1:-1], atol=1e-5)
    if mode == "loop":
        assert torch.allclose(out, grads[1:-1], atol=1e-5)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        return self.out(x + torch.relu(self.fc(x)))


def frozen_mlp():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(12, 8, bias=False),
        nn.Dropout(0.5),
        nn.GELU(),
        nn.Linear(8, 5),
        nn.Tanh(),
        nn.Linear(5, 3),
    )
    net[4].weight.requires_grad_(False)  # frozen: not a coordinate, shared by all pivots
    return net


@pytest.mark.parametrize("make, shape", [(mlp, (6,)), (frozen_mlp, (3, 2, 2)), (Residual, (6,))])
def test_vmap_mode_equals_the_loop_with_and_without_the_linear_chain_kernel(make, shape):
    x, y = data(shape)
    ev = ModelEnergy(make(), x, y, batch_size=16, mode="vmap")
    el = ModelEnergy(make(), x, y, batch_size=16, mode="loop")
    assert (ev._chain is None) == (make is Residual)  # a residual sum is not a chain: functorch
    if make is frozen_mlp:
        assert ev.dim == 12 * 8 + 5 + 5 * 3 + 3  # the frozen weight is no coordinate
    points = random_points(ev)
    batch = ev.sample_batch(torch.Generator().manual_seed(3))
    lv, gv = ev.losses_and_grads(points, batch)
    ll, gl = el.losses_and_grads(points, batch)
    assert torch.allclose(lv, ll, atol=1e-5) and torch.allclose(gv, gl, atol=1e-5)
    assert torch.allclose(ev.losses(points, batch), ll, atol=1e-5)


def test_linear_chain_refuses_what_is_not_a_per_sample_chain():
    flatten_batch = nn.Sequential(nn.Flatten(0), nn.Linear(72 * 16, 3))
    for net in (flatten_batch, bn_cnn(), Residual()):
        assert LinearChain.of(net, ["x"], [1]) is None


def test_linear_chain_of_the_registry_mlps():
    from nobarriers.models import build_model

    for name in ("mlp-32", "mlp-8x2"):
        model = build_model(name, 10, (1, 8, 8))
        x, y = torch.randn(30, 1, 8, 8), torch.randint(0, 10, (30,))
        ev = ModelEnergy(model, x, y, batch_size=16, mode="vmap")
        el = ModelEnergy(model, x, y, batch_size=16, mode="loop")
        assert ev._chain is not None
        points = ev.point_of(model) + 0.1 * random_points(ev)
        batch = ev.sample_batch(torch.Generator().manual_seed(0))
        lv, gv = ev.losses_and_grads(points, batch)
        ll, gl = el.losses_and_grads(points, batch)
        assert torch.allclose(lv, ll, atol=1e-5) and torch.allclose(gv, gl, atol=1e-5)
