"""Comparisons beside Table B.1: connection families side by side (AutoNEB, parametric curves,
the straight lines), AutoNEB's run-to-run spread, and their figures. Plain numbers in, CSV and
figures out (torch-free)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..formats.csv_tables import frame_records, read_csv, write_csv
from .style import new_figure, save_figure, source_note

#: one row per pair and connection: the maxima along it, the barrier above the higher endpoint,
#: its length in parameter space, and what it cost
FAMILY_COLUMNS = [
    "dataset",
    "architecture",
    "i",
    "j",
    "on_mst",
    "family",
    "max_train_loss",
    "max_test_error",
    "barrier",
    "length",
    "gradient_samples",
    "wall_s",
    "config_hash",
]
FAMILY_ORDER = ("autoneb", "bezier", "polychain", "line", "aligned_line")
_TYPES = {
    **{c: "str" for c in ("dataset", "architecture", "family", "config_hash")},
    "i": "int",
    "j": "int",
    "gradient_samples": "int",
    "on_mst": "bool",
}


def family_row(dataset, arch, pair, on_mst, family, values: Mapping, ends, config_hash) -> dict:
    """One connection of a pair: ``values`` has ``max_train_loss`` (and optionally
    ``max_test_error``, ``length``, ``gradient_samples``, ``wall_s``); ``ends``: the two
    minima's training losses (the barrier is above the higher one, at least 0)."""
    top = values.get("max_train_loss")
    return {
        "dataset": dataset,
        "architecture": arch,
        "i": pair[0],
        "j": pair[1],
        "on_mst": bool(on_mst),
        "family": family,
        "max_train_loss": top,
        "max_test_error": values.get("max_test_error"),
        "barrier": None if top is None else max(float(top) - max(ends), 0.0),
        "length": values.get("length"),
        "gradient_samples": values.get("gradient_samples"),
        "wall_s": values.get("wall_s"),
        "config_hash": config_hash,
    }


def write_families(rows: Sequence[Mapping], csv_path) -> None:
    write_csv(list(rows), FAMILY_COLUMNS, csv_path)


def read_families(csv_path) -> list[dict]:
    return frame_records(read_csv(csv_path, FAMILY_COLUMNS, _TYPES, "families table"))


def family_means(rows: Sequence[Mapping], column: str) -> dict[tuple[str, bool], float]:
    """``{(family, on_mst): mean of column}`` over the pairs that have it."""
    out: dict = {}
    for key in {(r["family"], r["on_mst"]) for r in rows}:
        values = [r[column] for r in rows if (r["family"], r["on_mst"]) == key]
        values = [float(v) for v in values if v is not None]
        if values:
            out[key] = float(np.mean(values))
    return out


def plot_families(rows: Sequence[Mapping], png, pdf, title: str, config_hash=None):
    """The barrier above the higher endpoint of every compared pair, one column of points per
    connection family (MST edges filled, the off-MST sample open), the means marked."""
    fig = new_figure(7.0, 4.4)
    ax = fig.subplots()
    families = [f for f in FAMILY_ORDER if any(r["family"] == f for r in rows)]
    for x, family in enumerate(families):
        for on_mst, marker in ((True, "o"), (False, "s")):
            values = [
                r["barrier"]
                for r in rows
                if (r["family"], r["on_mst"]) == (family, on_mst) and r["barrier"] is not None
            ]
            if not values:
                continue
            jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else [0.0]
            label = ("MST edges" if on_mst else "off-MST sample") if x == 0 else None
            ax.plot(np.add(x, jitter), values, marker, ms=5, alpha=0.75, label=label,
                    mfc="tab:blue" if on_mst else "none", mec="tab:blue")  # fmt: skip
            ax.hlines(np.mean(values), x - 0.25, x + 0.25, color="k", lw=1.5)
    ax.set_xticks(range(len(families)), [f.replace("_", " ") for f in families])
    ax.set_ylabel("barrier above the higher minimum (train loss, nats)")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.grid(alpha=0.3, axis="y")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left")
    ax.set_title(title + ": connections of the same minima (bar: mean)", fontsize=11)
    return save_figure(fig, png, pdf, source_note(config_hash))


def repeat_columns(saddles: Sequence[float]) -> dict:
    """pairs.csv's columns of one MST edge's AutoNEB runs (the first is the paper's)."""
    values = [float(s) for s in saddles]
    return {
        "repeats": len(values),
        "repeat_saddle_min": min(values),
        "repeat_saddle_max": max(values),
        "repeat_saddle_spread": max(values) - min(values),
    }


def plot_repeats(runs: Mapping[tuple, Sequence[float]], ends: Mapping[tuple, float], png, pdf,
                 title: str, config_hash=None):  # fmt: skip
    """The saddle of every AutoNEB run of every MST edge, above its higher minimum: the spread
    the paper's single run cannot show (run 1, the paper's, filled)."""
    fig = new_figure(7.0, 4.2)
    ax = fig.subplots()
    pairs = sorted(runs, key=lambda p: ends[p])
    for x, pair in enumerate(pairs):
        barriers = [float(s) - ends[pair] for s in runs[pair]]
        ax.plot([x] * (len(barriers) - 1), barriers[1:], "o", mfc="none", mec="tab:orange")
        ax.plot([x], barriers[:1], "o", color="tab:orange", label="run 1 (the paper's)"
                if x == 0 else None)  # fmt: skip
        ax.vlines(x, min(barriers), max(barriers), color="tab:orange", lw=1)
    ax.set_xticks(range(len(pairs)), [f"{a}-{b}" for a, b in pairs], rotation=45)
    ax.set_xlabel("MST edge (minima)")
    ax.set_ylabel("saddle − higher minimum (train loss, nats)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(title + f": {len(next(iter(runs.values())))} AutoNEB runs per edge", fontsize=11)
    return save_figure(fig, png, pdf, source_note(config_hash))
