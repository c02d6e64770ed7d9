"""Figures of one path: Figure 4 (loss along the path during AutoNEB), Figure 7 (parameters
along the path), the Figure 1-style slice (the loss on the plane through both minima), and the
ensembles along a row's MST paths."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm, Normalize

from ..core.errors import ConfigError
from .learning_curves import field_of
from .style import TEST_COLOR, save_figure, source_note
from .style import new_figure as _figure
from .style import styled as _styled

log = logging.getLogger("nobarriers")


# --------------------------------------------------------------------------- Figure 4


def default_cycles(records: Sequence) -> list[int]:
    """The paper's Figure 4 selection: after the first cycle, at the end of the first learning
    rate phase, after the first cycle of the second phase, and after the last cycle."""
    cycles = [int(field_of(r, "cycle")) for r in records]
    if not cycles:
        return []
    lrs = [field_of(r, "lr") for r in records]
    picks = [cycles[0]]
    if all(lr is not None for lr in lrs):
        for k in range(1, len(records)):
            if not math.isclose(float(lrs[k]), float(lrs[k - 1]), rel_tol=1e-9):
                picks += [cycles[k - 1], cycles[k]]
                break
    picks.append(cycles[-1])
    return list(dict.fromkeys(picks))


@_styled
def plot_path_cycles(
    records: Sequence,
    cycles_to_show: Sequence[int] | None,
    png,
    pdf,
    title: str,
    *,
    log_y: bool = False,
    ylabel: str = "training loss (eval subset)",
    config_hash: str | None = None,
):
    """Figure 4: the loss along one path after selected AutoNEB cycles, one panel per cycle.

    ``records``: list of dicts (or ``CycleRecord``) with ``cycle``, ``t`` (dense positions
    ``0..N+1`` = pivot index + alpha), ``loss`` (at ``t``), ``pivot_loss`` (``[N+2]``) and
    optionally ``lr``, ``n_pivots``, ``inserted`` (positions in ``t`` where pivots were inserted
    after the cycle, marked by triangles). The x axis is the position along the path normalised to
    0..1 by pivot index (``t / (N+1)``). ``cycles_to_show``: cycle numbers (``-1`` = last; None =
    :func:`default_cycles`); cycles not in ``records`` are skipped with a warning.
    """
    by_cycle = {int(field_of(r, "cycle")): r for r in records}
    if not by_cycle:
        raise ConfigError(f"{png}: no cycle records to plot")
    last = max(by_cycle)
    wanted = default_cycles(records) if cycles_to_show is None else list(cycles_to_show)
    chosen = []
    for c in wanted:
        c = last if int(c) == -1 else int(c)
        if c not in by_cycle:
            log.warning("%s: cycle %d not recorded (cycles %s); skipped", png, c, sorted(by_cycle))
        elif c not in chosen:
            chosen.append(c)
    if not chosen:
        raise ConfigError(
            f"{png}: none of the cycles {list(wanted)} is recorded (have {sorted(by_cycle)})"
        )
    n = len(chosen)
    fig = _figure(3.0 * n + 0.6, 3.4)
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    for k, (ax, c) in enumerate(zip(axes, chosen, strict=True)):
        rec = by_cycle[c]
        t = np.asarray(field_of(rec, "t"), dtype=float)
        loss = np.asarray(field_of(rec, "loss"), dtype=float)
        pivot_loss = np.asarray(field_of(rec, "pivot_loss"), dtype=float)
        span = max(len(pivot_loss) - 1, 1)
        ax.plot(t / span, loss, color="tab:purple", lw=1.4, label="interpolated")
        ax.plot(np.arange(len(pivot_loss)) / span, pivot_loss, "o", color="k", ms=4, label="pivots")
        inserted = field_of(rec, "inserted") or []
        if len(inserted):
            ins = np.asarray(inserted, dtype=float)
            ax.plot(
                ins / span, np.interp(ins, t, loss), "v", color="tab:red", ms=7, label="inserted"
            )
        lr = field_of(rec, "lr")
        sub = f"after cycle {c}"
        if lr is not None:
            sub += f" (lr {float(lr):g})"
        ax.set_title(f"({k + 1}) {sub}", fontsize=10)
        ax.set_xlim(0, 1)
        ax.annotate(
            f"saddle {np.max(loss):.3g}, {len(pivot_loss) - 2} pivots",
            (0.02, 0.97),
            xycoords="axes fraction",
            va="top",
            fontsize=8,
        )
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(loc="upper right", fontsize=8)
    fig.supxlabel("position along the path (pivot index / (N+1))", fontsize=11)
    fig.suptitle(title)
    return save_figure(fig, png, pdf, source_note(config_hash))


# --------------------------------------------------------------------------- Figure 7


def arc_fractions(pivots) -> np.ndarray:
    """Cumulative Euclidean arc length of the polyline through ``pivots`` ``[N+2, D]``, scaled
    to 0..1 (``[N+2]``, float64)."""
    p = np.asarray(pivots, dtype=np.float64)
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    return cum / cum[-1] if cum[-1] > 0 else np.linspace(0.0, 1.0, len(p))


def linear_deviation(pivots, s) -> np.ndarray:
    """Deviation of every coordinate from the straight line between the endpoints, signed as in the
    paper's Figure 7 (negative = closer to the origin than the straight line).

    For pivot ``k`` at arc fraction ``s_k``: ``d_k = p_k - ((1 - s_k) p_0 + s_k p_{N+1})``,
    returned as ``d_k * sign((1 - s_k) p_0 + s_k p_{N+1})``. Shape ``[N+2, D]``.
    """
    p = np.asarray(pivots, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64).reshape(-1, 1)
    if p.ndim != 2 or len(s) != len(p):
        raise ValueError(f"pivots must be [N+2, D] and s [N+2]; got {p.shape} and {s.shape}")
    line = (1.0 - s) * p[0] + s * p[-1]
    return (p - line) * np.sign(line)


@_styled
def plot_parallel_coordinates(
    pivots,
    t_pivots,
    dense_t,
    dense_loss,
    png,
    pdf,
    n_top: int = 10,
    n_random: int = 10,
    seed: int = 0,
    *,
    title: str = "Parameters along the path",
    dense_t_is_index: bool = True,
    coordinate_names: Sequence[str] | None = None,
    config_hash: str | None = None,
):
    """Figure 7: per-coordinate deviation from the straight line (:func:`linear_deviation`) along
    the path; upper panel the ``n_top`` coordinates with the largest maximum |deviation|, lower
    panel ``n_random`` coordinates drawn with ``numpy.random.default_rng(seed)``; the training loss
    along the path on a twin axis of each panel.

    ``pivots``: ``[N+2, D]`` (numpy or CPU tensor); ``t_pivots``: arc fraction of each pivot
    (``[N+2]``, 0..1; None = :func:`arc_fractions`); ``dense_t`` / ``dense_loss``: the dense
    evaluation (``dense_t`` in pivot-index units 0..N+1 as ``evaluate_path`` returns them, mapped
    to arc fraction by piecewise-linear interpolation; pass ``dense_t_is_index=False`` if it is
    already an arc fraction).
    """
    p = np.asarray(pivots, dtype=np.float64)
    s = arc_fractions(p) if t_pivots is None else np.asarray(t_pivots, dtype=float)
    dev = linear_deviation(p, s)
    dim = p.shape[1]
    top = np.argsort(-np.max(np.abs(dev), axis=0), kind="stable")[: min(n_top, dim)]
    rng = np.random.default_rng(seed)
    rand = np.sort(rng.choice(dim, size=min(n_random, dim), replace=False))
    dt = np.asarray(dense_t, dtype=float)
    x_loss = np.interp(dt, np.arange(len(p)), s) if dense_t_is_index else dt
    loss = np.asarray(dense_loss, dtype=float)
    saddle_x = x_loss[int(np.argmax(loss))]

    fig = _figure(7.2, 6.4)
    axes = fig.subplots(2, 1, sharex=True)
    cmap = matplotlib.colormaps["tab10"]
    for ax, coords, label in [
        (axes[0], top, f"{len(top)} coordinates deviating most"),
        (axes[1], rand, f"{len(rand)} random coordinates (seed {seed})"),
    ]:
        for k, c in enumerate(coords):
            name = coordinate_names[c] if coordinate_names is not None else f"#{c}"
            ax.plot(s, dev[:, c], "-o", ms=2.5, lw=1.2, color=cmap(k % 10), label=name)
        ax.axhline(0, color="0.4", lw=0.8)
        ax.axvline(saddle_x, color="0.5", ls=":", lw=1)
        ax.set_ylabel("deviation from line\n(neg. = closer to origin)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        twin = ax.twinx()
        twin.fill_between(x_loss, loss, color="0.6", alpha=0.25, lw=0)
        twin.plot(x_loss, loss, color="0.35", lw=1, label="training loss")
        twin.set_ylabel("training loss (nats)", color="0.35")
        twin.set_ylim(bottom=0)
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
        if len(coords) <= 10:
            ax.legend(loc="upper left", fontsize=7, ncol=5)
    axes[1].set_xlabel("position along path (arc length fraction)")
    axes[1].set_xlim(0, 1)
    fig.suptitle(title)
    return save_figure(fig, png, pdf, source_note(config_hash))


# --------------------------------------------------------------------------- Figure 1 slice


def plane_basis(a, b, c) -> np.ndarray:
    """Orthonormal basis ``[2, D]`` of the plane through the points ``a``, ``b``, ``c`` (float64).

    First vector along ``b - a``; second the Gram-Schmidt remainder of ``c - a``. Use ``a`` as the
    origin of :func:`project_to_plane`. Raises ValueError for (nearly) collinear points.
    """
    a, b, c = (np.asarray(x, dtype=np.float64).ravel() for x in (a, b, c))
    u = b - a
    nu = np.linalg.norm(u)
    if nu == 0:
        raise ValueError("plane_basis: the first two points coincide")
    u /= nu
    v = c - a
    v = v - (v @ u) * u
    v = v - (v @ u) * u  # re-orthogonalise (cancellation in high dimension)
    nv = np.linalg.norm(v)
    if nv <= 1e-12 * max(np.linalg.norm(c - a), 1e-300):
        raise ValueError("plane_basis: the three points are collinear")
    return np.stack([u, v / nv])


def project_to_plane(points, origin, basis) -> np.ndarray:
    """Plane coordinates ``[M, 2]`` of ``points`` ``[M, D]`` (or ``[D]`` -> ``[2]``)."""
    pts = np.asarray(points, dtype=np.float64)
    return (pts - np.asarray(origin, dtype=np.float64)) @ np.asarray(basis).T


def plane_point(origin, basis, u: float, v: float) -> np.ndarray:
    """The point ``origin + u * basis[0] + v * basis[1]`` (``[D]``, float64)."""
    return np.asarray(origin, dtype=np.float64) + u * basis[0] + v * basis[1]


def plane_grid(
    points_uv, n: int = 25, margin: float = 0.3, min_aspect: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """``(grid_u, grid_v)`` covering ``points_uv`` ``[M, 2]`` plus ``margin`` of their extent on
    each side, ``n`` values per axis; the shorter side is widened (centred) to at least
    ``min_aspect`` times the longer one so that the slice is not a sliver. The caller evaluates
    the loss at ``plane_point(origin, basis, u, v)`` for ``v`` in ``grid_v`` (rows) and ``u`` in
    ``grid_u`` (columns)."""
    uv = np.asarray(points_uv, dtype=float)
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    ext = np.maximum(hi - lo, 1e-12)
    lo, hi = lo - margin * ext, hi + margin * ext
    ext = hi - lo
    need = min_aspect * ext.max()
    for k in range(2):
        if ext[k] < need:
            mid = (lo[k] + hi[k]) / 2
            lo[k], hi[k] = mid - need / 2, mid + need / 2
    return np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)


@_styled
def plot_plane_slice(
    grid_u,
    grid_v,
    loss_grid,
    path_uv,
    minima_uv,
    png,
    pdf,
    title: str,
    *,
    log_levels: bool = True,
    n_levels: int = 20,
    path_profile: tuple | None = None,
    line_profile: tuple | None = None,
    config_hash: str | None = None,
):
    """Figure 1-style slice: loss contours on the plane through both minima and the path's mean,
    the path polyline (pivots as dots), the straight segment and the minima (theta_1, theta_2).

    ``loss_grid``: ``[len(grid_v), len(grid_u)]``; ``path_uv``: ``[N+2, 2]`` projected pivots;
    ``minima_uv``: ``[2, 2]``. Optional right panel (the paper's): ``path_profile`` /
    ``line_profile`` = ``(x in 0..1, loss)`` along our path / along the straight segment.
    Contour levels are log-spaced (``log_levels``) between the grid's min and max.
    """
    gu, gv = np.asarray(grid_u, dtype=float), np.asarray(grid_v, dtype=float)
    z = np.asarray(loss_grid, dtype=float)
    if z.shape != (len(gv), len(gu)):
        raise ValueError(f"loss_grid must be [len(grid_v), len(grid_u)] = {(len(gv), len(gu))}")
    path = np.asarray(path_uv, dtype=float)
    mins = np.asarray(minima_uv, dtype=float)
    profiles = path_profile is not None or line_profile is not None
    fig = _figure(10.5 if profiles else 6.2, 4.8)
    if profiles:
        ax, ax2 = fig.subplots(1, 2, width_ratios=[1.25, 1])
    else:
        ax, ax2 = fig.subplots(), None
    finite = z[np.isfinite(z)]
    zmin, zmax = float(finite.min()), float(finite.max())
    if log_levels and zmin > 0 and zmax > zmin:
        levels = np.geomspace(zmin, zmax, n_levels)
        norm = LogNorm(zmin, zmax)
    else:
        levels = np.linspace(zmin, zmax if zmax > zmin else zmin + 1e-12, n_levels)
        norm = Normalize(zmin, levels[-1])
    cs = ax.contourf(gu, gv, z, levels=levels, norm=norm, cmap="viridis", extend="both")
    ax.contour(gu, gv, z, levels=levels, norm=norm, colors="k", linewidths=0.3, alpha=0.4)
    cbar = fig.colorbar(cs, ax=ax)
    cbar.set_label("training loss on the plane (nats)")
    if isinstance(norm, LogNorm):
        ticks = np.geomspace(zmin, zmax, 6)
        cbar.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
        cbar.minorticks_off()
    ax.plot(mins[:, 0], mins[:, 1], "--", color="white", lw=1.6, label="linear interpolation")
    ax.plot(path[:, 0], path[:, 1], "-o", color="tab:red", lw=1.8, ms=3, label="our path")
    ax.plot(mins[:, 0], mins[:, 1], "*", color="gold", mec="k", ms=15, zorder=5)
    for k, (u, v) in enumerate(mins[:2]):
        ax.annotate(
            f"θ{k + 1}", (u, v), xytext=(6, 6), textcoords="offset points", color="w", fontsize=12
        )
    ax.set_xlabel("u (parameter-space distance along θ1→θ2)")
    ax.set_ylabel("v (orthogonal, towards path mean)")
    ax.set_xlim(gu[0], gu[-1])
    ax.set_ylim(gv[0], gv[-1])
    ax.set_aspect("equal", adjustable="box")
    ax.legend(loc="lower right", fontsize=8, facecolor="0.75", framealpha=0.9)
    ax.set_title("slice through parameter space", fontsize=10)
    if ax2 is not None:
        if line_profile is not None:
            x, y = (np.asarray(a, dtype=float) for a in line_profile)
            ax2.plot(x, y, "--", color="0.3", label="linear interpolation")
        if path_profile is not None:
            x, y = (np.asarray(a, dtype=float) for a in path_profile)
            ax2.plot(x, y, "-", color="tab:red", label="our path")
        ax2.set_xlabel("position between minima (fraction)")
        ax2.set_ylabel("training loss (nats)")
        ax2.set_xlim(0, 1)
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=8)
        ax2.set_title("loss along the connections", fontsize=10)
    fig.suptitle(title)
    return save_figure(fig, png, pdf, source_note(config_hash))


# --------------------------------------------------------------------------- ensembles


@_styled
def plot_path_ensembles(curves: Mapping[tuple, Mapping], png, pdf, title: str, config_hash=None):
    """Test error (%) of the ensemble of K models along each MST path vs K (K = 2: the two
    endpoints), the mean over the paths, and the mean of the endpoints alone for reference.
    ``curves[(a, b)]``: ``evaluate.path_ensembles``'s arrays of the path a-b."""
    if not curves:
        raise ConfigError(f"{png}: no ensembles to plot (evaluation.ensemble_sizes is empty?)")
    fig = _figure(6.0, 4.2)
    ax = fig.subplots()
    sizes = np.asarray(next(iter(curves.values()))["sizes"])
    errors = []
    for _, curve in sorted(curves.items()):
        ax.plot(curve["sizes"], 100 * np.asarray(curve["test_error"]), color="0.7", lw=1,
                marker=".", label="one MST path" if not errors else None)  # fmt: skip
        errors.append(np.asarray(curve["test_error"]))
    if all(len(e) == len(sizes) for e in errors):
        ax.plot(sizes, 100 * np.mean(errors, axis=0), color=TEST_COLOR, lw=2.5, marker="o",
                label=f"mean over {len(errors)} MST paths")  # fmt: skip
    alone = 100 * np.mean([np.mean(c["endpoint_test_error"]) for c in curves.values()])
    ax.axhline(alone, color="0.3", ls="--", lw=1, label=f"one minimum alone (mean {alone:.2f}%)")
    ax.set_xticks(sizes)
    ax.set_xlabel("K, models evenly spaced along the path (K = 2: the two endpoints)")
    ax.set_ylabel("test error of the ensemble (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, png, pdf, source_note(config_hash))


# --------------------------------------------------------------------------- alignment


@_styled
def plot_alignment(edges: Mapping[tuple, Mapping], png, pdf, title: str, config_hash=None):
    """Raw vs permutation-aligned MST paths, one pair of bars per edge: the straight-line
    barrier (left) and the AutoNEB path's saddle (right), training loss; path lengths and pivots
    in the legend. ``edges[(a, b)]``: ``stages.report.mst_path_summaries`` of the edge, raw and
    aligned merged."""
    if not edges:
        raise ConfigError(f"{png}: no aligned paths to plot (alignment is none?)")
    pairs = sorted(edges)
    fig = _figure(max(6.5, 0.7 * len(pairs) + 3.0), 4.2)
    axes = fig.subplots(1, 2, sharey=True)
    x = np.arange(len(pairs))
    panels = [
        ("straight line between the minima", "raw_line_train_loss", "aligned_line_train_loss"),
        ("AutoNEB path", "saddle_train_loss", "aligned_saddle_train_loss"),
    ]
    mean = {k: np.mean([edges[p][k] for p in pairs]) for k in
            ("path_length", "aligned_path_length", "n_pivots", "aligned_n_pivots")}  # fmt: skip
    labels = (
        f"raw (path length {mean['path_length']:.3g}, {mean['n_pivots']:.3g} pivots)",
        f"aligned ({mean['aligned_path_length']:.3g}, {mean['aligned_n_pivots']:.3g} pivots)",
    )
    for ax, (name, raw, aligned) in zip(axes, panels, strict=True):
        ax.bar(x - 0.2, [edges[p][raw] for p in pairs], 0.4, color="0.6", label=labels[0])
        ax.bar(x + 0.2, [edges[p][aligned] for p in pairs], 0.4, color="tab:green",
               label=labels[1])  # fmt: skip
        ax.set_xticks(x, [f"{a}-{b}" for a, b in pairs], rotation=45, ha="right")
        ax.set_xlabel("MST edge (minima)")
        ax.set_yscale("log")
        ax.set_title(f"highest training loss on the {name}", fontsize=10)
        ax.grid(alpha=0.3, axis="y", which="both")
    axes[0].set_ylabel("training loss (nats), exact BatchNorm")
    axes[1].legend(fontsize=8, title="mean over the edges", title_fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, png, pdf, source_note(config_hash))
