"""Table B.1 (paper Appendix B) and the per-pair detail table.

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

import csv
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError, FileFormatError

__all__ = [
    "TABLE_B1_COLUMNS",
    "PAIR_DETAIL_COLUMNS",
    "display_dataset",
    "display_arch",
    "arch_family",
    "mean_learning_curve",
    "lr_decay_epochs",
    "crossing_epoch",
    "table_b1_row",
    "check_config_hashes",
    "write_table_b1",
    "format_table_b1_markdown",
    "format_table_b1_latex",
    "read_table_b1",
    "pair_details",
    "write_pair_details",
    "read_pair_details",
]

METRICS = ("train_loss", "train_error", "test_loss", "test_error")

TABLE_B1_COLUMNS = [
    "dataset",
    "architecture",
    "train_min",
    "train_sadd",
    "factor",
    "epoch",
    "epoch_fraction",
    "epoch_in_last_phase",
    "epochs_total",
    "test_min",
    "test_sadd",
    "test_error_min",
    "test_error_sadd",
    "delta",
    "train_error_min",
    "train_error_sadd",
    "train_min_std",
    "train_sadd_std",
    "test_min_std",
    "test_sadd_std",
    "test_error_min_std",
    "test_error_sadd_std",
    "max_rel_std",
    "n_minima",
    "n_edges",
    "n_paths",
    "n_edges_sadd_below_min",
    "n_overlap_flagged",
    "config_hash",
]

_INT_COLUMNS = {
    "epoch",
    "epochs_total",
    "n_minima",
    "n_edges",
    "n_paths",
    "n_edges_sadd_below_min",
    "n_overlap_flagged",
}
_BOOL_COLUMNS = {"epoch_in_last_phase", "on_mst"}
_STR_COLUMNS = {"dataset", "architecture", "config_hash"}
_ID_COLUMNS = {"i", "j"}

PAIR_DETAIL_COLUMNS = [
    "dataset",
    "architecture",
    "i",
    "j",
    "min_i_train_loss",
    "min_j_train_loss",
    "autoneb_saddle_train_loss",
    "on_mst",
    "ultrametric_bound",
    "dense_train_loss",
    "dense_train_error",
    "dense_test_loss",
    "dense_test_error",
    "linear_train_loss",
    "linear_train_error",
    "linear_test_loss",
    "linear_test_error",
    "config_hash",
]

# --------------------------------------------------------------------------- display names

_DATASET_LABELS = {"cifar10": "C10+", "cifar100": "C100+", "digits": "Digits"}


def display_dataset(name: str) -> str:
    """Registry dataset name -> the paper's label (``cifar10`` -> ``C10+``, ``cifar100`` ->
    ``C100+``; ``+`` = trained with augmentation). Other names are returned capitalised."""
    key = str(name).lower()
    if key in _DATASET_LABELS:
        return _DATASET_LABELS[key]
    return str(name)[:1].upper() + str(name)[1:]


def display_arch(name: str) -> str:
    """Registry architecture name -> the paper's spelling.

    ``cnn-12`` -> ``CNN-12``, ``cnn-48x2`` -> ``CNN-48X2``, ``resnet-20`` -> ``RESNET-20``,
    ``densenet-40-12`` -> ``DENSENET-40-12``, ``densenet-bc-100-12`` -> ``DENSENET-100-12-BC``,
    ``mlp-32x2`` -> ``MLP-32X2``, ``resnet-20-proj`` -> ``RESNET-20-PROJ``.
    """
    key = str(name).strip().lower()
    m = re.fullmatch(r"densenet-bc-(\d+)-(\d+)(.*)", key)
    if m:
        return f"DENSENET-{m.group(1)}-{m.group(2)}-BC{m.group(3).upper()}"
    return key.upper()


def arch_family(name: str) -> str:
    """``cnn-48x2`` -> ``cnn``; ``densenet-bc-100-12`` -> ``densenet``; used to group figures."""
    return str(name).strip().lower().split("-", 1)[0]


# --------------------------------------------------------------------------- learning curves


def _get(entry, key, default=None):
    if isinstance(entry, Mapping):
        return entry.get(key, default)
    return getattr(entry, key, default)


def mean_learning_curve(
    histories: Sequence[Sequence[Mapping]], key: str = "train_loss"
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``key`` over the histories at equal epoch numbers.

    Only epochs present in every history are used (a history that stopped early does not bias the
    mean). Returns ``(epochs, mean)`` sorted by epoch.
    """
    if not histories:
        raise ConfigError("no learning curves given (every minimum needs a per-epoch history)")
    per_history = []
    for k, hist in enumerate(histories):
        values = {}
        for entry in hist:
            epoch, value = _get(entry, "epoch"), _get(entry, key)
            if epoch is None or value is None:
                raise ConfigError(f"history {k}: an entry lacks 'epoch' or {key!r}: {entry!r}")
            values[int(epoch)] = float(value)
        if not values:
            raise ConfigError(f"history {k} is empty (no per-epoch {key!r})")
        per_history.append(values)
    common = sorted(set.intersection(*(set(v) for v in per_history)))
    if not common:
        raise ConfigError("the learning curves share no epoch")
    mean = np.array([np.mean([v[e] for v in per_history]) for e in common])
    return np.array(common, dtype=int), mean


