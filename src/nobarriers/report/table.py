"""Table B.1 (paper Appendix B): one row per dataset x architecture, and its CSV, Markdown and
LaTeX renderings (pandas).

Everything here works on plain Python / numpy data; the workflow scripts load the minimum and path
files and pass their numbers in.

Table B.1, column by column (paper Appendix B; ``docs/design.md``):

* ``train_min`` -- mean training loss over the minima (exact BN, un-augmented data).
* ``train_sadd`` -- for every edge of the final MST (weight = saddle train loss of the AutoNEB
  run) take the maximum training loss along the *densely evaluated* path; mean over the edges.
* ``factor`` = ``train_sadd / train_min`` (of the two means, as the paper's caption says).
* ``epoch`` -- the first epoch at which the *mean learning curve* (per-epoch un-augmented training
  loss, averaged over the minima at equal epoch numbers) falls strictly below ``train_sadd``. The
  epoch number is the history's own ``epoch`` value (the loss measured after that epoch).
  ``None`` when the curve never falls below the saddle. ``epoch_fraction`` = ``epoch /
  epochs_total``; ``epoch_in_last_phase`` is True when that epoch was trained with the last (lowest)
  learning rate of a schedule that decays at least once (the paper prints those epochs in bold).
  Without an ``lr`` entry in the histories the He et al. convention is assumed (last phase = the
  last 25% of training).
* ``test_min`` / ``test_sadd`` -- the same for the test loss ("test energy").
* ``test_error_min`` / ``test_error_sadd`` -- the same for the test error, as **fractions** (the
  project's convention for files); the Markdown and LaTeX tables show percent.
* ``delta`` -- ``test_error_sadd - test_error_min`` in **percentage points** (the paper's column).
* ``*_std`` -- sample standard deviations (ddof=1; 0 for a single instance) over the minima or the
  edges; ``max_rel_std`` is the largest std/mean among the six energy/error columns (the paper
  states all are below 10%).
* ``n_minima``, ``n_edges`` (MST edges), ``n_paths`` (computed paths), ``n_edges_sadd_below_min``
  (MST edges whose dense saddle lies below the higher of its two minima -- must be 0),
  ``n_overlap_flagged`` (pairs of minima above the misclassification-overlap threshold),
  ``config_hash``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.atomic import atomic_path
from ..core.errors import ConfigError
from ..core.metrics import METRICS
from ..formats.csv_tables import frame_records, read_csv, records, write_csv
from ..formats.records import TABLE_B1_COLUMNS, TableRow
from .labels import arch_label, dataset_label
from .learning_curves import crossing_epoch, field_of


def _std(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _column(items: Sequence[Mapping], key: str, what: str) -> np.ndarray:
    out = []
    for k, item in enumerate(items):
        value = field_of(item, key)
        if value is None:
            raise ConfigError(f"{what} {k} ({_label(item)}) has no {key!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{what} {k} ({_label(item)}) has a non-finite {key!r}: {value}")
        out.append(value)
    return np.array(out, dtype=float)


def _label(item) -> str:
    if field_of(item, "seed") is not None:
        return f"seed {field_of(item, 'seed')}"
    if field_of(item, "a") is not None:
        return f"edge {field_of(item, 'a')}-{field_of(item, 'b')}"
    return "?"


def _resolve_hash(config_hash, items: Iterable[Mapping], where: str) -> str | None:
    """The single config hash of ``items`` (and the argument); ConfigError on a mismatch."""
    hashes = {}
    if config_hash is not None:
        hashes[str(config_hash)] = "the config_hash argument"
    for item in items:
        h = field_of(item, "config_hash")
        if h is not None:
            hashes.setdefault(str(h), f"{where} {_label(item)}")
    if len(hashes) > 1:
        detail = ", ".join(f"{h} ({src})" for h, src in hashes.items())
        raise ConfigError(
            f"results of different configurations cannot share a table row: config hashes {detail}"
        )
    return next(iter(hashes), None)


def table_b1_row(
    dataset: str,
    arch: str,
    minima: Sequence[Mapping],
    saddles: Sequence[Mapping],
    epochs_total: int | None,
    *,
    n_paths: int | None = None,
    n_overlap_flagged: int = 0,
    config_hash: str | None = None,
    sadd_tolerance: float = 1e-4,
) -> TableRow:
    """One row of Table B.1 (columns: ``TABLE_B1_COLUMNS``; definitions: module docstring).

    ``minima``: one dict per minimum ``{seed, train_loss, train_error, test_loss, test_error,
    history: [{epoch, lr, train_loss, ...}, ...], config_hash?}`` (errors as fractions, history
    train loss measured without augmentation). ``saddles``: one dict per MST edge ``{a, b,
    train_loss, train_error, test_loss, test_error, config_hash?}`` = the maximum of each metric
    along the densely evaluated path. ``n_paths`` = number of computed paths (default: number of
    edges). Any ``config_hash`` in the items must equal the argument (ConfigError otherwise).
    An MST edge whose saddle lies below its higher minimum by more than ``sadd_tolerance``
    (relative) is counted in ``n_edges_sadd_below_min``.
    """
    where = f"{dataset}/{arch}"
    if not minima:
        raise ConfigError(f"{where}: no minima given")
    if not saddles:
        raise ConfigError(f"{where}: no MST edges given (need at least two minima and a path)")
    h = _resolve_hash(config_hash, list(minima) + list(saddles), f"{where}:")

    m = {k: _column(minima, k, f"{where}: minimum") for k in METRICS}
    s = {k: _column(saddles, k, f"{where}: MST edge") for k in METRICS}
    train_min, train_sadd = float(m["train_loss"].mean()), float(s["train_loss"].mean())
    factor = train_sadd / train_min if train_min > 0 else math.inf

    loss_of = {}
    for mi in minima:
        if field_of(mi, "seed") is not None:
            loss_of[str(field_of(mi, "seed"))] = float(field_of(mi, "train_loss"))
    below = 0
    for edge in saddles:
        ends = [loss_of.get(str(field_of(edge, "a"))), loss_of.get(str(field_of(edge, "b")))]
        if None in ends:
            raise ConfigError(
                f"{where}: MST {_label(edge)} refers to a minimum that is not among the minima "
                f"{sorted(loss_of)}"
            )
        if float(field_of(edge, "train_loss")) < max(ends) * (1 - sadd_tolerance) - 1e-12:
            below += 1

    histories = [field_of(mi, "history") for mi in minima]
    if not any(histories):  # minima trained elsewhere: no learning curves, no Epoch
        cross = {"epoch": None, "fraction": None, "in_last_phase": None, "epochs_total": 0}
    else:
        for k, (mi, hist) in enumerate(zip(minima, histories, strict=True)):
            if not hist:
                raise ConfigError(f"{where}: minimum {k} ({_label(mi)}) has no per-epoch history")
        cross = crossing_epoch(histories, train_sadd, epochs_total)

    row = {
        "dataset": dataset,
        "architecture": arch,
        "train_min": train_min,
        "train_sadd": train_sadd,
        "factor": factor,
        "epoch": cross["epoch"],
        "epoch_fraction": cross["fraction"],
        "epoch_in_last_phase": cross["in_last_phase"],
        "epochs_total": cross["epochs_total"],
        "test_min": float(m["test_loss"].mean()),
        "test_sadd": float(s["test_loss"].mean()),
        "test_error_min": float(m["test_error"].mean()),
        "test_error_sadd": float(s["test_error"].mean()),
        "delta": 100.0 * float(s["test_error"].mean() - m["test_error"].mean()),
        "train_error_min": float(m["train_error"].mean()),
        "train_error_sadd": float(s["train_error"].mean()),
        "train_min_std": _std(m["train_loss"]),
        "train_sadd_std": _std(s["train_loss"]),
        "test_min_std": _std(m["test_loss"]),
        "test_sadd_std": _std(s["test_loss"]),
        "test_error_min_std": _std(m["test_error"]),
        "test_error_sadd_std": _std(s["test_error"]),
        "n_minima": len(minima),
        "n_edges": len(saddles),
        "n_paths": int(n_paths) if n_paths is not None else len(saddles),
        "n_edges_sadd_below_min": below,
        "n_overlap_flagged": int(n_overlap_flagged),
        "config_hash": h,
    }
    rel = []
    for mean_key, std_key in [
        ("train_min", "train_min_std"),
        ("train_sadd", "train_sadd_std"),
        ("test_min", "test_min_std"),
        ("test_sadd", "test_sadd_std"),
        ("test_error_min", "test_error_min_std"),
        ("test_error_sadd", "test_error_sadd_std"),
    ]:
        if row[mean_key] > 0:
            rel.append(row[std_key] / row[mean_key])
    row["max_rel_std"] = max(rel) if rel else 0.0
    return TableRow(**{c: row[c] for c in TABLE_B1_COLUMNS if c in row})


def check_config_hashes(rows: Sequence[Mapping], expected: Mapping | None = None) -> None:
    """Refuse rows computed under other settings than the current configuration.

    ``expected`` maps ``(dataset, architecture)`` to the config hash the current configuration
    gives that row; a row with another (or no) hash raises ConfigError naming the row and both
    hashes. Rows of different architectures have different hashes by design (their settings
    differ); what must never happen is a row whose results come from a superseded configuration.
    """
    if expected is None:
        return
    for r in rows:
        key = (r["dataset"], r["architecture"])
        want = expected.get(key)
        if want is None:
            raise ConfigError(f"Table B.1: row {key[0]}/{key[1]} is not in the configuration")
        if str(r.get("config_hash")) != str(want):
            raise ConfigError(
                f"Table B.1 must not mix results of different configurations: row "
                f"{key[0]}/{key[1]} has config hash {r.get('config_hash')!r}, the current "
                f"configuration gives {want!r}"
            )


def _fmt_train(x) -> str:
    """4 decimals as in the paper; a nonzero value that would print as 0.0000 keeps 2 digits."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "--"
    if x != 0 and abs(x) < 5e-5:
        return f"{x:.1e}"
    return f"{x:.4f}"


