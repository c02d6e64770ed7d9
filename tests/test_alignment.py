"""Weight matching (Git Re-Basin): spec derivation, function preservation, recovery, failures."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nobarriers.core.errors import AlignmentError
from nobarriers.engine import alignment
from nobarriers.engine.alignment import (
    Segment,
    align,
    apply_permutation,
    check_same_function,
    permutation_spec,
    weight_matching,
)
from nobarriers.models import build_model

FAMILIES = [
    ("mlp-16x2", (64,)),
    ("cnn-8x2", (1, 8, 8)),
    ("resnet-8", (3, 8, 8)),
    ("resnet-8-proj", (3, 8, 8)),
    ("densenet-7-4", (3, 8, 8)),
    ("densenet-bc-10-4", (3, 8, 8)),
]


def _model(name: str, shape: tuple[int, ...], seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """A model whose BN statistics and scales are random, so that forgetting them shows."""
    torch.manual_seed(seed)
    model = build_model(name, 10, shape)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_()
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    for p in model.parameters():  # zero-initialised biases would make units indistinguishable
        if p.dim() == 1 and not p.any():
            p.data.normal_(0.0, 0.1)
    return model, torch.randn(16, *shape, generator=torch.Generator().manual_seed(seed))


def _random_perms(spec) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {g: torch.randperm(n, generator=gen) for g, n in spec.groups.items()}


@pytest.mark.parametrize("name,shape", FAMILIES)
def test_random_permutation_keeps_function_and_is_recovered(name, shape):
    # Catches a wrong spec for any layer type (BN buffers, flatten order, cat, padding) and a
    # matching that does not find the exact permutation when one exists.
    model, x = _model(name, shape)
    state_a = model.state_dict()
    spec = permutation_spec(model, x)
    state_b = apply_permutation(spec, _random_perms(spec), state_a)
    assert check_same_function(model, state_a, state_b, x) < 1e-4
    assert any(not torch.equal(state_a[k], state_b[k]) for k in spec.parameters)

    perms, sweeps = weight_matching(spec, state_a, state_b)
    recovered = apply_permutation(spec, perms, state_b)
    # The last sweep only confirms that nothing improves; a stop rule that never fires would
    # run all max_iter=100 sweeps.
    assert 2 <= sweeps <= 10
    for key, value in state_a.items():
        assert torch.equal(recovered[key], value), key

    result = align(model, state_a, state_b, x)
    assert result.distance_before > 0
    assert result.distance_after == pytest.approx(0.0, abs=1e-9)


def test_broken_permutation_fails_the_function_check():
    # Catches a check_same_function that is too lax (e.g. train-mode BN, which ignores the
    # running statistics, or comparing the state with itself).
    model, x = _model("resnet-8", (3, 8, 8))
    state = model.state_dict()
    spec = permutation_spec(model, x)
    swap = torch.arange(16)
    swap[[0, 1]] = swap[[1, 0]]
    # One conv's out-channels permuted, but not its BN and not the next conv's in-channels.
    broken = dict(state, **{"blocks.0.conv1.weight": state["blocks.0.conv1.weight"][swap]})
    with pytest.raises(AlignmentError, match="different function"):
        check_same_function(model, state, broken, x)
    # Conv and next conv permuted consistently, but the BN between them left alone: only the
    # BN parameters and running statistics can reveal this.
    bn_unpermuted = {
        k: (None,) if k.startswith("blocks.0.bn1.") and axes else axes
        for k, axes in spec.axes.items()
    }
    wrong = dataclasses.replace(spec, axes=bn_unpermuted)
    perms = {g: swap if g == "blocks.0.conv1" else torch.arange(n) for g, n in spec.groups.items()}
    with pytest.raises(AlignmentError, match="tolerance"):
        check_same_function(model, state, apply_permutation(wrong, perms, state), x)
    # Only the running statistics forgotten.
    stats_unpermuted = {
        k: (None,) if k.startswith("blocks.0.bn1.running") else axes
        for k, axes in spec.axes.items()
    }
    wrong = dataclasses.replace(spec, axes=stats_unpermuted)
    with pytest.raises(AlignmentError, match="different function"):
        check_same_function(model, state, apply_permutation(wrong, perms, state), x)


def test_align_always_checks_the_function(monkeypatch):
    # Catches an align() that trusts the spec: a wrong one must fail, not return a wrong point.
    model, x = _model("cnn-8x2", (1, 8, 8))
    other, _ = _model("cnn-8x2", (1, 8, 8), seed=1)
    real = permutation_spec

    def wrong_spec(model, inputs):
        spec = real(model, inputs)
        # Pretend the flattened features are channel-minor (index s*C + c): a classic bug.
        axes = dict(spec.axes)
        axes["classifier.1.weight"] = (axes["classifier.1.weight"][0], None)
        return dataclasses.replace(spec, axes=axes)

    monkeypatch.setattr(alignment, "permutation_spec", wrong_spec)
    with pytest.raises(AlignmentError, match="different function"):
        align(model, model.state_dict(), other.state_dict(), x)


@pytest.mark.parametrize("name,shape", [("resnet-8", (3, 8, 8)), ("densenet-bc-10-4", (3, 8, 8))])
def test_independent_models_get_closer_and_result_is_deterministic(name, shape):
    # Catches a matching that increases the distance, and hidden randomness (unseeded order).
    model, x = _model(name, shape, seed=0)
    other, _ = _model(name, shape, seed=1)
    a, b = model.state_dict(), other.state_dict()
    first = align(model, a, b, x, seed=3)
    again = align(model, a, b, x, seed=3)
    assert first.distance_after < first.distance_before
    assert first.max_output_diff < 1e-4
    assert first.sweeps == again.sweeps and first.distance_after == again.distance_after
    assert all(torch.equal(first.perms[g], again.perms[g]) for g in first.perms)
    assert all(torch.equal(first.state[k], again.state[k]) for k in first.state)
    assert all(torch.equal(b[k], other.state_dict()[k]) for k in b)  # inputs left untouched
    spec = permutation_spec(model, x)
    assert weight_matching(spec, a, b, max_iter=1)[1] == 1


class _WithLayerNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.norm = nn.LayerNorm(16)
        self.fc2 = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(self.fc1(x)))


class _WithAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Module()])
        self.blocks[0].attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.blocks[0].attn(x, x, x)
        return self.fc(y[:, 0])


class _WithSoftmax(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.softmax(self.fc1(x), dim=1))


class _BroadcastAdd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(3, 1, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.a(x) + self.b(x), 1).flatten(1))


@pytest.mark.parametrize(
    "model,x,message",
    [
        (_WithLayerNorm(), torch.randn(4, 8), r"module 'norm' \(LayerNorm\)"),
        (_WithAttention(), torch.randn(4, 3, 8), r"module 'blocks.0.attn' \(MultiheadAttention\)"),
        (_WithSoftmax(), torch.randn(4, 8), r"'softmax' in the top-level forward"),
        (_BroadcastAdd(), torch.randn(4, 3, 4, 4), r"'add' .* combines 4 and 1 channels"),
    ],
)
def test_unsupported_model_is_refused_by_name(model, x, message):
    # Catches an unknown op being skipped silently (its weights would be left unpermuted or its
    # channel mixing ignored) and a broadcasting add unified as if sizes matched.
    with pytest.raises(AlignmentError, match=message):
        permutation_spec(model, x)


def test_resnet_stream_is_one_group_per_stage():
    # Catches residual streams not tied together (each conv2 its own group: the add would then
    # mix differently permuted channels) and option-A padding channels tied to real ones.
    model, x = _model("resnet-20", (3, 8, 8))
    spec = permutation_spec(model, x)
    out = lambda key: spec.axes[key][0]  # noqa: E731
    stream1 = (Segment("conv", 16),)
    stream2 = (*stream1, Segment("blocks.3.shortcut.pad", 16))
    stream3 = (*stream2, Segment("blocks.6.shortcut.pad", 32))
    assert out("conv.weight") == out("bn.running_mean") == stream1
    streams_out = [stream1] * 3 + [stream2] * 3 + [stream3] * 3
    streams_in = [stream1] * 4 + [stream2] * 3 + [stream3] * 2  # a block reads the last stream
    for block in range(9):
        assert out(f"blocks.{block}.conv2.weight") == streams_out[block]
        assert out(f"blocks.{block}.bn2.running_var") == streams_out[block]
        assert spec.axes[f"blocks.{block}.conv1.weight"][1] == streams_in[block]
    assert spec.axes["fc.weight"] == (None, stream3)  # the classifier's outputs stay fixed
    assert spec.axes["fc.bias"] == (None,)
    assert spec.groups["blocks.3.shortcut.pad"] == 16 and spec.groups["blocks.6.shortcut.pad"] == 32
    # 1 stem/stream + 2 pad groups + one inner group per block.
    assert len(spec.groups) == 3 + 9

    proj, x = _model("resnet-20-proj", (3, 8, 8))
    spec = permutation_spec(proj, x)
    for stage, first in enumerate((0, 3, 6)):
        group = "conv" if stage == 0 else f"blocks.{first}.conv2"
        size = 16 * 2**stage
        for block in range(first, first + 3):
            assert spec.axes[f"blocks.{block}.conv2.weight"][0] == (Segment(group, size),)
        if stage:  # the projection writes the new stream and reads the previous one
            shortcut = spec.axes[f"blocks.{first}.shortcut.0.weight"]
            assert shortcut[0] == (Segment(group, size),)
            assert shortcut[1] == spec.axes[f"blocks.{first - 1}.conv2.weight"][0]
            assert spec.axes[f"blocks.{first}.shortcut.1.running_mean"][0] == shortcut[0]
    assert len(spec.groups) == 3 + 9


class _ViewNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).view(x.size(0), -1))


class _SharedLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc0 = nn.Linear(8, 16)
        self.shared = nn.Linear(16, 16)
        self.out = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.shared(F.relu(self.fc0(x))))
        return self.out(F.relu(self.shared(h)))


@pytest.mark.parametrize(
    "model,x,groups",
    [
        (_ViewNet(), torch.randn(16, 1, 4, 4), {"conv": 4}),
        (_SharedLayer(), torch.randn(16, 8), {"fc0": 16}),
    ],
)
def test_view_and_shared_module(model, x, groups):
    # Catches x.view(x.size(0), -1) being refused or mis-ordered, and a module called twice
    # getting two independent permutations (its one weight cannot carry both).
    spec = permutation_spec(model, x)
    assert spec.groups == groups
    state = model.state_dict()
    permuted = apply_permutation(spec, _random_perms(spec), state)
    check_same_function(model, state, permuted, x)
    result = align(model, state, permuted, x)
    assert result.distance_after == pytest.approx(0.0, abs=1e-9)


def test_flatten_repeats_each_channel_and_buffers_stay_out_of_the_objective():
    # Catches a channel-minor flatten (c + C*s) and running statistics entering the matching.
    model, x = _model("cnn-8x2", (1, 8, 8))
    spec = permutation_spec(model, x)
    assert spec.axes["classifier.1.weight"][1] == (Segment("features.4", 8, repeat=4),)
    assert spec.axes["features.2.num_batches_tracked"] == ()
    assert "features.2.running_var" in spec.axes and "features.2.running_var" not in spec.parameters
    state = model.state_dict()
    noisy = {k: v + 5 * torch.randn_like(v) if "running" in k else v for k, v in state.items()}
    perms, _ = weight_matching(spec, state, noisy)
    assert all(torch.equal(p, torch.arange(len(p))) for p in perms.values())


def test_bad_inputs_raise_alignment_error():
    model, x = _model("mlp-16x2", (64,))
    spec = permutation_spec(model, x)
    state = model.state_dict()
    with pytest.raises(AlignmentError, match="permutation of 16"):
        apply_permutation(spec, {"net.1": torch.zeros(16, dtype=torch.long)}, state)
    with pytest.raises(AlignmentError, match="keys"):
        weight_matching(spec, state, {k: v for k, v in state.items() if k != "net.1.bias"})
    small, _ = _model("mlp-8x2", (64,))
    with pytest.raises(AlignmentError, match="shape"):
        apply_permutation(spec, _random_perms(spec), small.state_dict())
