"""Figures of the paper (1, 4, 5, 6, 7), the MST, the disconnectivity graph and the overlap heatmap.

Every plotting function takes plain numpy / Python data, writes ``<out_stem>.png`` and
``<out_stem>.pdf`` through :func:`save_figure` and returns the two paths. Figures are built with
``matplotlib.figure.Figure`` (no pyplot, no global backend state), i.e. they render with Agg
whatever backend is configured. Each figure carries a source note (``nobarriers <version>,
config <hash>``) in its bottom right corner.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from .. import __version__
from ..errors import ConfigError
from .table import arch_family, display_arch, display_dataset, lr_decay_epochs, mean_learning_curve

log = logging.getLogger("nobarriers")

__all__ = [
    "STYLE",
    "source_note",
    "save_figure",
    "default_cycles",
    "plot_path_cycles",
    "plot_min_vs_saddle",
    "plot_learning_curves",
    "linear_deviation",
    "arc_fractions",
    "plot_parallel_coordinates",
    "plane_basis",
    "project_to_plane",
    "plane_point",
    "plane_grid",
    "plot_plane_slice",
    "plot_mst",
    "plot_disconnectivity",
]

STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "figure.titlesize": 13,
    "pdf.fonttype": 42,  # embed TrueType: text stays selectable / editable
}
TRAIN_COLOR = "tab:orange"  # paper Figure 5: train orange, test blue
TEST_COLOR = "tab:blue"
DEFAULT_NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "digits": 10}


def source_note(config_hash: str | None = None, extra: str | None = None) -> str:
    """``"nobarriers 0.1.0, config 1a2b3c4d5e6f"`` (+ ``extra``)."""
    note = f"nobarriers {__version__}"
    if config_hash:
        note += f", config {config_hash}"
    if extra:
        note += f", {extra}"
    return note


def _stem(out_stem) -> Path:
    path = Path(out_stem)
    if path.suffix.lower() in (".png", ".pdf"):
        path = path.with_suffix("")
    return path


DPI = 150  # PNG resolution (module-level so that tests can lower it)


def save_figure(fig: Figure, out_stem, source_note: str | None = None, dpi: int | None = None):
    """Write ``fig`` to ``<out_stem>.png`` and ``<out_stem>.pdf`` (a ``.png``/``.pdf`` suffix of
    ``out_stem`` is dropped), with ``source_note`` in the bottom right corner. Returns
    ``(png_path, pdf_path)``. Parent folders are created."""
    stem = _stem(out_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if source_note:
        strip = 13.0 / (72.0 * fig.get_figheight())  # ~13 pt at the bottom for the note
        engine = fig.get_layout_engine()
        if engine is not None and hasattr(engine, "set") and "rect" in engine.get():
            engine.set(rect=(0, strip, 1, 1 - strip))
        fig.text(0.995, 0.004, source_note, ha="right", va="bottom", fontsize=7, color="0.45")
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    with matplotlib.rc_context(STYLE):
        fig.savefig(png, dpi=dpi or DPI, metadata={"Software": None})
        fig.savefig(pdf, metadata={"Creator": source_note or "nobarriers", "CreationDate": None})
    return png, pdf


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _styled(fn):
    """Run a plotting function under :data:`STYLE` (fonts are resolved when artists are made)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def _get(entry, key, default=None):
    if isinstance(entry, Mapping):
        return entry.get(key, default)
    return getattr(entry, key, default)


# --------------------------------------------------------------------------- Figure 4


