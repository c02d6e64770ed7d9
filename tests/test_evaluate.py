"""Exact BatchNorm statistics and dense evaluation of points, paths and lines."""

import copy
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nobarriers.core.errors import ConfigError
from nobarriers.engine.evaluate import evaluate_line, evaluate_path, evaluate_point, saddle
from nobarriers.nn.points import evaluate_model, load_point, point_of, recompute_bn_statistics


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


def pooled_inputs_statistics(model, x, batch_size):
    """Reference for stacked layers: run the batches in train mode (every BN layer normalising
    with its batch's statistics, as during the recomputation) and take the mean and unbiased
    variance of everything each BN layer saw, concatenated."""
    ref = copy.deepcopy(model).train()
    bns = [m for m in ref.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    seen = {i: [] for i in range(len(bns))}
    hooks = [
        m.register_forward_pre_hook(lambda mod, inp, i=i: seen[i].append(inp[0].detach()))
        for i, m in enumerate(bns)
    ]
    with torch.no_grad():
        for xb in x.split(batch_size):
            ref(xb)
    for h in hooks:
        h.remove()
    out = []
    for i in range(len(bns)):
        data = torch.cat(seen[i]).double()
        per_channel = data.transpose(0, 1).reshape(data.shape[1], -1)  # [C, N * H * W]
        out.append((per_channel.mean(1), per_channel.var(1, unbiased=True)))
    return out


def test_bn_statistics_of_stacked_layers_pooled_over_unequal_batches():
    x = torch.randn(20, 5) * 2 + 0.5
    model = two_bn_net()
    recompute_bn_statistics(model, x, batch_size=7)  # batches of 7, 7 and 6
    expected = pooled_inputs_statistics(model, x, 7)
    for (mean, var), (rmean, rvar) in zip(bn_stats(model), expected, strict=True):
        torch.testing.assert_close(mean.double(), rmean, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(var.double(), rvar, atol=1e-5, rtol=1e-5)
    # the first layer's input does not depend on an earlier BN: its statistics are the set's
    ((m0, v0), _) = one_go_statistics(model, x)
    torch.testing.assert_close(bn_stats(model)[0][0], m0, atol=1e-5, rtol=0)
    torch.testing.assert_close(bn_stats(model)[0][1], v0, atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ["cnn-4", "resnet-8", "densenet-7-4"])
def test_bn_statistics_of_the_papers_families_pooled_over_unequal_batches(arch):
    # every BatchNorm layer of the paper's conv nets, behind option-A shortcuts (ResNet) and
    # concatenations (DenseNet) included, gets the statistics of everything it sees
    from nobarriers.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, 10, (3, 8, 8))
    x = torch.randn(19, 3, 8, 8) * 2 + 0.5
    recompute_bn_statistics(model, x, batch_size=8)  # batches of 8, 8 and 3
    expected = pooled_inputs_statistics(model, x, 8)
    assert len(expected) >= 2
    for (mean, var), (rmean, rvar) in zip(bn_stats(model), expected, strict=True):
        torch.testing.assert_close(mean.double(), rmean, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(var.double(), rvar, atol=1e-5, rtol=1e-4)


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


def reference_metrics(point, data):
    """Independent of evaluate_point: a fresh network holding the point, BN statistics of the
    whole training set in one batch, the losses computed by hand."""
    model = load_point(one_bn_net(), point)
    ((mean, var),) = one_go_statistics(model, data.x_train)
    bn = model[1]
    with torch.no_grad():
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        model.eval()
        out = {}
        for split in ("train", "test"):
            x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
            logits = model(x)
            out[f"{split}_loss"] = float(F.cross_entropy(logits, y))
            out[f"{split}_error"] = float((logits.argmax(1) != y).float().mean())
    return out, (mean, var)


def test_evaluate_point_uses_exact_statistics_of_the_training_set():
    data = tiny_data()
    model = one_bn_net()
    with torch.no_grad():  # stale running statistics, far from the data's
        model[1].running_mean.fill_(5.0)
        model[1].running_var.fill_(9.0)
    point = point_of(model) * 1.1
    res = evaluate_point(model, point, data, batch_size=7)  # 24 samples in 4 batches
    expected, (mean, var) = reference_metrics(point, data)
    assert res == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert torch.equal(point_of(model), point)
    torch.testing.assert_close(model[1].running_mean, mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(model[1].running_var, var, atol=1e-4, rtol=0)
    as_tuple = evaluate_point(
        one_bn_net(), point, (data.x_train, data.y_train, data.x_test, data.y_test), 7
    )
    assert as_tuple == pytest.approx(res)
    train_only = evaluate_point(one_bn_net(), point, (data.x_train, data.y_train, None, None), 7)
    assert set(train_only) == {"train_loss", "train_error"}
    assert train_only["train_loss"] == pytest.approx(res["train_loss"])


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


def test_saddle_curves_of_all_pairs_are_measured_on_the_same_images(monkeypatch):
    from nobarriers.engine import evaluate as module

    data = tiny_data()
    seen = []
    real = module.evaluate_path

    def spy(model, pivots, data, *args, **kwargs):
        seen.append(data[0].clone())
        return real(model, pivots, data, *args, **kwargs)

    monkeypatch.setattr(module, "evaluate_path", spy)
    a = point_of(one_bn_net())
    first = torch.stack([a, a * 1.1, a * 0.9])
    second = torch.stack([a * 0.8, a * 1.05, a * 1.3])
    for pivots in (first, second):
        curve = module.saddle_curve(one_bn_net(), pivots, data, n_between=2, subset=10)
        np.testing.assert_allclose(curve["t"], [0, 1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2])
    assert seen[0].shape[0] == 10 and torch.equal(seen[0], seen[1])
    full = module.saddle_curve(one_bn_net(), first, data, n_between=0)
    assert len(seen) == 3 and seen[2].shape[0] == data.x_train.shape[0]
    # on the full set, the curve is the dense evaluation's training loss
    dense = evaluate_path(one_bn_net(), first, data, n_between=0, batch_size=512)
    np.testing.assert_allclose(full["train_loss"], dense["train_loss"], rtol=1e-6)


def test_subset_noise_cannot_rank_a_pair_above_an_equal_one():
    # two pairs whose paths are the SAME points: AutoNEB's insertion estimate uses a subset drawn
    # with each pair's own seed and gives them different saddles, so one would rank above the
    # other in the MST; the weights measure both on the same data and tie exactly
    from nobarriers.engine.model_energy import ModelEnergy

    data = tiny_data()
    model = one_bn_net()
    a = point_of(model)
    pivots = torch.stack([a, a + 0.3, a * 0.7])
    energy = ModelEnergy(model, data.x_train, data.y_train, batch_size=8, mode="loop")
    estimate_1 = energy.evaluation_losses(pivots, subset_size=8, seed=1_000_004).max()
    estimate_2 = energy.evaluation_losses(pivots, subset_size=8, seed=2_000_011).max()
    assert abs(float(estimate_1 - estimate_2)) > 1e-3  # subset noise between the two "pairs"
    from nobarriers.engine.evaluate import saddle_curve

    w1 = saddle_curve(one_bn_net(), pivots, data, n_between=1, subset=8)["train_loss"].max()
    w2 = saddle_curve(one_bn_net(), pivots, data, n_between=1, subset=8)["train_loss"].max()
    assert w1 == w2


def test_arc_positions_on_a_known_polyline():
    from nobarriers.nn.path_geometry import arc_positions

    pivots = torch.tensor([[0.0, 0.0], [3.0, 0.0], [3.0, 4.0]])  # segments 3 and 4, length 7
    t = arc_positions(pivots, [0.0, 3 / 7, 0.5, 1.0])
    np.testing.assert_allclose(t, [0.0, 1.0, 1.125, 2.0], atol=1e-12)


def test_path_ensembles_equal_a_hand_computation():
    """Three pivots of a tiny BatchNorm-free net on four test samples: the K-model ensembles
    (evenly spaced in arc length) against probabilities averaged by hand."""
    from nobarriers.engine.evaluate import path_ensembles
    from nobarriers.models import build_model
    from nobarriers.nn.points import load_point

    torch.manual_seed(0)
    model = build_model("mlp-3", 3, (2,))
    dim = sum(p.numel() for p in model.parameters())
    pivots = torch.randn(3, dim)
    pivots[2] = pivots[1] + (pivots[1] - pivots[0])  # two equal segments: t = 2 * fraction
    x = torch.randn(4, 2)
    y = torch.tensor([0, 1, 2, 1])
    data = {"x_train": x, "y_train": y, "x_test": x, "y_test": y}

    def probabilities(point):
        load_point(model, point)
        with torch.no_grad():
            return torch.softmax(model(x).double(), dim=1)

    def by_hand(fractions):
        points = [pivots[0] + 2 * f * (pivots[1] - pivots[0]) if f <= 0.5 else
                  pivots[1] + (2 * f - 1) * (pivots[2] - pivots[1]) for f in fractions]  # fmt: skip
        mean = torch.stack([probabilities(p) for p in points]).mean(0)
        return float((mean.argmax(1) != y).double().mean())

    out = path_ensembles(model, pivots, data, [5, 3], batch_size=2)
    assert out["sizes"].tolist() == [2, 3, 5]
    expected = [by_hand(np.linspace(0, 1, k)) for k in (2, 3, 5)]
    np.testing.assert_allclose(out["test_error"], expected, atol=1e-12)
    np.testing.assert_allclose(out["endpoint_test_error"], [by_hand([0.0]), by_hand([1.0])])
    with pytest.raises(ConfigError, match="ensemble sizes must be >= 2"):
        path_ensembles(model, pivots, data, [1])
