"""Curvature at a point: the extreme eigenvalues of a loss Hessian (issue 21, item 3).

A first-order saddle of the training loss has exactly one negative Hessian eigenvalue, a minimum
none; the index is meaningful only where the gradient is small, so the gradient norm is reported
beside it. The Hessian is never formed: scipy's ``eigsh`` (ARPACK's implicitly restarted Lanczos)
runs on a ``LinearOperator`` whose product is a Hessian-vector product by double backward, in
float64. ``which="LA"`` (k = 1) gives the largest eigenvalue, ``which="SA"`` the k lowest. Power
iteration would find the eigenvalue of largest magnitude -- usually the largest positive one --
not the negative one.

Reading the result (docs/hessian.md): an eigenvalue counts as negative below ``-eps * lambda_max``
(smaller ones are flat directions within numerical and sampling noise); ``gap`` says how clearly
the next eigenvalue is not negative; ``cosine_to_tangent`` near 1 says the unstable direction is
the path's own direction, as at the saddle of a minimum energy path.

Entry points: :func:`function_spectrum` (any differentiable energy of a flat vector, e.g. a
``FunctionEnergy``'s function), :func:`network_spectrum` (a network at a point: what a workflow
job calls with its model, point, data and settings; its energy and products are
:func:`network_products`), :func:`highest_point` (where on a stored path to look, and the
path's tangent there).
"""

from __future__ import annotations

import copy
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import Tensor, nn

from ..core.errors import ConfigError
from ..nn.batches import seeded_subset
from ..nn.path_geometry import point_at
from ..nn.points import (
    device_of,
    has_batchnorm,
    load_point,
    recompute_bn_statistics,
    trainable_parameters,
)

#: a returned eigenpair is accepted when its residual is below this fraction of ``eps * scale``
#: (``scale`` = the largest eigenvalue magnitude found): a Ritz value lies within its residual of
#: a true eigenvalue, so such a residual cannot move an eigenvalue across the ``eps`` threshold
RESIDUAL_FRACTION = 0.1