def _fmt(x, digits: int, scale: float = 1.0) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "--" if x is None or math.isnan(x) else "inf"
    return f"{x * scale:.{digits}f}"


def _display_cells(row: Mapping) -> list[str]:
    """The nine numeric cells of the paper's layout (epoch without emphasis)."""
    epoch = row.get("epoch")
    return [
        _fmt_train(row["train_min"]),
        _fmt_train(row["train_sadd"]),
        _fmt(row["factor"], 1),
        "--" if epoch is None else str(int(epoch)),
        _fmt(row["test_min"], 2),
        _fmt(row["test_sadd"], 2),
        _fmt(row["test_error_min"], 1, 100.0),
        _fmt(row["test_error_sadd"], 1, 100.0),
        _fmt(row["delta"], 1),
    ]


def _footnotes(rows: Sequence[Mapping]) -> list[str]:
    notes = [
        "Min.: mean over the minima; Sadd.: maximum of each metric along the densely evaluated "
        "path of each edge of the minimum spanning tree, averaged over the edges. "
        "Factor = Sadd./Min. (train energy). Epoch: first epoch at which the mean training "
        "loss falls below the mean saddle loss (bold: in the last learning-rate phase; "
        "--: never). Delta = test error Sadd. - Min. in percentage points."
    ]
    imported = [r for r in rows if not int(r.get("epochs_total") or 0)]
    if imported:
        notes.append(
            "Epoch --: "
            + "; ".join(
                f"{dataset_label(r['dataset'])} {arch_label(r['architecture'])}" for r in imported
            )
            + ": minima trained elsewhere and imported, without learning curves."
        )
    counts = {(r["n_minima"], r["n_edges"], r["n_paths"]) for r in rows}
    if len(counts) == 1:
        n_min, n_edges, n_paths = next(iter(counts))
        notes.append(
            f"Each row: {n_min} minima, {n_edges} MST edges out of {n_paths} computed paths."
        )
    else:
        notes.append(
            "Per row (minima / MST edges / computed paths): "
            + "; ".join(
                f"{dataset_label(r['dataset'])} {arch_label(r['architecture'])} "
                f"{r['n_minima']}/{r['n_edges']}/{r['n_paths']}"
                for r in rows
            )
        )
    flagged = [r for r in rows if int(r.get("n_overlap_flagged") or 0) > 0]
    if flagged:
        notes.append(
            "DAGGER "
            + "; ".join(
                f"{dataset_label(r['dataset'])} {arch_label(r['architecture'])}: "
                f"{r['n_overlap_flagged']} pair(s) of minima whose misclassified test images "
                "overlap above the paper's threshold: they err on the same hard images, which "
                "does not make them one minimum (every pair is connected and counted)"
                for r in flagged
            )
        )
    bad = [r for r in rows if int(r.get("n_edges_sadd_below_min") or 0) > 0]
    if bad:
        notes.append(
            "Warning: saddle below a minimum on "
            + "; ".join(
                f"{arch_label(r['architecture'])} ({r['n_edges_sadd_below_min']} edges)"
                for r in bad
            )
        )
    hashes = sorted({str(r.get("config_hash")) for r in rows if r.get("config_hash")})
    if hashes:
        notes.append("Config hash" + ("es" if len(hashes) > 1 else "") + f" {', '.join(hashes)}.")
    return notes