def lr_decay_epochs(history: Sequence[Mapping]) -> list[int]:
    """Epochs whose learning rate differs from the previous epoch's (the first epoch of each new
    phase). Empty when the history has no ``lr`` entries or a constant rate."""
    out, prev = [], None
    for entry in sorted(history, key=lambda e: int(_get(e, "epoch"))):
        lr = _get(entry, "lr")
        if lr is None:
            return []
        if prev is not None and not math.isclose(float(lr), prev, rel_tol=1e-9):
            out.append(int(_get(entry, "epoch")))
        prev = float(lr)
    return out


def crossing_epoch(
    histories: Sequence[Sequence[Mapping]],
    level: float,
    epochs_total: int | None = None,
    key: str = "train_loss",
) -> dict:
    """First epoch at which the mean learning curve falls strictly below ``level``.

    Returns ``{"epoch": int | None, "fraction": float | None, "in_last_phase": bool | None,
    "epochs_total": int}``. See the module docstring for the definitions.
    """
    epochs, mean = mean_learning_curve(histories, key)
    total = int(epochs_total) if epochs_total else int(epochs.max())
    below = np.nonzero(mean < float(level))[0]
    if below.size == 0:
        return {"epoch": None, "fraction": None, "in_last_phase": None, "epochs_total": total}
    epoch = int(epochs[below[0]])
    decays = lr_decay_epochs(histories[0])
    has_lr = all(_get(e, "lr") is not None for e in histories[0])
    if has_lr:
        in_last = bool(decays) and epoch >= decays[-1]
    else:
        in_last = epoch > 0.75 * total
    return {
        "epoch": epoch,
        "fraction": epoch / total,
        "in_last_phase": in_last,
        "epochs_total": total,
    }


# --------------------------------------------------------------------------- Table B.1 rows


