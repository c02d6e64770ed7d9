"""Nudged Elastic Band with redistribution (Algorithm 1 of Draxler et al., 2018).

A path is a tensor ``[N+2, D]`` of pivots whose first and last rows are the fixed endpoints.
Each NEB step (Sec. 3.1, "string method" variant with the spring force replaced by an explicit
re-distribution):

1. **redistribute** the interior pivots on the current polyline at the cumulative arc-length
   fractions given by the target weights of the gaps (:func:`redistribute`);
2. evaluate losses and gradients of all pivots on one common mini-batch;
3. compute the improved tangent of Henkelman & Jonsson (2000), eqs. 8-11 (:func:`tangents`);
4. add the L2 decay to each gradient and remove its component along the tangent (:func:`project`);
5. take one optimiser step on the interior pivots.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .energy import Energy
from .errors import ConfigError, DivergenceError
from .progress import Progress

log = logging.getLogger("nobarriers")

_EXCLUDED_OPTIMIZERS = {"Optimizer", "LBFGS", "SparseAdam"}  # need closures / sparse gradients


def optimizer_names() -> list[str]:
    """Names of the ``torch.optim`` optimisers usable for NEB."""
    return sorted(
        name
        for name in dir(torch.optim)
        if name not in _EXCLUDED_OPTIMIZERS
        and isinstance(getattr(torch.optim, name), type)
        and issubclass(getattr(torch.optim, name), torch.optim.Optimizer)
    )


def make_optimizer(
    name: str, params: list[Tensor], lr: float, kwargs: dict | None = None
) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimiser chosen by class name; the paper uses ``SGD`` momentum 0.9."""
    kwargs = dict(kwargs or {})
    valid = optimizer_names()
    if name not in valid:
        raise ConfigError(f"unknown optimizer {name!r}; valid names: {', '.join(valid)}")
    for key in ("lr", "weight_decay"):
        if key in kwargs:
            raise ConfigError(
                f"optimizer_kwargs must not set {key!r}: the learning rate comes from the cycle "
                "schedule and the L2 decay is the config's weight_decay (applied before projection)"
            )
    try:
        return getattr(torch.optim, name)(params, lr=lr, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optimizer {name} rejects optimizer_kwargs {kwargs}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------


def redistribute(pivots: Tensor, target_weights) -> Tensor:
    """Move the interior pivots onto the polyline through ``pivots`` so that gap ``j`` spans the
    fraction ``target_weights[j] / sum(target_weights)`` of its arc length; endpoints stay.

    ``pivots``: ``[N+2, D]``; ``target_weights``: ``N+1`` positive numbers. Returns a new tensor.
    Arc lengths are accumulated in float64.
    """
    n = pivots.shape[0]
    weights = torch.as_tensor(np.asarray(target_weights, dtype=np.float64))
    if weights.shape != (n - 1,):
        raise ConfigError(f"{n} pivots need {n - 1} target weights, got {tuple(weights.shape)}")
    if not bool((weights > 0).all()):
        raise ConfigError("target weights must be positive")
    if n <= 2:
        return pivots.clone()
    seg = (pivots[1:] - pivots[:-1]).norm(dim=1).double().cpu()  # [N+1]
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), seg.cumsum(0)])  # [N+2]
    total = cum[-1]
    if total <= 0:
        return pivots.clone()
    targets = (weights.cumsum(0)[:-1] / weights.sum()) * total  # [N] arc length of interior pivots
    # segment k with cum[k] <= target < cum[k+1] (zero-length segments are skipped)
    k = torch.searchsorted(cum, targets, right=True) - 1
    k = k.clamp(0, n - 2)
    frac = torch.where(seg[k] > 0, (targets - cum[k]) / seg[k].clamp_min(1e-300), 0.0).clamp(0, 1)
    frac = frac.to(device=pivots.device, dtype=pivots.dtype).unsqueeze(1)
    k = k.to(pivots.device)
    out = pivots.clone()
    out[1:-1] = pivots[k] + frac * (pivots[k + 1] - pivots[k])
    return out