def default_cycles(records: Sequence) -> list[int]:
    """The paper's Figure 4 selection: after the first cycle, at the end of the first learning
    rate phase, after the first cycle of the second phase, and after the last cycle."""
    cycles = [int(_get(r, "cycle")) for r in records]
    if not cycles:
        return []
    lrs = [_get(r, "lr") for r in records]
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
    out_stem,
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
    by_cycle = {int(_get(r, "cycle")): r for r in records}
    if not by_cycle:
        raise ConfigError(f"{out_stem}: no cycle records to plot")
    last = max(by_cycle)
    wanted = default_cycles(records) if cycles_to_show is None else list(cycles_to_show)
    chosen = []
    for c in wanted:
        c = last if int(c) == -1 else int(c)
        if c not in by_cycle:
            log.warning(
                "%s: cycle %d not recorded (cycles %s); skipped", out_stem, c, sorted(by_cycle)
            )
        elif c not in chosen:
            chosen.append(c)
    if not chosen:
        raise ConfigError(
            f"{out_stem}: none of the cycles {list(wanted)} is recorded (have {sorted(by_cycle)})"
        )
    n = len(chosen)
    fig = _figure(3.0 * n + 0.6, 3.4)
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    for k, (ax, c) in enumerate(zip(axes, chosen, strict=True)):
        rec = by_cycle[c]
        t = np.asarray(_get(rec, "t"), dtype=float)
        loss = np.asarray(_get(rec, "loss"), dtype=float)
        pivot_loss = np.asarray(_get(rec, "pivot_loss"), dtype=float)
        span = max(len(pivot_loss) - 1, 1)
        ax.plot(t / span, loss, color="tab:purple", lw=1.4, label="interpolated")
        ax.plot(np.arange(len(pivot_loss)) / span, pivot_loss, "o", color="k", ms=4, label="pivots")
        inserted = _get(rec, "inserted") or []
        if len(inserted):
            ins = np.asarray(inserted, dtype=float)
            ax.plot(
                ins / span, np.interp(ins, t, loss), "v", color="tab:red", ms=7, label="inserted"
            )
        lr = _get(rec, "lr")
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
    return save_figure(fig, out_stem, source_note(config_hash))


# --------------------------------------------------------------------------- Figure 5


@_styled
def plot_min_vs_saddle(
    rows: Sequence[Mapping],
    out_stem,
    *,
    num_classes: Mapping[str, int] | None = None,
    title: str = "Minimum and saddle losses per architecture",
    config_hash: str | None = None,
):
    """Figure 5: minimum (square) and saddle (circle) losses per architecture, train (orange) and
    test (blue), log y, one panel per dataset, architectures grouped by family.

    ``rows``: Table B.1 rows (``dataset``, ``architecture``, ``train_min``, ``train_sadd``,
    ``test_min``, ``test_sadd``; the ``*_std`` columns, if present, give error bars). The untrained
    reference ``ln(num_classes)`` is drawn per dataset (``num_classes``: dataset -> classes;
    defaults for cifar10 / cifar100 / digits).
    """
    if not rows:
        raise ConfigError(f"{out_stem}: no table rows to plot")
    classes = {**DEFAULT_NUM_CLASSES, **(num_classes or {})}
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    widths = [len([r for r in rows if r["dataset"] == d]) for d in datasets]
    fig = _figure(max(5.0, 0.55 * sum(widths) + 2.2 * len(datasets)), 4.6)
    axes = fig.subplots(1, len(datasets), squeeze=False, width_ratios=[w + 1 for w in widths])[0]
    for ax, ds in zip(axes, datasets, strict=True):
        sub = [r for r in rows if r["dataset"] == ds]
        families = list(dict.fromkeys(arch_family(r["architecture"]) for r in sub))
        sub.sort(key=lambda r: families.index(arch_family(r["architecture"])))
        x = np.arange(len(sub))
        for metric, color in [("train", TRAIN_COLOR), ("test", TEST_COLOR)]:
            for kind, marker, dx in [("min", "s", -0.12), ("sadd", "o", 0.12)]:
                y = np.array([float(r[f"{metric}_{kind}"]) for r in sub])
                err = [r.get(f"{metric}_{kind}_std") for r in sub]
                yerr = None
                if not any(e is None for e in err):
                    e = np.array(err, dtype=float)
                    yerr = np.stack([np.minimum(e, 0.9 * y), e])  # stay positive on log y
                ax.errorbar(
                    x + dx,
                    y,
                    yerr=yerr,
                    fmt=marker,
                    color=color,
                    mfc=color if kind == "sadd" else "white",
                    ms=7,
                    capsize=2,
                    label=f"{metric} {'minimum' if kind == 'min' else 'saddle'}",
                )
        # family separators and labels
        fams = [arch_family(r["architecture"]) for r in sub]
        for k in range(1, len(fams)):
            if fams[k] != fams[k - 1]:
                ax.axvline(k - 0.5, color="0.6", ls=":", lw=1)
        if ds in classes:
            ref = math.log(classes[ds])
            ax.axhline(ref, color="0.3", ls="--", lw=1, label="untrained (ln #classes)")
            ax.annotate(
                f"untrained: ln {classes[ds]} = {ref:.2f}",
                (0.02, ref),
                xycoords=("axes fraction", "data"),
                xytext=(0, -3),
                textcoords="offset points",
                va="top",
                fontsize=8,
                color="0.3",
            )
        ax.set_xticks(x, [display_arch(r["architecture"]) for r in sub], rotation=45, ha="right")
        ax.set_xlim(-0.6, len(sub) - 0.4)
        ax.set_yscale("log")
        ax.set_title(display_dataset(ds))
        ax.set_xlabel("architecture")
        ax.grid(alpha=0.3, axis="y", which="both")
    axes[0].set_ylabel("cross-entropy loss (nats)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower left", ncol=3, fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, out_stem, source_note(config_hash))