@dataclass
class SaddleSpectrum:
    """The extreme Hessian eigenvalues at a point, or why there are none.

    ``lowest``: the k lowest eigenvalues, ascending; ``lambda_max``: the largest. ``n_negative``:
    how many of ``lowest`` lie below ``-eps * lambda_max`` (the index; a lower bound when all k
    do). ``gap``: ``lowest[n] - lowest[n-1]`` with ``n = n_negative``, i.e. the distance from the
    last negative eigenvalue to the next one, and with none negative the lowest eigenvalue itself
    (its signed distance from zero); ``None`` when the next one was not computed (all k negative).
    ``cosine_to_tangent``: ``|<u_1, tau>| / (|u_1| |tau|)`` for the lowest eigenvector ``u_1``
    (``None`` without a tangent). ``grad_norm``: the gradient's Euclidean norm at the point.
    ``n_products``: Hessian-vector products used (both solves and the residual checks);
    ``seconds``: wall time of the whole computation. ``residuals``: ``||H v - lambda v||`` of the
    returned pairs (lowest ones, then lambda_max); when ``converged`` is False, of the best
    approximations the solver had reached (Rayleigh-Ritz on its last products), and then no
    eigenvalue is reported (``lowest`` empty, the rest None): ``message`` says what failed.
    """

    grad_norm: float
    n_products: int
    seconds: float
    converged: bool
    residuals: np.ndarray
    message: str
    eps: float
    lowest: np.ndarray = field(default_factory=lambda: np.empty(0))
    lambda_max: float | None = None
    n_negative: int | None = None
    gap: float | None = None
    cosine_to_tangent: float | None = None

    def to_json(self) -> dict:
        """Plain numbers and lists, for JSON files and ``inspect --json``."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["lowest"] = [float(v) for v in self.lowest]
        out["residuals"] = [float(v) for v in self.residuals]
        return out


class _Operator:
    """The Hessian as scipy sees it: float64 products, counted, the last ``keep`` of them
    remembered so that a solve that stops without converging still yields residuals."""

    def __init__(self, hvp: Callable[[np.ndarray], np.ndarray], dim: int, keep: int):
        self.hvp, self.dim = hvp, dim
        self.count = 0
        self.recent: deque = deque(maxlen=keep)

    def __call__(self, v: np.ndarray) -> np.ndarray:
        v = np.array(v, dtype=np.float64).reshape(-1)  # a copy: ARPACK reuses its buffer
        hv = np.asarray(self.hvp(v), dtype=np.float64).reshape(-1)
        self.count += 1
        self.recent.append((v, hv))
        return hv

    def shifted(self, shift: float) -> LinearOperator:
        return LinearOperator(
            (self.dim, self.dim), matvec=lambda v: self(v) - shift * v.reshape(-1), dtype=np.float64
        )

    def residuals(self, values: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        return np.array(
            [
                np.linalg.norm(self(vectors[:, i]) - values[i] * vectors[:, i])
                for i in range(len(values))
            ]
        )


def _ritz_residuals(products, which: str, k: int) -> np.ndarray:
    """Residuals ``||H y - theta y||`` of the ``k`` Ritz pairs at the ``which`` end of the span
    of the remembered products ``(v, Hv)`` (Rayleigh-Ritz): how far the stopped solver was."""
    if not products:
        return np.empty(0)
    v = np.stack([p for p, _ in products], axis=1)
    hv = np.stack([h for _, h in products], axis=1)
    u, s, wt = np.linalg.svd(v, full_matrices=False)
    keep = s > s[0] * 1e-10  # restarts leave the remembered vectors nearly dependent
    q, hq = u[:, keep], hv @ wt[keep].T / s[keep]  # an orthonormal basis and H times it
    theta, y = np.linalg.eigh(q.T @ hq)
    pick = slice(0, k) if which == "SA" else slice(-k, None)
    theta, y = theta[pick], y[:, pick]
    return np.linalg.norm(hq @ y - (q @ y) * theta, axis=0)


class _NotConverged(Exception):
    """A solve that stopped short: the residuals of its best Ritz pairs, and why."""

    def __init__(self, residuals: np.ndarray, message: str):
        super().__init__(message)
        self.residuals = residuals


def _solve(op: _Operator, which: str, k: int, shift: float, settings: dict):
    """``k`` eigenpairs ``(values, vectors)`` of H at the ``which`` end, ascending, from ARPACK
    on ``H - shift I``; :class:`_NotConverged` when it stops without converging."""
    op.recent.clear()
    try:
        values, vectors = eigsh(op.shifted(shift), k=k, which=which, **settings)
    except ArpackNoConvergence as exc:
        what = "lambda_max" if which == "LA" else f"the {k} lowest eigenvalues"
        raise _NotConverged(
            _ritz_residuals(op.recent, which, k), f"{what} did not converge ({exc})"
        ) from None
    order = np.argsort(values)
    return values[order] + shift, vectors[:, order]


def _spectrum(hvp, dim, grad_norm, tangent, started, *, k, eps, tol, maxiter, ncv, seed):
    """Lanczos on ``hvp`` (float64 numpy in and out): the fields of :class:`SaddleSpectrum`."""
    if dim < 2:
        raise ConfigError(f"a Hessian spectrum needs at least 2 coordinates, got {dim}")
    if k < 1 or not 0 < eps < 1:
        raise ConfigError(f"need k >= 1 and 0 < eps < 1, got k={k}, eps={eps}")
    tau = None
    if tangent is not None:
        tau = torch.as_tensor(tangent).detach().to("cpu", torch.float64).numpy().reshape(-1)
    if tau is not None and (tau.shape != (dim,) or not np.linalg.norm(tau) > 0):
        raise ConfigError(f"the tangent must be a non-zero vector of {dim} numbers")
    k = min(k, dim - 1)  # ARPACK finds fewer than dim eigenpairs
    ncv = ncv or min(dim, max(2 * k + 1, 20))
    v0 = np.random.default_rng(seed).standard_normal(dim)  # ARPACK's own start is not seeded
    settings = dict(ncv=ncv, tol=tol, maxiter=maxiter, v0=v0)
    op = _Operator(hvp, dim, keep=ncv)

    def result(converged, residuals, message, **found):
        return SaddleSpectrum(
            grad_norm=float(grad_norm),
            n_products=op.count,
            seconds=time.perf_counter() - started,
            converged=converged,
            residuals=np.asarray(residuals, dtype=np.float64),
            message=message,
            eps=eps,
            **found,
        )

    try:
        top, top_vectors = _solve(op, "LA", 1, 0.0, settings)
        lambda_max = float(top[0])
        # Lanczos is shift-invariant (same Krylov spaces), but ARPACK's stopping test is relative
        # to each Ritz value: on H - lambda_max I the low end is far from zero, so an eigenvalue
        # near zero stops at an accuracy of tol * lambda_max -- the scale of the eps rule --
        # instead of tol times its own tiny magnitude
        low, vectors = _solve(op, "SA", k, lambda_max, settings)
    except _NotConverged as exc:
        return result(False, exc.residuals, str(exc))
    residuals = np.concatenate([op.residuals(low, vectors), op.residuals(top, top_vectors)])
    bound = RESIDUAL_FRACTION * eps * max(abs(lambda_max), abs(float(low[0])))
    if (residuals > bound).any():
        return result(
            False,
            residuals,
            f"eigsh returned pairs with residuals up to {residuals.max():.3g}, above "
            f"{RESIDUAL_FRACTION:g} * eps * max|lambda| = {bound:.3g} (a non-symmetric or noisy "
            "product?)",
        )
    # with dim = k + 1 the k lowest and lambda_max are the whole spectrum
    known = low if k + 1 < dim else np.append(low, lambda_max)
    n_negative = int((known < -eps * lambda_max).sum())
    gap = None
    if n_negative < len(known):
        gap = float(known[n_negative] - (known[n_negative - 1] if n_negative else 0.0))
    cosine = None
    if tau is not None:
        u = vectors[:, 0]
        cosine = float(abs(u @ tau) / (np.linalg.norm(u) * np.linalg.norm(tau)))
    message = "converged"
    if n_negative == len(known):
        message = (
            f"all {len(known)} computed lowest eigenvalues are negative: the index is >= "
            f"{n_negative}; raise k"
        )
    return result(
        True,
        residuals,
        message,
        lowest=low,
        lambda_max=lambda_max,
        n_negative=n_negative,
        gap=gap,
        cosine_to_tangent=cosine,
    )


def function_spectrum(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    tangent=None,
    *,
    weight_decay: float = 0.0,
    k: int = 3,
    eps: float = 1e-3,
    tol: float = 1e-6,
    maxiter: int | None = None,
    ncv: int | None = None,
    seed: int = 0,
) -> SaddleSpectrum:
    """The Hessian spectrum of ``fn(x) + weight_decay / 2 * |x|^2`` at the 1-D point ``x``.

    ``fn``: any twice-differentiable ``Tensor[D] -> scalar`` (a ``FunctionEnergy``'s function),
    evaluated in float64. ``tangent``: a direction ``[D]`` for the cosine (e.g. of a path).
    ``k``: lowest eigenvalues wanted; ``eps``: the negativity threshold (``-eps * lambda_max``);
    ``tol``, ``maxiter``, ``ncv``: ARPACK's (``maxiter``: restarts of each solve; ``None``:
    scipy's default, 10 D); ``seed``: the start vector's.
    """
    started = time.perf_counter()
    if x.dim() != 1:
        raise ConfigError(f"the point must be a 1-D tensor, got shape {tuple(x.shape)}")
    w = x.detach().to(torch.float64).clone().requires_grad_(True)
    with torch.enable_grad():
        value = fn(w) + 0.5 * weight_decay * w.dot(w)
        (grad,) = torch.autograd.grad(value, w, create_graph=True)

    def hvp(v: np.ndarray) -> np.ndarray:
        # the gradient's graph is kept: each product is one backward pass through it
        (hv,) = torch.autograd.grad(grad, w, torch.from_numpy(v), retain_graph=True)
        return hv.numpy()

    return _spectrum(
        hvp,
        w.numel(),
        grad.detach().norm(),
        tangent,
        started,
        k=k,
        eps=eps,
        tol=tol,
        maxiter=maxiter,
        ncv=ncv,
        seed=seed,
    )


def network_products(
    model: nn.Module,
    point: Tensor,
    x: Tensor,
    y: Tensor,
    *,
    subset: int | None = 1024,
    subset_seed: int = 0,
    batch_size: int = 256,
    weight_decay: float = 0.0,
    dtype: torch.dtype = torch.float64,
) -> tuple[Callable[[np.ndarray], np.ndarray], Tensor]:
    """The energy of :func:`network_spectrum` at ``point``: its Hessian-vector product (float64
    numpy in and out) and its gradient (``dtype``, on the model's device).

    The energy is deterministic, since Lanczos needs the same matrix at every product: the mean
    cross-entropy on ``subset`` samples of ``(x, y)`` drawn with ``subset_seed`` (``None``: all),
    un-augmented, with BatchNorm in eval mode on statistics recomputed for this point on those
    samples (as the path's saddle curve measures the loss; the statistics are then held fixed,
    not differentiated), plus the NEB's L2 term ``weight_decay / 2 * |w|^2``
    (``AutoNEBConfig.weight_decay``: ``+weight_decay`` on the diagonal). ``batch_size`` splits
    the samples (memory, not results). ``model`` is not changed: a copy in ``dtype`` is used.
    Each product is a forward and a double backward pass per batch.
    """
    if subset is not None and subset < 2:
        raise ConfigError(f"the Hessian's loss needs at least 2 samples, got subset={subset}")
    net = copy.deepcopy(model).to(dtype)
    device = device_of(net)
    idx = seeded_subset(x.shape[0], subset, subset_seed)
    if idx is not None:
        x, y = x[idx.to(x.device)], y[idx.to(y.device)]
    x, y = x.to(device, dtype), y.to(device)
    load_point(net, point.detach().to(device, dtype))
    if has_batchnorm(net):
        recompute_bn_statistics(net, x, batch_size)
    net.eval()
    params = [p for _, p in trainable_parameters(net)]
    batches = list(zip(x.split(batch_size), y.split(batch_size), strict=True))

    def batch_grads(xb, yb, create_graph):
        # summed over the batch and divided by all samples: the batches add up to the mean
        loss = F.cross_entropy(net(xb), yb, reduction="sum") / x.shape[0]
        return torch.autograd.grad(loss, params, create_graph=create_graph)

    with torch.enable_grad():
        grad = weight_decay * torch.cat([p.detach().reshape(-1) for p in params])
        for xb, yb in batches:
            grad = grad + torch.cat([g.reshape(-1) for g in batch_grads(xb, yb, False)])

    def hvp(v: np.ndarray) -> np.ndarray:
        vt = torch.from_numpy(v).to(device, dtype)
        parts = vt.split([p.numel() for p in params])
        out = weight_decay * vt
        with torch.enable_grad():
            for xb, yb in batches:
                grads = batch_grads(xb, yb, True)
                dot = sum((g * u.view_as(g)).sum() for g, u in zip(grads, parts, strict=True))
                hv = torch.autograd.grad(dot, params, materialize_grads=True)
                out = out + torch.cat([h.reshape(-1) for h in hv])
        return out.cpu().numpy()

    return hvp, grad


def network_spectrum(
    model: nn.Module,
    point: Tensor,
    x: Tensor,
    y: Tensor,
    tangent=None,
    *,
    subset: int | None = 1024,
    subset_seed: int = 0,
    batch_size: int = 256,
    weight_decay: float = 0.0,
    dtype: torch.dtype = torch.float64,
    k: int = 3,
    eps: float = 1e-3,
    tol: float = 1e-6,
    maxiter: int | None = None,
    ncv: int | None = None,
    seed: int = 0,
) -> SaddleSpectrum:
    """The Hessian spectrum of a network's training loss at ``point`` (its trainable parameters,
    ``point_of`` order): the energy of :func:`network_products` (a fixed subset, exact BatchNorm
    statistics in eval mode, the NEB's weight decay), the solver of :func:`function_spectrum`.
    """
    started = time.perf_counter()
    hvp, grad = network_products(
        model,
        point,
        x,
        y,
        subset=subset,
        subset_seed=subset_seed,
        batch_size=batch_size,
        weight_decay=weight_decay,
        dtype=dtype,
    )
    return _spectrum(
        hvp,
        grad.numel(),
        grad.norm(),
        tangent,
        started,
        k=k,
        eps=eps,
        tol=tol,
        maxiter=maxiter,
        ncv=ncv,
        seed=seed,
    )


@dataclass
class PathPoint:
    """Where on a path its curvature is measured: the point, the path's direction there, its
    position ``t`` (pivot index + chord fraction) and which point it is (``climbing pivot i``,
    ``dense maximum`` or, on a path without a barrier, ``path's end (no barrier)``)."""

    point: Tensor
    tangent: Tensor
    t: float
    where: str


def highest_point(pivots: Tensor, t, loss, climbing: int | None = None) -> PathPoint:
    """The highest point of a path ``pivots`` ``[N+2, D]``: the climbing pivot where the last
    cycle had one (``climbing``: its interior index, so path row ``climbing + 1``; it converged
    to the saddle point itself), otherwise the maximum of the dense curve ``(t, loss)`` (a path
    file's ``saddle``) on the polyline.

    The tangent is the chord through the neighbouring pivots: ``pivots[j+1] - pivots[j-1]`` at
    pivot ``j``, ``pivots[i+1] - pivots[i]`` inside gap ``i`` (one-sided at an endpoint). It is
    the direction the path runs there and needs no energies (unlike the NEB's tangent, which
    weighs the two chords by the pivots' losses)."""
    last = pivots.shape[0] - 1
    if climbing is not None:
        if not 0 <= climbing < last - 1:
            raise ConfigError(
                f"climbing pivot {climbing} is not one of the {last - 1} interior pivots"
            )
        position, where = float(climbing + 1), f"climbing pivot {climbing}"
    else:
        t, loss = np.asarray(t, dtype=np.float64), np.asarray(loss, dtype=np.float64)
        if t.shape != loss.shape or not t.size:
            raise ConfigError("the dense curve needs matching, non-empty t and loss")
        position = float(t[int(np.argmax(loss))])
        # a path whose highest point is a minimum crosses no barrier: no saddle to measure
        where = "dense maximum" if 0 < position < last else "path's end (no barrier)"
    point = point_at(pivots, position)
    i = int(np.floor(position))
    if position == i:  # at a pivot: the chord through its neighbours
        before, after = max(i - 1, 0), min(i + 1, last)
    else:
        before, after = i, i + 1
    return PathPoint(point, pivots[after] - pivots[before], position, where)