def tangents(pivots: Tensor, energies: Tensor) -> Tensor:
    """Unit tangents ``[N, D]`` at the interior pivots (Henkelman & Jonsson 2000, eqs. 8-11).

    With ``tau+ = p[i+1] - p[i]``, ``tau- = p[i] - p[i-1]`` and energies ``V``:

    * ``V[i+1] > V[i] > V[i-1]``: ``tau = tau+`` (towards the higher neighbour);
    * ``V[i+1] < V[i] < V[i-1]``: ``tau = tau-``;
    * otherwise (``p[i]`` is a local extremum along the chain), with
      ``dV_max = max(|V[i+1]-V[i]|, |V[i-1]-V[i]|)`` and ``dV_min`` the minimum:
      ``tau = tau+ dV_max + tau- dV_min`` if ``V[i+1] > V[i-1]``, else
      ``tau = tau+ dV_min + tau- dV_max`` (the published weights; the authors' code swaps them).

    Tangents are normalised. If the weighted sum vanishes (all three energies equal) the bisector
    ``tau+/|tau+| + tau-/|tau-|`` is used; coincident pivots give a zero tangent (no projection).
    """
    if pivots.shape[0] < 3:
        return pivots.new_zeros((0, pivots.shape[1]))
    v = energies.to(device=pivots.device, dtype=torch.float64)
    v_prev, v_mid, v_next = v[:-2], v[1:-1], v[2:]
    tau_plus = pivots[2:] - pivots[1:-1]
    tau_minus = pivots[1:-1] - pivots[:-2]

    d_next = (v_next - v_mid).abs()
    d_prev = (v_prev - v_mid).abs()
    dv_max = torch.maximum(d_next, d_prev)
    dv_min = torch.minimum(d_next, d_prev)
    w_plus = torch.where(v_next > v_prev, dv_max, dv_min)
    w_minus = torch.where(v_next > v_prev, dv_min, dv_max)
    up = (v_next > v_mid) & (v_mid > v_prev)
    down = (v_next < v_mid) & (v_mid < v_prev)
    w_plus = torch.where(up, 1.0, torch.where(down, 0.0, w_plus))
    w_minus = torch.where(up, 0.0, torch.where(down, 1.0, w_minus))

    dtype = pivots.dtype
    tau = tau_plus * w_plus.to(dtype).unsqueeze(1) + tau_minus * w_minus.to(dtype).unsqueeze(1)
    norm = tau.norm(dim=1, keepdim=True)
    bisector = _unit(tau_plus) + _unit(tau_minus)
    tau = torch.where(norm > 0, tau, bisector)
    return _unit(tau)


def _unit(v: Tensor) -> Tensor:
    norm = v.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, v / norm.clamp_min(torch.finfo(v.dtype).tiny), torch.zeros_like(v))


def project(grads: Tensor, tangent: Tensor) -> Tensor:
    """Remove from each row of ``grads`` its component along the unit ``tangent`` (eq. 2)."""
    return grads - (grads * tangent).sum(dim=1, keepdim=True) * tangent


# --------------------------------------------------------------------------------------------
# the NEB step
# --------------------------------------------------------------------------------------------


@dataclass
class StepInfo:
    """What one NEB step saw: pivot losses ``[N+2]`` on its batch (before the update)."""

    step: int
    losses: Tensor

    @property
    def max_loss(self) -> float:
        return float(self.losses.max())