# --------------------------------------------------------------------------- Figure 6


@_styled
def plot_learning_curves(
    histories: Sequence[Sequence[Mapping]],
    saddle_level: float,
    out_stem,
    title: str,
    *,
    key: str = "train_loss",
    crossing: int | None = None,
    lr_decays: Sequence[int] | None = None,
    log_y: bool = True,
    config_hash: str | None = None,
):
    """Figure 6: per-epoch training loss of each minimum (thin) and their mean (thick), the mean
    saddle train loss (horizontal line), the crossing epoch (vertical line) and the learning rate
    phases (shaded; from the histories' ``lr`` unless ``lr_decays`` is given).

    ``histories``: one list per minimum of ``{epoch, train_loss, lr?}``. ``crossing``: default =
    the first epoch at which the mean falls below ``saddle_level`` (as in Table B.1).
    """
    epochs, mean = mean_learning_curve(histories, key)
    if crossing is None:
        below = np.nonzero(mean < float(saddle_level))[0]
        crossing = int(epochs[below[0]]) if below.size else None
    decays = list(lr_decays) if lr_decays is not None else lr_decay_epochs(histories[0])
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    for k, hist in enumerate(histories):
        h = sorted(hist, key=lambda e: int(_get(e, "epoch")))
        ax.plot(
            [int(_get(e, "epoch")) for e in h],
            [float(_get(e, key)) for e in h],
            color="tab:orange",
            lw=0.7,
            alpha=0.45,
            label="minima" if k == 0 else None,
        )
    ax.plot(epochs, mean, color="tab:red", lw=2.2, label=f"mean of {len(histories)}")
    ax.axhline(saddle_level, color="k", ls="--", lw=1.2, label=f"mean saddle {saddle_level:.4g}")
    bounds = [epochs.min() - 0.5, *[d - 0.5 for d in decays], epochs.max() + 0.5]
    for k in range(len(bounds) - 1):
        if k % 2 == 1:
            ax.axvspan(bounds[k], bounds[k + 1], color="0.9", zorder=0)
    for d in decays:
        ax.axvline(d - 0.5, color="0.5", lw=0.8)
    if crossing is not None:
        ax.axvline(crossing, color="tab:green", lw=1.5, label=f"crossing: epoch {crossing}")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (nats, no augmentation)")
    ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper right")
    ax.set_title(title + ("" if not decays else "  (shading: learning-rate phases)"), fontsize=11)
    return save_figure(fig, out_stem, source_note(config_hash))


# --------------------------------------------------------------------------- Figure 7


