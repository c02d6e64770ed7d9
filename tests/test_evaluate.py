"""Exact BatchNorm statistics and dense evaluation of points, paths and lines."""

import copy
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nobarriers.evaluate import evaluate_line, evaluate_path, evaluate_point, saddle
from nobarriers.points import evaluate_model, load_point, point_of, recompute_bn_statistics


def one_bn_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.BatchNorm2d(3, momentum=0.3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 3),
    )


def two_bn_net():
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Linear(5, 6),
        nn.BatchNorm1d(6),
        nn.ReLU(),
        nn.Linear(6, 4),
        nn.BatchNorm1d(4),
        nn.Linear(4, 3),
    )


def one_go_statistics(model, x):
    """Reference: the whole set as ONE batch in train mode with a cumulative average."""
    ref = copy.deepcopy(model)
    for m in ref.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    ref.train()
    with torch.no_grad():
        ref(x)
    return [
        (m.running_mean, m.running_var)
        for m in ref.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]


def bn_stats(model):
    return [
        (m.running_mean, m.running_var)
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]


def test_bn_statistics_equal_whole_training_set_in_one_go():
    x = torch.randn(37, 2, 4, 4) * 3 + 1
    model = one_bn_net().eval()
    recompute_bn_statistics(model, x, batch_size=8)  # 37 = 4 x 8 + 5: unequal batches
    for (mean, var), (rmean, rvar) in zip(
        bn_stats(model), one_go_statistics(model, x), strict=True
    ):
        assert torch.allclose(mean, rmean, atol=1e-5) and torch.allclose(var, rvar, atol=1e-4)
    bn = model[1]
    assert bn.momentum == 0.3 and not model.training and int(bn.num_batches_tracked) == 5


def test_naive_cumulative_average_would_be_wrong_here():
    # torch's momentum=None averages per-batch variances with equal weights: not the set variance
    x = torch.cat([torch.randn(8, 2, 4, 4), torch.randn(3, 2, 4, 4) + 5])
    model = one_bn_net()
    bn = model[1]
    bn.reset_running_stats()
    bn.momentum = None
    with torch.no_grad():
        for xb in x.split(8):
            model(xb)
    naive = bn.running_var.clone()
    recompute_bn_statistics(model, x, batch_size=8)
    ((_, exact_var),) = one_go_statistics(model, x)
    assert torch.allclose(bn.running_var, exact_var, atol=1e-4)
    assert not torch.allclose(naive, exact_var, atol=1e-2)


def test_bn_statistics_of_stacked_layers_with_a_single_batch():
    x = torch.randn(20, 5)
    model = two_bn_net()
    recompute_bn_statistics(model, x, batch_size=64)
    for (mean, var), (rmean, rvar) in zip(
        bn_stats(model), one_go_statistics(model, x), strict=True
    ):
        assert torch.allclose(mean, rmean, atol=1e-5) and torch.allclose(var, rvar, atol=1e-4)


def test_evaluate_model_loss_error_predictions():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(13, 4), torch.randint(0, 3, (13,))
    out = evaluate_model(model, x, y, batch_size=5)
    logits = model(x).detach()
    assert abs(out["loss"] - F.cross_entropy(logits, y).item()) < 1e-6
    assert torch.equal(out["predictions"], logits.argmax(1))
    assert out["error"] == pytest.approx((logits.argmax(1) != y).float().mean().item())


@dataclass
class TinyDataset:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str = "tiny"


def tiny_data():
    g = torch.Generator().manual_seed(0)
    return TinyDataset(
        torch.randn(24, 2, 4, 4, generator=g),
        torch.randint(0, 3, (24,), generator=g),
        torch.randn(10, 2, 4, 4, generator=g),
        torch.randint(0, 3, (10,), generator=g),
    )


def test_evaluate_point_recomputes_bn_and_accepts_tuples():
    data = tiny_data()
    model = one_bn_net()
    point = point_of(model) * 1.1
    res = evaluate_point(model, point, data, batch_size=7)
    assert torch.equal(point_of(model), point)
    ((rmean, _),) = one_go_statistics(model, data.x_train)
    assert torch.allclose(model[1].running_mean, rmean, atol=1e-5)
    expected = evaluate_model(model, data.x_test, data.y_test, 7)
    assert res["test_loss"] == pytest.approx(expected["loss"])
    assert 0.0 <= res["train_error"] <= 1.0
    as_tuple = evaluate_point(
        one_bn_net(), point, (data.x_train, data.y_train, data.x_test, data.y_test), 7
    )
    assert as_tuple == pytest.approx(res)


def test_evaluate_path_positions_and_pivot_values():
    data = tiny_data()
    model = one_bn_net()
    a = point_of(model)
    pivots = torch.stack([a, a + 0.05 * torch.randn_like(a), a * 0.9])
    res = evaluate_path(model, pivots, data, n_between=3, batch_size=8)
    assert np.allclose(res["t"], [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2])
    for k, i in ((0, 0), (4, 1), (8, 2)):
        single = evaluate_point(one_bn_net(), pivots[i], data, 8)
        assert res["train_loss"][k] == pytest.approx(single["train_loss"], rel=1e-5)
    mid = evaluate_point(one_bn_net(), 0.5 * (pivots[1] + pivots[2]), data, 8)
    assert res["test_error"][6] == pytest.approx(mid["test_error"])
    top = saddle(res)
    k = int(np.argmax(res["train_loss"]))
    assert top["train_loss"] == {"value": res["train_loss"][k], "t": res["t"][k]}


def test_evaluate_line_endpoints():
    data = tiny_data()
    a = point_of(one_bn_net())
    b = a + 0.3
    res = evaluate_line(one_bn_net(), a, b, 5, data, batch_size=8)
    assert np.allclose(res["t"], np.linspace(0, 1, 5))
    end = evaluate_point(load_point(one_bn_net(), b), b, data, 8)
    assert res["test_loss"][-1] == pytest.approx(end["test_loss"], rel=1e-6)