class NEBStep:
    """Algorithm 1's loop body for a fixed set of pivots; one instance per cycle (fresh optimiser).

    Args:
        energy: the :class:`~nobarriers.energy.Energy`.
        pivots: ``[N+2, D]`` initial path, endpoints included (copied).
        target_weights: ``N+1`` relative target arc lengths of the gaps.
        optimizer, optimizer_kwargs, lr: ``torch.optim`` class name, its kwargs, learning rate.
        weight_decay: L2 coefficient added to each pivot's gradient before projection.
        common_batch: one batch for all pivots of a step (else one batch per pivot, as the authors).
        cycle: label used in log lines and errors.
    """

    def __init__(
        self,
        energy: Energy,
        pivots: Tensor,
        target_weights,
        optimizer: str = "SGD",
        optimizer_kwargs: dict | None = None,
        lr: float = 0.1,
        weight_decay: float = 0.0,
        common_batch: bool = True,
        cycle: int | str = "?",
    ):
        if pivots.dim() != 2 or pivots.shape[0] < 3:
            raise ConfigError(f"NEB needs [N+2, D] pivots with N >= 1, got {tuple(pivots.shape)}")
        self.energy = energy
        self.start = pivots[0].detach().clone()
        self.end = pivots[-1].detach().clone()
        self.interior = pivots[1:-1].detach().clone().requires_grad_(True)
        self.target_weights = np.asarray(target_weights, dtype=np.float64)
        self.weight_decay = float(weight_decay)
        self.common_batch = common_batch
        self.cycle = cycle
        self.step_count = 0
        self.optimizer = make_optimizer(optimizer, [self.interior], lr, optimizer_kwargs)

    @property
    def pivots(self) -> Tensor:
        """The current path ``[N+2, D]`` (detached copy)."""
        return torch.cat([self.start[None], self.interior.detach(), self.end[None]])

    def _evaluate(self, path: Tensor, generator: torch.Generator | None):
        energy = self.energy
        ends = torch.stack([path[0], path[-1]])
        if self.common_batch:
            batch = energy.sample_batch(generator)
            losses, grads = energy.losses_and_grads(path[1:-1], batch)
            end_losses = energy.losses(ends, batch)
        else:  # one batch per pivot (the authors' behaviour)
            parts = [energy.losses_and_grads(p[None], energy.sample_batch(generator)) for p in path]
            losses = torch.cat([lo for lo, _ in parts[1:-1]])
            grads = torch.cat([g for _, g in parts[1:-1]])
            end_losses = torch.cat([parts[0][0], parts[-1][0]])
        all_losses = torch.cat([end_losses[:1], losses, end_losses[1:]])
        return all_losses, grads

    def step(self, generator: torch.Generator | None = None) -> StepInfo:
        """Redistribute, evaluate, project and update once; raises :class:`DivergenceError`."""
        self.step_count += 1
        with torch.no_grad():
            path = redistribute(self.pivots, self.target_weights)
            self.interior.copy_(path[1:-1])
        all_losses, grads = self._evaluate(path, generator)
        if not bool(torch.isfinite(all_losses).all()):
            raise DivergenceError(
                f"NEB diverged in cycle {self.cycle}, step {self.step_count}: "
                f"pivot losses {all_losses.tolist()}"
            )
        with torch.no_grad():
            tau = tangents(path, all_losses)
            force = project(grads.to(path.dtype) + self.weight_decay * path[1:-1], tau)
            if not bool(torch.isfinite(force).all()):
                raise DivergenceError(
                    f"NEB diverged in cycle {self.cycle}, step {self.step_count}: "
                    "non-finite gradient"
                )
        self.interior.grad = force
        self.optimizer.step()
        self.interior.grad = None
        return StepInfo(self.step_count, all_losses.detach())


def run_neb(
    energy: Energy,
    pivots: Tensor,
    target_weights,
    steps: int,
    lr: float,
    optimizer: str = "SGD",
    optimizer_kwargs: dict | None = None,
    weight_decay: float = 0.0,
    generator: torch.Generator | None = None,
    common_batch: bool = True,
    cycle: int | str = "?",
    progress: Progress | None = None,
) -> tuple[Tensor, StepInfo | None]:
    """Run ``steps`` NEB steps (one cycle, fresh optimiser) and return the final path
    ``[N+2, D]`` (not redistributed after the last update, as in Algorithm 1) and the last step's
    info. ``progress`` is updated once per step with the cycle label and the highest pivot loss
    of the step's batch."""
    neb = NEBStep(
        energy,
        pivots,
        target_weights,
        optimizer=optimizer,
        optimizer_kwargs=optimizer_kwargs,
        lr=lr,
        weight_decay=weight_decay,
        common_batch=common_batch,
        cycle=cycle,
    )
    info = None
    for _ in range(steps):
        info = neb.step(generator)
        if progress is not None:
            progress.update(cycle=cycle, max_loss=info.max_loss)
    return neb.pivots, info