def _table_cells(rows: Sequence[Mapping], bold: str, dagger: str) -> list[list[str]]:
    """Display cells of the paper's layout, one list per row; a dataset is named once."""
    out, previous = [], None
    for r in rows:
        cells = _display_cells(r)
        if r.get("epoch") is not None and r.get("epoch_in_last_phase"):
            cells[3] = bold.format(cells[3])
        ds = dataset_label(r["dataset"])
        arch = arch_label(r["architecture"])
        if int(r.get("n_overlap_flagged") or 0) > 0:
            arch += dagger
        out.append([ds if ds != previous else "", arch, *cells])
        previous = ds
    return out


_GROUPS = (
    [("", "Dataset"), ("", "Architecture")]
    + [("Train energy", c) for c in ("Min.", "Sadd.", "Factor", "Epoch")]
    + [("Test energy", "Min."), ("Test energy", "Sadd.")]
    + [("Test error rate [%]", c) for c in ("Min.", "Sadd.", "Δ")]
)


def format_table_b1_markdown(rows: Sequence) -> str:
    """Markdown rendering of Table B.1 in the paper's layout and precision."""
    rows = records(rows)
    frame = pd.DataFrame(
        _table_cells(rows, "**{}**", "†"), columns=[f"{g} {c}".strip() for g, c in _GROUPS]
    )
    table = frame.to_markdown(
        index=False, disable_numparse=True, colalign=["left", "left"] + ["right"] * 9
    )
    lines = [
        "**Table B.1.** TRAIN ENERGY (Min., Sadd., Factor, Epoch) · TEST ENERGY (Min., Sadd.) · "
        "TEST ERROR RATE [%] (Min., Sadd., Δ)",
        "",
        table,
        "",
    ]
    lines += [note.replace("DAGGER", "†").replace("Delta", "Δ") + "  " for note in _footnotes(rows)]
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    text = text.replace("\\", r"\textbackslash{}").replace("%", r"\%").replace("_", r"\_")
    return text.replace("×", r"$\times$")