def arc_fractions(pivots) -> np.ndarray:
    """Cumulative Euclidean arc length of the polyline through ``pivots`` ``[N+2, D]``, scaled to
    0..1 (``[N+2]``)."""
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
    out_stem,
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
    return save_figure(fig, out_stem, source_note(config_hash))


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
    out_stem,
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
    return save_figure(fig, out_stem, source_note(config_hash))


# --------------------------------------------------------------------------- MST


def _node_values(nodes: Sequence, node_loss) -> np.ndarray:
    if isinstance(node_loss, Mapping):
        return np.array([float(node_loss[n]) for n in nodes])
    values = np.asarray(node_loss, dtype=float)
    if len(values) != len(nodes):
        raise ValueError(f"node_loss has {len(values)} values for {len(nodes)} nodes")
    return values


@_styled
def plot_mst(
    nodes: Sequence,
    node_loss,
    edges: Sequence[tuple],
    out_stem,
    title: str,
    *,
    config_hash: str | None = None,
):
    """The minimum spanning tree of the computed paths: nodes = minima (label = id, colour =
    training loss of the minimum), edges labelled with their saddle training loss.

    ``node_loss``: mapping node -> loss or a sequence aligned with ``nodes``; ``edges``:
    ``[(i, j, saddle)]``. Layout: networkx Kamada-Kawai on the saddle-weighted tree (deterministic;
    falls back to a seeded spring layout).
    """
    import networkx as nx

    nodes = list(nodes)
    values = _node_values(nodes, node_loss)
    g = nx.Graph()
    g.add_nodes_from(nodes)
    for i, j, w in edges:
        g.add_edge(i, j, saddle=float(w))
    try:
        pos = nx.kamada_kawai_layout(g)
    except Exception:  # scipy missing or a degenerate graph
        pos = nx.spring_layout(g, seed=0)
    fig = _figure(6.4, 5.4)
    ax = fig.subplots()
    saddles = np.array([float(w) for _, _, w in edges]) if edges else np.array([1.0])
    enorm = Normalize(saddles.min(), saddles.max() if saddles.max() > saddles.min() else None)
    ecmap = matplotlib.colormaps["Reds"]
    for i, j, w in edges:
        (x0, y0), (x1, y1) = pos[i], pos[j]
        ax.plot([x0, x1], [y0, y1], color=ecmap(0.35 + 0.65 * enorm(float(w))), lw=2.2, zorder=1)
        ax.text(
            (x0 + x1) / 2,
            (y0 + y1) / 2,
            f"{float(w):.4g}",
            fontsize=8,
            ha="center",
            va="center",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
            zorder=3,
        )
    xy = np.array([pos[n] for n in nodes])
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=values, cmap="viridis", s=420, edgecolors="k", zorder=2)
    for (x, y), n in zip(xy, nodes, strict=True):
        ax.text(x, y, str(n), ha="center", va="center", fontsize=8, color="w", zorder=4)
    cbar = fig.colorbar(sc, ax=ax)
    cbar.set_label("training loss of the minimum (nats)")
    ax.set_title(title + "\nedge labels: saddle training loss (nats)", fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("layout (no metric meaning)")
    ax.margins(0.12)
    return save_figure(fig, out_stem, source_note(config_hash))


# --------------------------------------------------------------------------- disconnectivity


def _merge_tree(nodes: Sequence, merges: Sequence) -> tuple[list, list]:
    """Normalise merges to ``[(child_a, child_b, height)]`` with scipy ids (leaves 0..n-1, k-th
    merge n+k). Accepted: scipy-style tuples ``(a, b, height[, size])``
    (``landscape.single_linkage``) or ``(members_a, members_b, height)`` with iterables of node
    labels."""
    n = len(nodes)
    index = {node: k for k, node in enumerate(nodes)}
    out, members = [], [frozenset([k]) for k in range(n)]
    owner = {frozenset([k]): k for k in range(n)}
    for m in merges:
        a, b, h = (m["a"], m["b"], m["height"]) if isinstance(m, Mapping) else tuple(m)[:3]
        ids = []
        for side in (a, b):
            if isinstance(side, frozenset | set | list | tuple):
                key = frozenset(index[x] for x in side)
                if key not in owner:
                    raise ValueError(f"merge {m!r}: {side!r} is not a current cluster")
                ids.append(owner[key])
            else:
                ids.append(int(side))
        for cid in ids:
            if cid < 0 or cid >= n + len(out):
                raise ValueError(f"merge {m!r}: unknown cluster id {cid}")
        merged = members[ids[0]] | members[ids[1]]
        members.append(merged)
        owner[merged] = n + len(out)
        out.append((ids[0], ids[1], float(h)))
    return out, members


@_styled
def plot_disconnectivity(
    nodes: Sequence,
    node_loss,
    merges: Sequence,
    out_stem,
    title: str,
    *,
    log_y: bool = False,
    config_hash: str | None = None,
):
    """Disconnectivity graph from single-linkage merges over the ultrametric bounds.

    Vertical axis = training loss. Each minimum is a leaf line from its own loss up to the height
    at which its cluster first merges; each merge is a horizontal bar at the merge height (the
    saddle bound) joining its two children, which continue upwards from there. ``merges``: the
    output of ``landscape.single_linkage`` (``(a, b, height, size)``, scipy ids) or ``(members_a,
    members_b, height)``. Infinite heights (components without a computed path) are drawn at the
    top, marked "not connected". Leaves are ordered so that within each merge the child holding
    the lower minimum is on the left.
    """
    nodes = list(nodes)
    n = len(nodes)
    energy = _node_values(nodes, node_loss)
    tree, members = _merge_tree(nodes, merges)
    finite_h = [h for _, _, h in tree if math.isfinite(h)]
    top_finite = max([*finite_h, float(energy.max())])
    span = top_finite - float(energy.min()) or max(abs(top_finite), 1e-3)
    inf_h = top_finite + 0.15 * span if not log_y else top_finite * 1.5
    height = list(energy) + [h if math.isfinite(h) else inf_h for _, _, h in tree]
    low = [float(energy[list(m)].min()) for m in members]

    children = {n + k: (a, b) for k, (a, b, _) in enumerate(tree)}
    merged_ids = {c for ab in children.values() for c in ab}
    roots = [c for c in range(n + len(tree)) if c not in merged_ids]
    roots.sort(key=lambda c: low[c])

    order: list[int] = []

    def leaves(c):
        stack = [c]
        while stack:
            x = stack.pop()
            if x < n:
                order.append(x)
            else:
                a, b = sorted(children[x], key=lambda y: low[y])
                stack += [b, a]

    for r in roots:
        leaves(r)
    xpos = {leaf: k for k, leaf in enumerate(order)}

    def x_of(c):
        if c < n:
            return float(xpos[c])
        a, b = children[c]
        return (x_of(a) + x_of(b)) / 2

    fig = _figure(max(5.5, 0.45 * n + 2.5), 4.8)
    ax = fig.subplots()
    parent_h = {}
    for c, (a, b) in children.items():
        parent_h[a] = parent_h[b] = height[c]
    for c in range(n + len(tree)):
        top = parent_h.get(c, height[c])
        x = x_of(c)
        if c < n:
            ax.plot([x, x], [height[c], top], color="tab:blue", lw=1.6)
        elif c in parent_h:
            ax.plot([x, x], [height[c], top], color="k", lw=1.2)
        if c >= n:
            a, b = children[c]
            ax.plot([x_of(a), x_of(b)], [height[c], height[c]], color="k", lw=1.2)
    ax.scatter([xpos[k] for k in range(n)], energy, marker="_", s=160, color="tab:blue", zorder=3)
    if any(not math.isfinite(h) for _, _, h in tree):
        ax.axhline(inf_h, color="tab:red", ls=":", lw=1)
        ax.text(0, inf_h, " not connected", color="tab:red", va="bottom", fontsize=8)
    ax.set_xticks(range(n), [str(nodes[leaf]) for leaf in order])
    ax.set_xlabel("minimum (id)")
    ax.set_ylabel("training loss (nats)")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlim(-0.7, n - 0.3)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(title)
    return save_figure(fig, out_stem, source_note(config_hash))