def _std(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _column(items: Sequence[Mapping], key: str, what: str) -> np.ndarray:
    out = []
    for k, item in enumerate(items):
        value = _get(item, key)
        if value is None:
            raise ConfigError(f"{what} {k} ({_label(item)}) has no {key!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{what} {k} ({_label(item)}) has a non-finite {key!r}: {value}")
        out.append(value)
    return np.array(out, dtype=float)


def _label(item) -> str:
    if _get(item, "seed") is not None:
        return f"seed {_get(item, 'seed')}"
    if _get(item, "a") is not None:
        return f"edge {_get(item, 'a')}-{_get(item, 'b')}"
    return "?"


def _resolve_hash(config_hash, items: Iterable[Mapping], where: str) -> str | None:
    """The single config hash of ``items`` (and the argument); ConfigError on a mismatch."""
    hashes = {}
    if config_hash is not None:
        hashes[str(config_hash)] = "the config_hash argument"
    for item in items:
        h = _get(item, "config_hash")
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
) -> dict:
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
        if _get(mi, "seed") is not None:
            loss_of[str(_get(mi, "seed"))] = float(_get(mi, "train_loss"))
    below = 0
    for edge in saddles:
        ends = [loss_of.get(str(_get(edge, "a"))), loss_of.get(str(_get(edge, "b")))]
        if None in ends:
            raise ConfigError(
                f"{where}: MST {_label(edge)} refers to a minimum that is not among the minima "
                f"{sorted(loss_of)}"
            )
        if float(_get(edge, "train_loss")) < max(ends) * (1 - sadd_tolerance) - 1e-12:
            below += 1

    histories = []
    for k, mi in enumerate(minima):
        hist = _get(mi, "history")
        if not hist:
            raise ConfigError(f"{where}: minimum {k} ({_label(mi)}) has no per-epoch history")
        histories.append(hist)
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
    return {c: row[c] for c in TABLE_B1_COLUMNS}


# --------------------------------------------------------------------------- writing


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
                f"{display_dataset(r['dataset'])} {display_arch(r['architecture'])} "
                f"{r['n_minima']}/{r['n_edges']}/{r['n_paths']}"
                for r in rows
            )
        )
    flagged = [r for r in rows if int(r.get("n_overlap_flagged") or 0) > 0]
    if flagged:
        notes.append(
            "DAGGER "
            + "; ".join(
                f"{display_dataset(r['dataset'])} {display_arch(r['architecture'])}: "
                f"{r['n_overlap_flagged']} pair(s) of minima above the misclassification-overlap "
                "threshold (possibly the same minimum)"
                for r in flagged
            )
        )
    bad = [r for r in rows if int(r.get("n_edges_sadd_below_min") or 0) > 0]
    if bad:
        notes.append(
            "Warning: saddle below a minimum on "
            + "; ".join(
                f"{display_arch(r['architecture'])} ({r['n_edges_sadd_below_min']} edges)"
                for r in bad
            )
        )
    hashes = sorted({str(r.get("config_hash")) for r in rows if r.get("config_hash")})
    if hashes:
        notes.append("Config hash" + ("es" if len(hashes) > 1 else "") + f" {', '.join(hashes)}.")
    return notes


def format_table_b1_markdown(rows: Sequence[Mapping]) -> str:
    """Markdown rendering of Table B.1 in the paper's layout and precision."""
    header = (
        "| Dataset | Architecture | Train energy Min. | Train energy Sadd. | Factor | Epoch "
        "| Test energy Min. | Test energy Sadd. | Test error rate [%] Min. "
        "| Test error rate [%] Sadd. | Δ |"
    )
    lines = [
        "**Table B.1.** TRAIN ENERGY (Min., Sadd., Factor, Epoch) · TEST ENERGY (Min., Sadd.) · "
        "TEST ERROR RATE [%] (Min., Sadd., Δ)",
        "",
        header,
        "|" + "---|" * 2 + "---:|" * 9,
    ]
    prev = None
    for r in rows:
        cells = _display_cells(r)
        if r.get("epoch") is not None and r.get("epoch_in_last_phase"):
            cells[3] = f"**{cells[3]}**"
        ds = display_dataset(r["dataset"])
        arch = display_arch(r["architecture"])
        if int(r.get("n_overlap_flagged") or 0) > 0:
            arch += "†"
        lines.append("| " + " | ".join([ds if ds != prev else "", arch, *cells]) + " |")
        prev = ds
    lines.append("")
    for note in _footnotes(rows):
        lines.append(note.replace("DAGGER", "†").replace("Delta", "Δ") + "  ")
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("%", r"\%").replace("_", r"\_")