def format_table_b1_latex(rows: Sequence) -> str:
    """LaTeX (booktabs) rendering of Table B.1 with the paper's grouped header."""
    rows = records(rows)
    cells = [[_tex_escape(c) for c in r] for r in _table_cells(rows, "\x00{}\x01", "\x02")]
    cells = [
        [c.replace("\x00", r"\textbf{").replace("\x01", "}").replace("\x02", r"$^\dagger$")
         for c in r]
        for r in cells
    ]  # fmt: skip
    columns = pd.MultiIndex.from_tuples(
        [(_tex_escape(g), "$\\Delta$" if c == "Δ" else _tex_escape(c)) for g, c in _GROUPS]
    )
    body = pd.DataFrame(cells, columns=columns).to_latex(
        index=False,
        escape=False,
        column_format="llrrrrrrrrr",
        multicolumn=True,
        multicolumn_format="c",
        caption="Quantitative results (Table B.1).",
        label="tab:b1",
        position="t",
    )
    notes = [r"\par\smallskip", r"{\footnotesize"]
    for note in _footnotes(rows):
        text = _tex_escape(note).replace("DAGGER", r"$^\dagger$")
        notes.append(text.replace("Delta", r"$\Delta$") + r"\par")
    notes.append("}")
    return body.replace("\\end{tabular}\n", "\\end{tabular}\n" + "\n".join(notes) + "\n")


_TABLE_TYPES = {
    **{c: "int" for c in ("epoch", "epochs_total", "n_minima", "n_edges", "n_paths",
                          "n_edges_sadd_below_min", "n_overlap_flagged", "ensemble_size",
                          "hessian_edges", "hessian_index_1_edges", "n_sample", "repeats")},
    **{c: "str" for c in ("dataset", "architecture", "config_hash")},
    "epoch_in_last_phase": "bool",
}  # fmt: skip


def write_table_b1(rows: Sequence, csv_path, md_path=None, tex_path=None, expected_hashes=None):
    """Write Table B.1 as CSV (all columns, full precision), Markdown and LaTeX (paper layout).

    Rows are written in the given order (the workflow passes them in config order). A row whose
    config hash differs from ``expected_hashes`` raises ConfigError before anything is written.
    """
    rows = records(rows)
    if not rows:
        raise ConfigError(f"Table B.1 ({csv_path}): no rows to write")
    check_config_hashes(rows, expected_hashes)
    md = format_table_b1_markdown(rows) if md_path is not None else None
    tex = format_table_b1_latex(rows) if tex_path is not None else None
    write_csv(rows, TABLE_B1_COLUMNS, csv_path)
    for path, text in [(md_path, md), (tex_path, tex)]:
        if path is not None:
            with atomic_path(path) as tmp:
                tmp.write_text(text)


def read_table_b1(csv_path) -> list[TableRow]:
    """Rows of a Table B.1 CSV written by :func:`write_table_b1`, typed."""
    frame = read_csv(csv_path, TABLE_B1_COLUMNS, _TABLE_TYPES, "Table B.1")
    return [TableRow(**{c: r[c] for c in TABLE_B1_COLUMNS}) for r in frame_records(frame)]
