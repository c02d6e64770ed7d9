"""nobarriers.engine.optim.SGD: torch.optim.SGD's update bit for bit (and resumes identically)."""

import pytest
import torch

from nobarriers.engine.optim import SGD


def run(opt_class, steps, nesterov, state=None, params=None):
    torch.manual_seed(0)
    w = params if params is not None else [torch.randn(5, 3, requires_grad=True),
                                           torch.randn(3, requires_grad=True)]  # fmt: skip
    opt = opt_class(w, lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=1e-4)
    if state is not None:
        opt.load_state_dict(state)
    x = torch.randn(16, 5)
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = ((x @ w[0] + w[1]).tanh() ** 2).mean() * (1 + step)
        loss.backward()
        opt.step()
    return w, opt


@pytest.mark.parametrize("nesterov", [False, True])
def test_bitwise_equal_to_torch_sgd(nesterov):
    ours, _ = run(SGD, 7, nesterov)
    theirs, _ = run(torch.optim.SGD, 7, nesterov)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def test_state_dict_round_trip_resumes_identically():
    full, _ = run(SGD, 6, False)
    half, opt = run(SGD, 3, False)
    state = opt.state_dict()
    assert set(state["state"]) == {0, 1} and "momentum_buffer" in state["state"][0]
    params = [p.detach().clone().requires_grad_(True) for p in half]
    torch.manual_seed(0)
    resumed = SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    resumed.load_state_dict(state)
    x = (torch.manual_seed(0), torch.randn(5, 3), torch.randn(3), torch.randn(16, 5))[-1]
    for step in range(3, 6):
        resumed.zero_grad()
        ((x @ params[0] + params[1]).tanh() ** 2).mean().mul(1 + step).backward()
        resumed.step()
    for a, b in zip(full, params, strict=True):
        assert torch.equal(a, b)


def test_invalid_settings():
    with pytest.raises(ValueError):
        SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.0, nesterov=True)
