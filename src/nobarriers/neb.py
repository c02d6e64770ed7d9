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
from .optim import SGD
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
) -> torch.optim.Optimizer | SGD:
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
    if name == "SGD" and set(kwargs) <= {"momentum", "nesterov"}:
        # Same update as torch.optim.SGD, without importing torch._dynamo (see nobarriers.optim).
        try:
            return SGD(params, lr=lr, **kwargs)
        except ValueError as exc:
            raise ConfigError(f"optimizer SGD rejects optimizer_kwargs {kwargs}: {exc}") from exc
    try:
        return getattr(torch.optim, name)(params, lr=lr, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optimizer {name} rejects optimizer_kwargs {kwargs}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------


def _segment_lengths(diff: Tensor) -> np.ndarray:
    """Lengths ``[N+1]`` of the segments ``diff = pivots[1:] - pivots[:-1]``, as float64 numpy
    (the only values of the redistribution that leave the device)."""
    return torch.linalg.vector_norm(diff, dim=1).double().cpu().numpy()


def _redistribution(seg: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Segment index ``k`` [N] and fraction ``frac`` [N] of each redistributed interior pivot on
    the polyline with segment lengths ``seg`` [N+1] (arc lengths accumulated in float64 on the
    host). ``None``: the polyline has zero length."""
    n = seg.shape[0] + 1
    cum = np.concatenate([[0.0], np.cumsum(seg)])  # [N+2]
    total = cum[-1]
    if not total > 0:
        return None
    targets = (np.cumsum(weights)[:-1] / weights.sum()) * total  # [N] arc length of the pivots
    # segment k with cum[k] <= target < cum[k+1] (zero-length segments are skipped)
    k = np.clip(np.searchsorted(cum, targets, side="right") - 1, 0, n - 2)
    seg_k = seg[k]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(seg_k > 0, (targets - cum[k]) / np.maximum(seg_k, 1e-300), 0.0)
    return k, np.clip(frac, 0.0, 1.0)


#: paths with more elements ([N, D]) than this are updated row by row with fused operations
#: (no multi-MB temporaries); smaller ones with a few vectorised operations, whose temporaries
#: are cheap and which save a Python-level call per pivot
ROW_WISE_ABOVE = 1 << 18


def _place_on_polyline(
    pivots: Tensor, diff: Tensor, k: np.ndarray, frac: np.ndarray, out: Tensor, work: Tensor
) -> None:
    """``out[i] = pivots[k_i] + frac_i * diff[k_i]`` through the ``[N, D]`` scratch buffer
    ``work`` (``out`` may be rows of ``pivots``): for large paths one fused row operation per
    pivot, two passes over the path and no temporaries, which on a CPU cost more than the
    arithmetic."""
    if out.numel() > ROW_WISE_ABOVE:
        for i, (row, fraction) in enumerate(zip(k.tolist(), frac.tolist(), strict=True)):
            torch.add(pivots[row], diff[row], alpha=fraction, out=work[i])
    else:
        rows = torch.from_numpy(k).to(pivots.device)
        fractions = torch.from_numpy(frac).to(device=pivots.device, dtype=pivots.dtype)
        torch.index_select(pivots, 0, rows, out=work)
        work.addcmul_(diff.index_select(0, rows), fractions.unsqueeze(1))
    out.copy_(work)


def _row_dots(a: Tensor, b: Tensor) -> Tensor:
    """Dot products of the rows of ``a`` and ``b`` ([N, D] -> [N]); for large paths one BLAS
    ``dot`` per row, which reads each row once (``linalg.vecdot`` materialises the product)."""
    if a.numel() > ROW_WISE_ABOVE:
        return torch.stack([torch.dot(x, y) for x, y in zip(a, b, strict=True)])
    return (a * b).sum(dim=1)


def _check_weights(n: int, target_weights) -> np.ndarray:
    weights = np.asarray(target_weights, dtype=np.float64)
    if weights.shape != (n - 1,):
        raise ConfigError(f"{n} pivots need {n - 1} target weights, got {tuple(weights.shape)}")
    if not bool((weights > 0).all()):
        raise ConfigError("target weights must be positive")
    return weights


def redistribute(pivots: Tensor, target_weights) -> Tensor:
    """Move the interior pivots onto the polyline through ``pivots`` so that gap ``j`` spans the
    fraction ``target_weights[j] / sum(target_weights)`` of its arc length; endpoints stay.

    ``pivots``: ``[N+2, D]``; ``target_weights``: ``N+1`` positive numbers. Returns a new tensor.
    Arc lengths are accumulated in float64.
    """
    n = pivots.shape[0]
    weights = _check_weights(n, target_weights)
    out = pivots.clone()
    if n <= 2:
        return out
    diff = pivots[1:] - pivots[:-1]
    where = _redistribution(_segment_lengths(diff), weights)
    if where is not None:
        work = pivots.new_empty((n - 2, pivots.shape[1]))
        _place_on_polyline(pivots, diff, *where, out=out[1:-1], work=work)
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
    v = energies.detach().to(dtype=torch.float64).cpu().numpy()
    return _tangents(pivots, v)


def _tangent_weights(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(w_plus, w_minus)`` [N] of ``tau+`` and ``tau-`` from the energies ``v`` [N+2]."""
    v_prev, v_mid, v_next = v[:-2], v[1:-1], v[2:]
    d_next = np.abs(v_next - v_mid)
    d_prev = np.abs(v_prev - v_mid)
    dv_max = np.maximum(d_next, d_prev)
    dv_min = np.minimum(d_next, d_prev)
    rising = v_next > v_prev
    w_plus = np.where(rising, dv_max, dv_min)
    w_minus = np.where(rising, dv_min, dv_max)
    up = (v_next > v_mid) & (v_mid > v_prev)
    down = (v_next < v_mid) & (v_mid < v_prev)
    w_plus = np.where(up, 1.0, np.where(down, 0.0, w_plus))
    w_minus = np.where(up, 0.0, np.where(down, 1.0, w_minus))
    return w_plus, w_minus


def _tangents(pivots: Tensor, v: np.ndarray) -> Tensor:
    """:func:`tangents` with the energies already on the host as float64 numpy."""
    diff = pivots[1:] - pivots[:-1]
    tau = _tangent_directions(diff, v, out=diff.new_empty((diff.shape[0] - 1, diff.shape[1])))
    return _unit_tangents(tau, diff)


def _tangent_directions(diff: Tensor, v: np.ndarray, out: Tensor) -> Tensor:
    """Tangent directions ``[N, D]`` written into ``out``, from the segments
    ``diff = pivots[1:] - pivots[:-1]`` (``[N+1, D]``; ``tau+ = diff[1:]``, ``tau- = diff[:-1]``).

    Row ``i`` is ``w+ tau+ + w- tau-`` divided by ``max(w+, w-)`` (only the direction matters):
    a copy of one segment where the energy is monotone, plus ``min/max`` times the other
    segment at extrema, and zero where both weights vanish (three equal energies)."""
    w_plus, w_minus = _tangent_weights(v)
    rows = np.arange(len(w_plus))
    plus_major = w_plus >= w_minus
    major = np.where(plus_major, rows + 1, rows)
    w_major = np.maximum(w_plus, w_minus)
    w_minor = np.minimum(w_plus, w_minus)
    torch.index_select(diff, 0, torch.from_numpy(major).to(diff.device), out=out)
    for i in np.flatnonzero(w_minor > 0).tolist():  # extrema: both neighbours contribute
        minor = i if plus_major[i] else i + 1
        out[i].add_(diff[minor], alpha=float(w_minor[i] / w_major[i]))
    for i in np.flatnonzero(w_major == 0).tolist():
        out[i].zero_()
    return out


def _unit_tangents(tau: Tensor, diff: Tensor) -> Tensor:
    """Normalise the rows of ``tau``; where one vanishes (three equal energies) use the bisector
    ``tau+/|tau+| + tau-/|tau-|`` instead, and zero where the pivots coincide."""
    norm = tau.norm(dim=1, keepdim=True)
    if bool((norm > 0).all()):  # the common case: no bisector, no masking
        return tau / norm
    bisector = _unit(diff[1:]) + _unit(diff[:-1])
    return _unit(torch.where(norm > 0, tau, bisector))


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
        endpoint_losses: fixed losses of the two endpoints for the tangents (``None``: evaluate
            them on every step's batch, as the authors' code).
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
        endpoint_losses: Tensor | None = None,
        cycle: int | str = "?",
    ):
        if pivots.dim() != 2 or pivots.shape[0] < 3:
            raise ConfigError(f"NEB needs [N+2, D] pivots with N >= 1, got {tuple(pivots.shape)}")
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
        self.weight_decay = float(weight_decay)
        self.common_batch = common_batch
        if endpoint_losses is not None and tuple(endpoint_losses.shape) != (2,):
            raise ConfigError(f"endpoint_losses must hold 2 values, got {endpoint_losses.shape}")
        self.endpoint_losses = endpoint_losses
        self.cycle = cycle
        self.step_count = 0
        self.optimizer = make_optimizer(optimizer, [self.interior], lr, optimizer_kwargs)

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

    def step(self, generator: torch.Generator | None = None) -> StepInfo:
        """Redistribute, evaluate, project and update once; raises :class:`DivergenceError`.

        Per step exactly three small host transfers happen (the ``N+1`` segment lengths for the
        redistribution, the ``N+2`` losses, and the ``2N`` dot products of the projection);
        everything of size ``D`` stays on the device, in preallocated buffers."""
        self.step_count += 1
        path, diff, work = self._path, self._diff, self._work
        with torch.no_grad():
            torch.sub(path[1:], path[:-1], out=diff)
            where = _redistribution(_segment_lengths(diff), self.target_weights)
            if where is not None:
                _place_on_polyline(path, diff, *where, out=self.interior, work=work)
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
            # remove the component along the tangent: f -= (f.tau / tau.tau) tau, with the dot
            # products on the host (a non-finite force entry makes its f.tau non-finite)
            f_tau = _row_dots(force, tau)
            tau_tau = torch.linalg.vector_norm(tau, dim=1).square()
            f_tau, tau_tau = torch.stack([f_tau, tau_tau]).double().cpu().numpy()
            if not (np.isfinite(f_tau).all() and np.isfinite(tau_tau).all()):
                raise DivergenceError(
                    f"NEB diverged in cycle {self.cycle}, step {self.step_count}: "
                    "non-finite gradient"
                )
            if (tau_tau > 0).all():
                coef = f_tau / tau_tau
            else:  # a vanishing tangent: bisector or none (rare; see tangents())
                tau = _unit_tangents(tau, diff)
                coef = _row_dots(force, tau).double().cpu().numpy()
            coef_t = torch.from_numpy(coef).to(device=path.device, dtype=path.dtype)
            force.addcmul_(tau, coef_t.unsqueeze(1), value=-1.0)
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
    optimizer: str = "SGD",
    optimizer_kwargs: dict | None = None,
    weight_decay: float = 0.0,
    generator: torch.Generator | None = None,
    common_batch: bool = True,
    endpoint_losses: Tensor | None = None,
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
        endpoint_losses=endpoint_losses,
        cycle=cycle,
    )
    info = None
    for _ in range(steps):
        info = neb.step(generator)
        if progress is not None:
            progress.update(cycle=cycle, max_loss=info.max_loss)
    return neb.pivots, info
