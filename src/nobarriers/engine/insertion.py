"""AutoNEB's pivot insertion (Appendix A of Draxler et al., 2018).

Between pivots i and i+1 the loss is evaluated at ``alpha = k / (n_between + 1)``,
``k = 1..n_between``; the residual ``L(p_i (1-alpha) + p_{i+1} alpha) - ((1-alpha) L(p_i) +
alpha L(p_{i+1}))`` is normalised by ``max_i L(p_i) - min_i L(p_i)`` over the pivots (eq. 4). A
gap whose highest normalised residual exceeds ``insert_threshold`` receives one pivot at that
alpha; gaps are served by descending residual, at most ``max_insert_per_cycle`` per cycle and up
to ``max_pivots`` interior pivots. Inserting at ``alpha`` splits the gap's target weight
``alpha : 1 - alpha``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..nn.path_geometry import dense_positions, gap_alphas


def normalised_residuals(pivot_loss, gap_loss, alphas) -> np.ndarray:
    """Eq. 4: ``(L(alpha) - L_guess(alpha)) / (max L(p) - min L(p))`` per gap ``[N+1, K]``.

    A flat pivot profile (max == min) is normalised by the smallest positive float64, so any
    positive residual counts as large."""
    pivot_loss = np.asarray(pivot_loss, dtype=np.float64)
    gap_loss = np.asarray(gap_loss, dtype=np.float64)
    alphas = np.asarray(alphas, dtype=np.float64)
    guess = pivot_loss[:-1, None] * (1 - alphas[None, :]) + pivot_loss[1:, None] * alphas[None, :]
    scale = max(float(pivot_loss.max() - pivot_loss.min()), np.finfo(np.float64).tiny)
    return (gap_loss - guess) / scale


def select_insertions(
    pivot_loss, gap_loss, alphas, threshold: float, max_insert: int, room: int
) -> list[tuple[int, float, float]]:
    """Choose ``(gap, alpha, residual)`` insertions, sorted by gap.

    Per gap only the alpha of highest normalised residual is a candidate, and only if it exceeds
    ``threshold``; candidates are taken by descending residual up to ``min(max_insert, room)``.
    """
    res = normalised_residuals(pivot_loss, gap_loss, alphas)
    alphas = np.asarray(alphas, dtype=np.float64)
    best = res.argmax(axis=1)
    candidates = [
        (g, float(alphas[best[g]]), float(res[g, best[g]]))
        for g in range(res.shape[0])
        if res[g, best[g]] > threshold
    ]
    candidates.sort(key=lambda c: (-c[2], c[0]))
    chosen = candidates[: max(0, min(max_insert, room))]
    return sorted(chosen)


def insert_pivots(
    pivots: Tensor, target_weights, insertions: list[tuple[int, float, float]]
) -> tuple[Tensor, np.ndarray]:
    """Insert ``p_g (1 - alpha) + p_{g+1} alpha`` for each ``(gap, alpha, _)``; the gap's target
    weight ``w`` becomes ``alpha w, (1 - alpha) w``."""
    weights = list(np.asarray(target_weights, dtype=np.float64))
    rows = list(pivots)
    for gap, alpha, _ in sorted(insertions, reverse=True):  # back to front keeps indices valid
        new = rows[gap] * (1.0 - alpha) + rows[gap + 1] * alpha
        rows.insert(gap + 1, new)
        w = weights[gap]
        weights[gap : gap + 1] = [alpha * w, (1.0 - alpha) * w]
    return torch.stack(rows), np.asarray(weights, dtype=np.float64)


def evaluate_dense(evaluate, pivots: Tensor, n_between: int):
    """Evaluate all pivots and ``n_between`` chord points per gap, one gap at a time (bounded
    memory). ``evaluate``: ``points [M, D] -> losses [M]``. Returns
    ``(t, loss, pivot_loss, gap_loss [N+1, n_between])`` as float64 arrays, ``t`` the dense
    positions (:func:`nobarriers.nn.path_geometry.dense_positions`)."""
    alphas = gap_alphas(n_between)
    n_gaps = pivots.shape[0] - 1
    pivot_loss = _as_array(evaluate(pivots))
    gap_loss = np.empty((n_gaps, n_between))
    for g in range(n_gaps):
        a = torch.as_tensor(alphas, dtype=pivots.dtype, device=pivots.device).unsqueeze(1)
        points = pivots[g] * (1 - a) + pivots[g + 1] * a
        gap_loss[g] = _as_array(evaluate(points))
    loss = np.concatenate([pivot_loss[:-1, None], gap_loss], axis=1).reshape(-1)
    loss = np.append(loss, pivot_loss[-1])
    return dense_positions(n_gaps + 1, n_between), loss, pivot_loss, gap_loss


def _as_array(values) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)