def format_table_b1_latex(rows: Sequence[Mapping]) -> str:
    """LaTeX (booktabs) rendering of Table B.1 with the paper's grouped header."""
    out = [
        r"\begin{table*}[t]",
        r"\centering",
        r"\caption{Quantitative results (Table B.1).}",
        r"\label{tab:b1}",
        r"\begin{tabular}{llrrrrrrrrr}",
        r"\toprule",
        r" & & \multicolumn{4}{c}{\textsc{Train energy}} & \multicolumn{2}{c}{\textsc{Test energy}}"
        r" & \multicolumn{3}{c}{\textsc{Test error rate [\%]}} \\",
        r"\cmidrule(lr){3-6}\cmidrule(lr){7-8}\cmidrule(lr){9-11}",
        r"\textsc{Dataset} & \textsc{Architecture} & \textsc{Min.} & \textsc{Sadd.} & "
        r"\textsc{Factor} & \textsc{Epoch} & \textsc{Min.} & \textsc{Sadd.} & \textsc{Min.} & "
        r"\textsc{Sadd.} & $\Delta$ \\",
    ]
    prev = None
    for r in rows:
        ds = display_dataset(r["dataset"])
        if ds != prev:
            out.append(r"\midrule")
        cells = _display_cells(r)
        if r.get("epoch") is not None and r.get("epoch_in_last_phase"):
            cells[3] = rf"\textbf{{{cells[3]}}}"
        arch = _tex_escape(display_arch(r["architecture"]))
        if int(r.get("n_overlap_flagged") or 0) > 0:
            arch += r"$^\dagger$"
        out.append(" & ".join([_tex_escape(ds) if ds != prev else "", arch, *cells]) + r" \\")
        prev = ds
    out += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip", r"{\footnotesize"]
    for note in _footnotes(rows):
        text = _tex_escape(note).replace("DAGGER", r"$^\dagger$")
        out.append(text.replace("Delta", r"$\Delta$") + r"\par")
    out += ["}", r"\end{table*}"]
    return "\n".join(out) + "\n"


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)


def _write_csv(rows: Sequence[Mapping], columns: Sequence[str], path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for r in rows:
            writer.writerow([_csv_value(r.get(c)) for c in columns])


def write_table_b1(
    rows: Sequence[Mapping], csv_path, md_path=None, tex_path=None, expected_hashes=None
) -> None:
    """Write Table B.1 as CSV (all columns, full precision), Markdown and LaTeX (paper layout).

    Rows are written in the given order (the workflow passes them in config order). A row whose
    config hash differs from ``expected_hashes`` raises ConfigError before anything is written.
    """
    rows = list(rows)
    if not rows:
        raise ConfigError(f"Table B.1 ({csv_path}): no rows to write")
    check_config_hashes(rows, expected_hashes)
    md = format_table_b1_markdown(rows) if md_path is not None else None
    tex = format_table_b1_latex(rows) if tex_path is not None else None
    _write_csv(rows, TABLE_B1_COLUMNS, csv_path)
    for path, text in [(md_path, md), (tex_path, tex)]:
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)


def _parse(column: str, text: str):
    if text == "":
        return None
    if column in _STR_COLUMNS:
        return text
    if column in _ID_COLUMNS:
        return int(text) if re.fullmatch(r"-?\d+", text) else text
    if column in _BOOL_COLUMNS:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"not a boolean: {text!r}")
        return text.lower() == "true"
    if column in _INT_COLUMNS:
        return int(text)
    return float(text)


def _read_csv(path, required: Sequence[str], what: str) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: {what} file not found")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise FileFormatError(f"{path}: not a {what} file, missing columns {missing}")
        rows = []
        for line, raw in enumerate(reader, start=2):
            row = {}
            for column, text in raw.items():
                try:
                    row[column] = _parse(column, text or "")
                except ValueError as exc:
                    raise FileFormatError(f"{path}, line {line}, column {column}: {exc}") from None
            rows.append(row)
    return rows


