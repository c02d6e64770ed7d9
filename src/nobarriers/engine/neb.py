"""Nudged Elastic Band with redistribution (Algorithm 1 of Draxler et al., 2018).

Each NEB step (Sec. 3.1, "string method" variant with the spring force replaced by an explicit
re-distribution; the geometry is :mod:`nobarriers.nn.path_geometry`):

1. **redistribute** the interior pivots on the current polyline at the cumulative arc-length
   fractions given by the target weights of the gaps;
2. evaluate losses and gradients of all pivots on one common mini-batch;
3. compute the improved tangent of Henkelman & Jonsson (2000), eqs. 8-11;
4. add the L2 decay to each gradient and remove its component along the tangent;
5. take one optimiser step on the interior pivots.

Climbing image (Henkelman, Uberuaga & Jonsson 2000; an option, not the paper's): one interior
pivot, the climber, is left out of the redistribution -- the pivots on either side of it are
redistributed on their own part of the path -- and its force has the tangential component
reversed instead of removed (``f - 2 (f . tau) tau / |tau|^2``): it descends across the path and
climbs along it, so it converges to the saddle point itself rather than sampling near it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..core.errors import ConfigError, DivergenceError
from ..core.progress import Progress
from ..nn.path_geometry import (
    _check_weights,
    _place_on_polyline,
    _redistribution,
    _segment_lengths,
    _tangent_directions,
    project_,
)
from ..settings.autoneb_config import NEBSettings
from .energy import Energy
from .optim import make_optimizer


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
        energy: the :class:`~nobarriers.engine.energy.Energy`.
        pivots: ``[N+2, D]`` initial path, endpoints included (copied).
        target_weights: ``N+1`` relative target arc lengths of the gaps.
        lr: learning rate of the cycle.
        settings: optimiser, L2 decay and batch sharing (:class:`NEBSettings`; default: the
            paper's SGD with momentum 0.9 and decay 1e-4 on one common batch).
        endpoint_losses: fixed losses of the two endpoints for the tangents (``None``: evaluate
            them on every step's batch, as the authors' code).
        cycle: label used in log lines and errors.
        climbing: interior index (0-based) of the climbing pivot, or ``None`` (plain NEB).
    """

    def __init__(
        self,
        energy: Energy,
        pivots: Tensor,
        target_weights,
        lr: float,
        settings: NEBSettings | None = None,
        endpoint_losses: Tensor | None = None,
        cycle: int | str = "?",
        climbing: int | None = None,
    ):
        if pivots.dim() != 2 or pivots.shape[0] < 3:
            raise ConfigError(f"NEB needs [N+2, D] pivots with N >= 1, got {tuple(pivots.shape)}")
        settings = settings if settings is not None else NEBSettings()
        self.energy = energy
        # one preallocated [N+2, D] buffer; the optimiser updates its interior rows in place
        # (a view), so no step concatenates or copies the whole path
        self._path = pivots.detach().clone()
        self.start = self._path[0]
        self.end = self._path[-1]
        self.interior = self._path[1:-1]
        # scratch buffers reused by every step: segments [N+1, D], redistributed pivots and
        # tangents [N, D], gradients [N, D] (fresh multi-MB temporaries per step cost more than
        # the arithmetic on a CPU)
        n, dim = self.interior.shape
        self._diff = self._path.new_empty((n + 1, dim))
        self._work = self._path.new_empty((n, dim))
        self._grads = self._path.new_empty((n, dim))
        self.target_weights = _check_weights(pivots.shape[0], target_weights)
        self.weight_decay = float(settings.weight_decay)
        self.common_batch = settings.common_batch
        if endpoint_losses is not None and tuple(endpoint_losses.shape) != (2,):
            raise ConfigError(f"endpoint_losses must hold 2 values, got {endpoint_losses.shape}")
        self.endpoint_losses = endpoint_losses
        self.cycle = cycle
        if climbing is not None and not 0 <= int(climbing) < n:
            raise ConfigError(f"climbing pivot {climbing} is not one of the {n} interior pivots")
        self.climbing = None if climbing is None else int(climbing)
        self.step_count = 0
        self.optimizer = make_optimizer(
            settings.optimizer, [self.interior], lr, settings.optimizer_kwargs
        )

    @property
    def pivots(self) -> Tensor:
        """The current path ``[N+2, D]`` (detached copy)."""
        return self._path.clone()

    def _evaluate(self, path: Tensor, generator: torch.Generator | None):
        energy = self.energy
        if self.common_batch:
            batch = energy.sample_batch(generator)
            return energy.path_losses_and_grads(
                path, batch, out=self._grads, endpoint_losses=self.endpoint_losses
            )
        # one batch per pivot (the authors' behaviour)
        ends = self.endpoint_losses
        pivots = path if ends is None else path[1:-1]
        parts = [energy.losses_and_grads(p[None], energy.sample_batch(generator)) for p in pivots]
        losses = torch.cat([lo for lo, _ in parts])
        if ends is None:
            return losses, torch.cat([g for _, g in parts[1:-1]])
        ends = ends.to(losses)
        return torch.cat([ends[:1], losses, ends[1:]]), torch.cat([g for _, g in parts])

    def _redistribute(self, path: Tensor, diff: Tensor, work: Tensor) -> None:
        """Move the interior pivots to their target arc lengths on the current polyline; with a
        climber, the pivots before and after it each on their own part of the path."""
        parts = [(0, path.shape[0] - 1)]  # (first, last) path index of each part
        if self.climbing is not None:
            c = self.climbing + 1
            parts = [(0, c), (c, path.shape[0] - 1)]
        for first, last in parts:
            if last - first < 2:  # no pivot between
                continue
            weights = self.target_weights[first:last]
            where = _redistribution(_segment_lengths(diff[first:last]), weights)
            if where is not None:
                part, inner, scratch = (
                    path[first : last + 1],
                    path[first + 1 : last],
                    work[first : last - 1],
                )
                _place_on_polyline(part, diff[first:last], *where, out=inner, work=scratch)

    def step(self, generator: torch.Generator | None = None) -> StepInfo:
        """Redistribute, evaluate, project and update once; raises :class:`DivergenceError`.

        Per step exactly three small host transfers happen (the ``N+1`` segment lengths for the
        redistribution, the ``N+2`` losses, and the ``2N`` dot products of the projection);
        everything of size ``D`` stays on the device, in preallocated buffers."""
        self.step_count += 1
        path, diff, work = self._path, self._diff, self._work
        with torch.no_grad():
            torch.sub(path[1:], path[:-1], out=diff)
            self._redistribute(path, diff, work)
        all_losses, grads = self._evaluate(path, generator)
        with torch.no_grad():
            v = all_losses.detach().to(torch.float64).cpu().numpy()
            if not np.isfinite(v).all():
                raise DivergenceError(
                    f"NEB diverged in cycle {self.cycle}, step {self.step_count}: "
                    f"pivot losses {v.tolist()}"
                )
            force = grads.detach().to(path.dtype)  # a fresh or scratch buffer: updated in place
            if self.weight_decay:
                force.add_(self.interior, alpha=self.weight_decay)
            torch.sub(path[1:], path[:-1], out=diff)
            tau = _tangent_directions(diff, v, out=work)
            f_tau = project_(force, tau, diff)
            if self.climbing is not None:
                # The climber climbs the loss along the path (the reported saddle is the loss's)
                # and, like every pivot, descends the decayed energy across it: add back the
                # tangential part of the loss gradient alone, reversed. f_tau[c] is the force's
                # (gradient + decay) tangential part the projection removed.
                c = self.climbing
                tau_tau = float(tau[c].dot(tau[c]))
                if tau_tau > 0:
                    loss_tau = float(f_tau[c])
                    if self.weight_decay:
                        loss_tau -= self.weight_decay * float(self.interior[c].dot(tau[c]))
                    force[c].add_(tau[c], alpha=-loss_tau / tau_tau)
            if not np.isfinite(f_tau).all():
                raise DivergenceError(
                    f"NEB diverged in cycle {self.cycle}, step {self.step_count}: "
                    "non-finite gradient"
                )
            self.interior.grad = force
            self.optimizer.step()
            self.interior.grad = None
        return StepInfo(self.step_count, torch.from_numpy(v))


def run_neb(
    energy: Energy,
    pivots: Tensor,
    target_weights,
    steps: int,
    lr: float,
    settings: NEBSettings | None = None,
    generator: torch.Generator | None = None,
    endpoint_losses: Tensor | None = None,
    cycle: int | str = "?",
    progress: Progress | None = None,
    climbing: int | None = None,
) -> tuple[Tensor, StepInfo | None]:
    """Run ``steps`` NEB steps (one cycle, fresh optimiser) and return the final path
    ``[N+2, D]`` (not redistributed after the last update, as in Algorithm 1) and the last step's
    info. ``progress`` is updated once per step with the cycle label and the highest pivot loss
    of the step's batch. ``climbing``: the climbing pivot (:class:`NEBStep`)."""
    neb = NEBStep(energy, pivots, target_weights, lr, settings, endpoint_losses, cycle, climbing)
    info = None
    for _ in range(steps):
        info = neb.step(generator)
        if progress is not None:
            progress.update(cycle=cycle, max_loss=info.max_loss)
    return neb.pivots, info
