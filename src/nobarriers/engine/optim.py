"""Optimisers: SGD bit-equal to ``torch.optim.SGD``, and any ``torch.optim`` class by name.

The paper trains and runs NEB with plain SGD + momentum. ``torch.optim`` optimisers import
``torch._dynamo`` on construction (about 2 s of CPU per process), which on CPU-sized jobs costs
more than the work itself; this class performs the same arithmetic, in the same order, without it
(``tests/test_optim.py`` checks bit-equality with ``torch.optim.SGD``). Its ``state_dict`` has
torch's layout, so checkpoints hold only tensors and numbers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.errors import ConfigError
from ..settings.autoneb_config import OPTIMIZERS


class SGD:
    """``torch.optim.SGD(params, lr, momentum, nesterov=..., weight_decay=...)`` (dampening 0)."""

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"invalid SGD settings lr={lr}, momentum={momentum}, weight_decay={weight_decay}"
            )
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum requires a momentum > 0")
        group = {
            "params": list(params),
            "lr": lr,
            "momentum": momentum,
            "dampening": 0,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
        }
        self.param_groups = [group]
        self.state: dict[int, Tensor] = {}  # parameter index -> momentum buffer

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, momentum = group["lr"], group["momentum"]
        for i, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            d_p = p.grad
            if group["weight_decay"] != 0:
                d_p = d_p.add(p, alpha=group["weight_decay"])
            if momentum != 0:
                buf = self.state.get(i)
                if buf is None:
                    buf = torch.clone(d_p).detach()
                    self.state[i] = buf
                else:
                    buf.mul_(momentum).add_(d_p)
                d_p = d_p.add(buf, alpha=momentum) if group["nesterov"] else buf
            p.add_(d_p, alpha=-lr)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def state_dict(self) -> dict:
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(self.param_groups[0]["params"])))
        return {
            "state": {i: {"momentum_buffer": buf} for i, buf in self.state.items()},
            "param_groups": [group],
        }

    def load_state_dict(self, state: dict) -> None:
        (group,) = state["param_groups"]
        if len(group["params"]) != len(self.param_groups[0]["params"]):
            raise ValueError("optimizer state has a different number of parameters")
        for key in ("lr", "momentum", "weight_decay", "nesterov"):
            self.param_groups[0][key] = group[key]
        params = self.param_groups[0]["params"]
        self.state = {
            int(i): s["momentum_buffer"].to(params[int(i)].device).clone()
            for i, s in state["state"].items()
            if s.get("momentum_buffer") is not None
        }


def make_optimizer(
    name: str, params: list[Tensor], lr: float, kwargs: dict | None = None
) -> torch.optim.Optimizer | SGD:
    """A ``torch.optim`` optimiser chosen by class name; the paper uses ``SGD`` momentum 0.9."""
    kwargs = dict(kwargs or {})
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}")
    for key in ("lr", "weight_decay"):
        if key in kwargs:
            raise ConfigError(
                f"optimizer_kwargs must not set {key!r}: the learning rate comes from the cycle "
                "schedule and the L2 decay is the config's weight_decay (applied before projection)"
            )
    if name == "SGD" and set(kwargs) <= {"momentum", "nesterov"}:
        # Same update as torch.optim.SGD, without importing torch._dynamo (see this module).
        try:
            return SGD(params, lr=lr, **kwargs)
        except ValueError as exc:
            raise ConfigError(f"optimizer SGD rejects optimizer_kwargs {kwargs}: {exc}") from exc
    try:
        return getattr(torch.optim, name)(params, lr=lr, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optimizer {name} rejects optimizer_kwargs {kwargs}: {exc}") from exc