def read_table_b1(csv_path) -> list[dict]:
    """Rows of a Table B.1 CSV written by :func:`write_table_b1`, with typed values."""
    return _read_csv(csv_path, TABLE_B1_COLUMNS, "Table B.1")


# --------------------------------------------------------------------------- pair details


def _pair(key) -> tuple:
    i, j = key
    return (i, j) if i < j else (j, i)


def _lookup(mapping: Mapping | None, pair: tuple):
    if not mapping:
        return None
    if pair in mapping:
        return mapping[pair]
    return mapping.get((pair[1], pair[0]))


def _mst_bound(mst_edges: Sequence, i, j) -> float:
    """Maximum edge on the MST path between i and j (inf if not connected)."""
    adj: dict = {}
    for a, b, w in mst_edges:
        adj.setdefault(a, []).append((b, float(w)))
        adj.setdefault(b, []).append((a, float(w)))
    stack, seen = [(i, -math.inf)], {i}
    while stack:
        node, best = stack.pop()
        if node == j:
            return best
        for nxt, w in adj.get(node, []):
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, max(best, w)))
    return math.inf


def pair_details(
    dataset: str,
    arch: str,
    computed: Mapping[tuple, float],
    mst_edges: Sequence[tuple],
    *,
    minimum_loss: Mapping | None = None,
    bounds: tuple | None = None,
    dense: Mapping[tuple, Mapping] | None = None,
    linear: Mapping[tuple, Mapping] | None = None,
    config_hash: str | None = None,
) -> list[dict]:
    """One row per computed path (columns: ``PAIR_DETAIL_COLUMNS``), sorted by pair.

    ``computed[(i, j)]``: saddle train loss of the AutoNEB run (last cycle); ``mst_edges``:
    ``[(i, j, saddle)]`` (``landscape.minimum_spanning_tree``); ``minimum_loss[seed]``: train loss
    of each minimum; ``bounds``: ``(nodes, matrix)`` of ``landscape.ultrametric_bounds`` (default:
    the maximum edge on the MST path); ``dense[(i, j)]`` / ``linear[(i, j)]``: the maxima
    ``{train_loss, train_error, test_loss, test_error}`` along the densely evaluated path / the
    straight segment (MST edges only, or any pair that has them). Missing values stay empty.
    """
    on_mst = {_pair((a, b)) for a, b, _ in mst_edges}
    index = None
    if bounds is not None:
        nodes, matrix = bounds
        index = {n: k for k, n in enumerate(nodes)}
        matrix = np.asarray(matrix, dtype=float)
    rows = []
    for key in sorted({_pair(k) for k in computed}):
        i, j = key
        if index is not None:
            bound = float(matrix[index[i], index[j]])
        else:
            bound = _mst_bound(mst_edges, i, j)
        row = {
            "dataset": dataset,
            "architecture": arch,
            "i": i,
            "j": j,
            "min_i_train_loss": None if minimum_loss is None else float(minimum_loss[i]),
            "min_j_train_loss": None if minimum_loss is None else float(minimum_loss[j]),
            "autoneb_saddle_train_loss": float(_lookup(computed, key)),
            "on_mst": key in on_mst,
            "ultrametric_bound": bound,
            "config_hash": config_hash,
        }
        for prefix, source in [("dense", dense), ("linear", linear)]:
            values = _lookup(source, key)
            for metric in METRICS:
                v = None if values is None else _get(values, metric)
                row[f"{prefix}_{metric}"] = None if v is None else float(v)
        rows.append(row)
    return rows


def write_pair_details(rows: Sequence[Mapping], csv_path) -> None:
    """CSV of :func:`pair_details` rows (full precision)."""
    _write_csv(list(rows), PAIR_DETAIL_COLUMNS, csv_path)


def read_pair_details(csv_path) -> list[dict]:
    """Rows of a pair-detail CSV (integer pair ids come back as int)."""
    return _read_csv(csv_path, PAIR_DETAIL_COLUMNS, "pair detail")
