"""Geometry of paths: redistribution, tangents, projection, positions along a path.

A path is a tensor ``[N+2, D]`` of pivots whose first and last rows are the fixed endpoints. The
NEB step (:mod:`nobarriers.engine.neb`, Algorithm 1) and the public functions here share one
implementation of each operation:

* :func:`redistribute` -- the string method's redistribution (spring force replaced by placing
  the interior pivots on the current polyline at the arc-length fractions of the target weights);
* :func:`tangents` -- the improved tangent of Henkelman & Jonsson (2000), eqs. 8-11, with the
  published energy weights at extrema;
* :func:`project` -- removing the component of the loss gradient along the tangent;
* :func:`dense_positions` -- where a path is evaluated: every pivot and ``n_between`` equally
  spaced points on each chord (Appendix A), at ``t = pivot index + alpha``, 0..N+1.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..core.errors import ConfigError


def _segment_lengths(diff: Tensor) -> np.ndarray:
    """Lengths ``[N+1]`` of the segments ``diff = pivots[1:] - pivots[:-1]``, as float64 numpy
    (the only values of the redistribution that leave the device)."""
    return torch.linalg.vector_norm(diff, dim=1).double().cpu().numpy()


def _locate(seg: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment index ``k`` and fraction ``frac`` of the points at arc ``lengths`` along the
    polyline with segment lengths ``seg`` (zero-length segments are skipped)."""
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    k = np.clip(np.searchsorted(cum, lengths, side="right") - 1, 0, len(seg) - 1)
    seg_k = seg[k]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(seg_k > 0, (lengths - cum[k]) / np.maximum(seg_k, 1e-300), 0.0)
    return k, np.clip(frac, 0.0, 1.0)


def _redistribution(seg: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Segment index ``k`` [N] and fraction ``frac`` [N] of each redistributed interior pivot on
    the polyline with segment lengths ``seg`` [N+1] (arc lengths accumulated in float64 on the
    host). ``None``: the polyline has zero length."""
    total = float(seg.sum())
    if not total > 0:
        return None
    return _locate(seg, (np.cumsum(weights)[:-1] / weights.sum()) * total)


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


def project_(force: Tensor, tau: Tensor, diff: Tensor | None = None) -> np.ndarray:
    """Remove from each row of ``force`` its component along ``tau`` in place (eq. 2):
    ``f -= (f . tau / tau . tau) tau``, with the dot products computed on the host. Returns the
    ``f . tau`` values (float64; a non-finite entry of ``force`` makes its value non-finite).

    ``tau`` may be unnormalised (the step's :func:`_tangent_directions`). Where a row of ``tau``
    vanishes (three equal energies), it is replaced by the bisector of the segments ``diff``
    (``pivots[1:] - pivots[:-1]``), and left without projection where the pivots coincide or no
    ``diff`` is given. The one implementation of the projection: :func:`project` and
    :meth:`nobarriers.engine.neb.NEBStep.step` both use it."""
    f_tau = _row_dots(force, tau)
    tau_tau = torch.linalg.vector_norm(tau, dim=1).square()
    f_tau, tau_tau = torch.stack([f_tau, tau_tau]).double().cpu().numpy()
    if (tau_tau > 0).all():
        coef = f_tau / tau_tau
    elif diff is not None:  # a vanishing tangent: bisector or none (rare; see tangents())
        tau = _unit_tangents(tau, diff)
        coef = _row_dots(force, tau).double().cpu().numpy()
    else:
        coef = np.where(tau_tau > 0, f_tau / np.where(tau_tau > 0, tau_tau, 1.0), 0.0)
    if not np.isfinite(f_tau).all():
        return f_tau
    coef_t = torch.from_numpy(coef).to(device=force.device, dtype=force.dtype)
    force.addcmul_(tau, coef_t.unsqueeze(1), value=-1.0)
    return f_tau


def project(grads: Tensor, tangent: Tensor) -> Tensor:
    """``grads`` without their components along ``tangent`` (row by row; eq. 2), as a new
    tensor: the projection of every NEB step (:func:`project_`)."""
    out = grads.detach().clone()
    project_(out, tangent)
    return out


# --------------------------------------------------------------------------------------------
# positions along a path
# --------------------------------------------------------------------------------------------


def gap_alphas(n_between: int) -> np.ndarray:
    """The interior evaluation positions ``k / (n_between + 1)``, ``k = 1..n_between``."""
    return np.arange(1, n_between + 1) / (n_between + 1)


def dense_positions(n_pivots: int, n_between: int) -> np.ndarray:
    """Positions ``t`` of all pivots and ``n_between`` interior points per gap, ascending."""
    if n_pivots < 2:
        raise ConfigError(f"a path needs at least 2 pivots, got {n_pivots}")
    if n_between < 0:
        raise ConfigError(f"n_between must be >= 0, got {n_between}")
    alphas = np.arange(n_between + 1) / (n_between + 1)
    t = (np.arange(n_pivots - 1)[:, None] + alphas[None, :]).reshape(-1)
    return np.append(t, float(n_pivots - 1))


def point_at(pivots: Tensor, t: float) -> Tensor:
    """The point at position ``t`` of the polyline through ``pivots`` (chord interpolation)."""
    n = pivots.shape[0]
    if not 0.0 <= t <= n - 1:
        raise ConfigError(f"position t={t} outside the path [0, {n - 1}]")
    i = min(int(np.floor(t)), n - 2)
    alpha = t - i
    if alpha == 0.0:
        return pivots[i]
    if alpha == 1.0:
        return pivots[i + 1]
    return pivots[i] * (1.0 - alpha) + pivots[i + 1] * alpha


def arc_positions(pivots: Tensor, fractions) -> np.ndarray:
    """Positions ``t`` (pivot index + chord fraction) of the points at the given fractions
    (0..1) of the path's Euclidean arc length: evenly spread points along a path."""
    seg = _segment_lengths(pivots[1:] - pivots[:-1])
    fractions = np.asarray(fractions, dtype=np.float64)
    if not ((fractions >= 0) & (fractions <= 1)).all():
        raise ConfigError(f"arc fractions must lie in [0, 1], got {fractions.tolist()}")
    if not seg.sum() > 0:
        return fractions * (pivots.shape[0] - 1)
    k, frac = _locate(seg, fractions * seg.sum())
    return k + frac


def initial_path(start: Tensor, end: Tensor, n_interior: int) -> Tensor:
    """``n_interior + 2`` pivots equally spaced on the segment from ``start`` to ``end``."""
    alphas = torch.linspace(0, 1, n_interior + 2, dtype=torch.float64)[1:-1]
    inner = [start * (1 - float(a)) + end * float(a) for a in alphas]
    return torch.stack([start, *inner, end])
