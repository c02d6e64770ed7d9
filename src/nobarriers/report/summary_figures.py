"""Figures over rows: Figure 5 (minimum and saddle losses per architecture) and Figure 6 (the
learning curves against the saddle level)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .. import datasets as datasets_catalogue
from .. import models
from ..core.errors import ConfigError
from .labels import arch_family, arch_label, dataset_label
from .learning_curves import field_of, lr_decay_epochs, mean_learning_curve
from .style import TEST_COLOR, TRAIN_COLOR, save_figure, source_note
from .style import new_figure as _figure
from .style import styled as _styled

# --------------------------------------------------------------------------- Figure 5


@_styled
def plot_min_vs_saddle(
    rows: Sequence[Mapping],
    png,
    pdf,
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
    defaults: the built-in datasets').
    """
    if not rows:
        raise ConfigError(f"{png}: no table rows to plot")
    classes = {n: s.num_classes for n, s in datasets_catalogue.builtin().items()}
    classes.update(num_classes or {})
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
        ax.set_xticks(x, [arch_label(r["architecture"]) for r in sub], rotation=45, ha="right")
        ax.set_xlim(-0.6, len(sub) - 0.4)
        ax.set_yscale("log")
        ax.set_title(dataset_label(ds))
        ax.set_xlabel("architecture")
        ax.grid(alpha=0.3, axis="y", which="both")
    axes[0].set_ylabel("cross-entropy loss (nats)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower left", ncol=3, fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, png, pdf, source_note(config_hash))


# --------------------------------------------------------------------------- Figure 6


@_styled
def plot_learning_curves(
    histories: Sequence[Sequence[Mapping]],
    saddle_level: float,
    png,
    pdf,
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
        h = sorted(hist, key=lambda e: int(field_of(e, "epoch")))
        ax.plot(
            [int(field_of(e, "epoch")) for e in h],
            [float(field_of(e, key)) for e in h],
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
    return save_figure(fig, png, pdf, source_note(config_hash))


def plot_minima_levels(
    train_losses: Sequence[float], saddle_level: float, png, pdf, title: str, *, config_hash=None
):
    """Figure 6 for minima trained elsewhere (no learning curves): each minimum's training loss
    (exact BatchNorm, no augmentation) beside the mean saddle level."""
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    seeds = np.arange(len(train_losses))
    ax.plot(seeds, train_losses, "o", color="tab:orange", label="minima (imported)")
    ax.axhline(saddle_level, color="k", ls="--", lw=1.2, label=f"mean saddle {saddle_level:.4g}")
    ax.set_yscale("log")
    ax.set_xlabel("minimum (seed offset)")
    ax.set_ylabel("training loss (nats, no augmentation)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper right")
    ax.set_title(f"{title}: imported minima, no learning curves", fontsize=11)
    return save_figure(fig, png, pdf, source_note(config_hash))


def _series(rows: Sequence[Mapping]) -> list[tuple[str, str, list[tuple[float, Mapping]]]]:
    """Width and depth series of the rows: ``(title, axis, [(x, row), ...])`` for every family
    of every dataset with at least two rows that differ in one of the two (built-in models)."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        described = []
        for r in rows:
            if r["dataset"] != ds:
                continue
            try:
                described.append((models.describe(r["architecture"]), r))
            except ConfigError:  # a user's network: no width or depth to read off its name
                continue
        for axis, fixed in (("width", "depth"), ("depth", "width")):
            groups: dict = {}
            for info, r in described:
                if axis in info and fixed in info:
                    groups.setdefault((info["family"], info[fixed]), []).append((info[axis], r))
                elif axis == "depth" and "width" not in info and "depth" in info:
                    groups.setdefault((info["family"], None), []).append((info["depth"], r))
            for (family, value), points in groups.items():
                if len({x for x, _ in points}) >= 2:
                    at = "" if value is None else f" at {fixed} {value}"
                    title = f"{dataset_label(ds)} {family.upper()}{at}"
                    out.append((title, axis, sorted(points, key=lambda p: p[0])))
    return out


def plot_trends(rows: Sequence[Mapping], png, pdf, config_hash: str | None = None):
    """The paper's trend at a glance: for every width (and depth) series of a family, the
    minima's training loss (Min), the saddles' (Sadd), the barrier of the paths above their
    higher endpoint and the straight line's, against width or depth. Rows without a series
    (a single width) leave an empty note instead of a panel."""
    series = _series(rows)
    fig = _figure(max(5.0, 4.4 * max(len(series), 1)), 4.4)
    if not series:
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "no width or depth series among the rows", ha="center", va="center")
        return save_figure(fig, png, pdf, source_note(config_hash))
    axes = fig.subplots(1, len(series), squeeze=False)[0]
    curves = [
        ("train_min", "Min (train loss)", "s", TRAIN_COLOR, "-"),
        ("train_sadd", "Sadd (train loss)", "o", TRAIN_COLOR, "--"),
        ("barrier_mean", "path barrier above higher minimum", "^", "tab:green", "-"),
        ("line_barrier_mean", "straight-line barrier", "v", "tab:red", ":"),
    ]
    for ax, (title, axis, points) in zip(axes, series, strict=True):
        xs = [x for x, _ in points]
        for key, label, marker, color, style in curves:
            ys = [r.get(key) for _, r in points]
            if any(y is None for y in ys):
                continue
            ys = [max(float(y), 1e-5) for y in ys]  # a zero barrier sits at the axis' floor
            ax.plot(xs, ys, marker=marker, color=color, ls=style, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_yscale("log")
        ax.set_xlabel(axis)
        ax.set_ylabel("training loss (nats)")
        ax.grid(alpha=0.3, which="both")
        ax.set_title(title, fontsize=11)
    axes[0].legend(loc="best", fontsize=8)
    return save_figure(fig, png, pdf, source_note(config_hash, "barriers floored at 1e-5"))
