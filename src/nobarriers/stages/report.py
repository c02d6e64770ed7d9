"""The report stage: a row of Table B.1 and its pair table, Table B.1 itself with Figure 5, the
figures of one row (rules/report.smk). Torch-free."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np

from ..core.errors import FileFormatError
from ..engine.overlap import read_overlap_csv
from ..formats.csv_tables import records
from ..formats.pathfile import read_path
from ..formats.records import IndependentEnsembles, LandscapeRecord, MSTPathsRecord, TableRow
from ..report import landscape_figures, path_figures, summary_figures
from ..report.comparisons import repeat_columns
from ..report.labels import arch_label, dataset_label
from ..report.pairs import pair_details, read_pair_details, write_pair_details
from ..report.table import table_b1_row, write_table_b1
from ..settings.config import stage_hash
from .common import evaluations_of, highest_mst_path, load_row_minima

log = logging.getLogger("nobarriers")


def table_row_job(
    row: dict,
    minima_paths,
    landscape_json,
    mst_json,
    overlap_csv,
    out_row_json,
    out_pairs_csv,
    independent_json=(),
) -> TableRow:
    """One row of Table B.1 (mean over minima / MST edges) and the per-pair detail table.
    ``row``: the row's ``report`` stage settings."""
    minima = load_row_minima(minima_paths, row, tensors=False)
    landscape = LandscapeRecord.read(landscape_json)
    listing = MSTPathsRecord.read(mst_json)
    evaluations = evaluations_of(listing.evaluated, row)
    missing = [(a, b) for a, b, _ in landscape.mst if (a, b) not in evaluations]
    if missing:
        raise FileFormatError(f"{landscape_json}: MST edges {missing} have no dense evaluation")
    saddles = [{"a": a, "b": b, **evaluations[(a, b)].saddles} for a, b, _ in landscape.mst]
    flagged = sum(r["above_threshold"] is True for r in read_overlap_csv(overlap_csv))
    config_hash = stage_hash(row, "report")
    table_row = table_b1_row(
        row["dataset"],
        row["arch"],
        [
            {"seed": m.seed, **{k: float(v) for k, v in m.metrics.items()}, "history": m.history}
            for m in minima
        ],
        saddles,
        epochs_total=row["recipe"]["epochs"],
        n_paths=len(landscape.computed),
        n_overlap_flagged=flagged,
        config_hash=config_hash,
    )
    paths, aligned = mst_path_summaries(listing, row)
    mst = [(a, b) for a, b, _ in landscape.mst]
    sample = sorted(set(evaluations) - set(mst))  # comparisons.sample_pairs
    if aligned:  # raw vs aligned, means over the MST edges and over the off-MST sample
        table_row = dataclasses.replace(
            table_row,
            alignment_raw_saddle=_mean(paths, mst, "saddle_train_loss"),
            alignment_aligned_saddle=_mean(aligned, mst, "aligned_saddle_train_loss"),
            alignment_raw_line=_mean(aligned, mst, "raw_line_train_loss"),
            alignment_aligned_line=_mean(aligned, mst, "aligned_line_train_loss"),
        )
        if sample:
            table_row = dataclasses.replace(
                table_row,
                alignment_sample_raw_saddle=_mean(paths, sample, "saddle_train_loss"),
                alignment_sample_aligned_saddle=_mean(aligned, sample, "aligned_saddle_train_loss"),
                alignment_sample_raw_line=_mean(aligned, sample, "raw_line_train_loss"),
                alignment_sample_aligned_line=_mean(aligned, sample, "aligned_line_train_loss"),
            )
    if sample:
        table_row = dataclasses.replace(table_row, n_sample=len(sample))
    comparisons = {pair: {"in_sample": pair in sample} for pair in evaluations}
    runs = repeat_saddles(listing, landscape, row)
    if runs:
        for pair, saddles in runs.items():
            comparisons[pair].update(repeat_columns(saddles))
        spreads = [max(s) - min(s) for s in runs.values()]
        table_row = dataclasses.replace(
            table_row,
            repeats=len(next(iter(runs.values()))),
            repeat_spread_mean=float(np.mean(spreads)),
            repeat_spread_max=float(np.max(spreads)),
            repeat_saddle_first_mean=float(np.mean([s[0] for s in runs.values()])),
            repeat_saddle_min_mean=float(np.mean([min(s) for s in runs.values()])),
        )
    for kind, curves in curve_summaries(listing, row).items():
        for pair, values in curves.items():
            comparisons.setdefault(pair, {"in_sample": pair in sample})
            comparisons[pair].update({
                f"{kind}_train_loss": values["max_train_loss"],
                f"{kind}_test_error": values["max_test_error"],
                f"{kind}_length": values["length"],
            })  # fmt: skip
        top = [curves[p]["max_train_loss"] for p in mst if p in curves]
        table_row = dataclasses.replace(table_row, **{f"{kind}_sadd": float(np.mean(top))})
    if independent_json:
        ensembles = IndependentEnsembles.read(independent_json[0])
        measured = [e for e in ensembles.test_error if e is not None]
        if measured:
            table_row = dataclasses.replace(table_row, ensemble_independent_test_error=measured[-1])
    loss = {m.seed: m.metrics["train_loss"] for m in minima}
    higher = {(a, b): max(loss[a], loss[b]) for a, b, _ in landscape.mst}
    table_row = dataclasses.replace(
        table_row,
        barrier_mean=float(
            np.mean([max(evaluations[p].saddles["train_loss"] - h, 0.0) for p, h in higher.items()])
        ),  # fmt: skip
        line_barrier_mean=float(
            np.mean(
                [max(evaluations[p].line_saddles["train_loss"] - h, 0.0) for p, h in higher.items()]
            )
        ),  # fmt: skip
    )
    at_saddle = {pair: test_at_train_max(rec.dense) for pair, rec in evaluations.items()}
    hessian = {
        pair: hessian_columns(rec) for pair, rec in evaluations.items() if "hessian" in rec.attrs
    }
    edges = [(a, b) for a, b, _ in landscape.mst]
    table_row = dataclasses.replace(
        table_row,
        test_sadd_at_saddle=_mean(at_saddle, edges, "dense_test_loss_at_saddle"),
        test_error_sadd_at_saddle=_mean(at_saddle, edges, "dense_test_error_at_saddle"),
    )
    if hessian:  # how many MST saddles are saddles of index 1 (converged, gradient aside)
        table_row = dataclasses.replace(
            table_row,
            hessian_index_1_edges=sum(h["hessian_index"] == 1 for h in hessian.values()),
            hessian_edges=len(hessian),
        )
    measured = [evaluations[(a, b)].ensembles for a, b, _ in landscape.mst]
    if all(m is not None for m in measured):  # the row's summary: mean over the MST edges
        largest = int(max(measured[0]["sizes"]))
        table_row = dataclasses.replace(
            table_row,
            ensemble_size=largest,
            ensemble_path_test_error=float(np.mean([m["test_error"][-1] for m in measured])),
            ensemble_endpoints_test_error=float(np.mean([m["test_error"][0] for m in measured])),
        )
    table_row.write(out_row_json)
    details = pair_details(
        row["dataset"],
        row["arch"],
        landscape.computed,
        landscape.mst,
        minimum_loss=landscape.minimum_loss,
        bounds=(landscape.nodes, np.array(landscape.bounds)),
        estimates=landscape.autoneb_saddle,
        dense={pair: rec.saddles for pair, rec in evaluations.items()},
        linear={pair: rec.line_saddles for pair, rec in evaluations.items()},
        ensembles={pair: rec.ensembles for pair, rec in evaluations.items()},
        paths=paths,
        aligned=aligned,
        at_saddle=at_saddle,
        hessian=hessian,
        comparisons=comparisons,
        config_hash=config_hash,
    )
    write_pair_details(details, out_pairs_csv)
    log.info(
        "%s %s: train loss min %.4g, saddle %.4g (factor %.2f), test error min %.2f%%, "
        "saddle %.2f%%",
        row["dataset"],
        row["arch"],
        table_row.train_min,
        table_row.train_sadd,
        table_row.factor,
        100 * table_row.test_error_min,
        100 * table_row.test_error_sadd,
    )
    return table_row


def repeat_saddles(listing: MSTPathsRecord, landscape: LandscapeRecord, row: dict) -> dict:
    """``{MST edge: [saddle of run 1 (the paper's), run 2, ...]}`` (comparisons.autoneb_repeats;
    empty when off). Every run's saddle is measured like the MST weight."""
    if not listing.repeats:
        return {}
    expected = stage_hash(row, "paths")
    runs = {(a, b): {0: s} for a, b, s in landscape.mst}
    for f in listing.repeats:
        record = read_path(f, load_pivots=False, expect_config_hash=expected)
        pair = tuple(sorted(map(int, record.endpoints)))
        runs[pair][int(record.attrs["repeat"])] = float(record.saddle_loss)
    return {pair: [r[k] for k in sorted(r)] for pair, r in runs.items()}


def curve_summaries(listing: MSTPathsRecord, row: dict) -> dict[str, dict]:
    """``{kind: {pair: {max_train_loss, max_test_error, length, gradient_samples}}}`` of the
    curves (curves.families; empty when off)."""
    from ..formats.pathfile import read_evaluation

    expected = stage_hash(row, "curves")
    out: dict[str, dict] = {}
    for curve_file, eval_file in zip(listing.curves, listing.curve_evaluations, strict=True):
        curve = read_path(curve_file, load_pivots=False, expect_config_hash=expected)
        evaluation = read_evaluation(eval_file, expect_config_hash=expected)
        pair = tuple(sorted(map(int, curve.endpoints)))
        out.setdefault(str(curve.attrs["curve_kind"]), {})[pair] = {
            "max_train_loss": float(evaluation.saddles["train_loss"]),
            "max_test_error": float(evaluation.saddles["test_error"]),
            "length": float(curve.attrs["curve_length"]),
            "gradient_samples": int(curve.attrs["curve_sample_gradients"]),
        }
    return out


def hessian_columns(record) -> dict:
    """pairs.csv's Hessian columns from an evaluation file's ``hessian`` attribute."""
    spectrum = json.loads(record.attrs["hessian"])
    lowest = spectrum["lowest"]
    return {
        "hessian_index": spectrum["n_negative"],
        "hessian_lambda_min": lowest[0] if lowest else None,
        "hessian_lambda_max": spectrum["lambda_max"],
        "hessian_gap": spectrum["gap"],
        "hessian_cosine_to_path": spectrum["cosine_to_tangent"],
        "hessian_grad_norm": spectrum["grad_norm"],
        "hessian_converged": bool(spectrum["converged"]),
    }


def test_at_train_max(dense: dict) -> dict:
    """The test loss and error where a densely evaluated path's training loss is highest."""
    k = int(np.argmax(dense["train_loss"]))
    return {
        "dense_test_loss_at_saddle": float(dense["test_loss"][k]),
        "dense_test_error_at_saddle": float(dense["test_error"][k]),
    }


def _mean(values: dict, pairs, column: str) -> float:
    return float(np.mean([values[p][column] for p in pairs]))


def path_length(pivots) -> float:
    """Euclidean length of the polyline through the pivots (in parameter space)."""
    return float(
        np.linalg.norm(np.diff(np.asarray(pivots, dtype=np.float64), axis=0), axis=1).sum()
    )


def mst_path_summaries(listing: MSTPathsRecord, row: dict) -> tuple[dict, dict]:
    """``(paths, aligned)``: pivots and length of every MST path, and what its aligned twin
    records (``report.pairs.ALIGNED_COLUMNS``; empty without alignment), keyed by pair."""
    paths, aligned = {}, {}
    for f in listing.paths:
        record = read_path(f, expect_config_hash=stage_hash(row, "paths"))
        paths[tuple(sorted(record.endpoints))] = {
            "n_pivots": record.pivots.shape[0] - 2,
            "path_length": path_length(record.pivots),
            "saddle_train_loss": record.saddle_loss,
        }
    for f in listing.aligned:
        record = read_path(f, expect_config_hash=stage_hash(row, "aligned"))
        attrs = record.attrs
        aligned[tuple(sorted(record.endpoints))] = {
            "aligned_saddle_train_loss": record.saddle_loss,
            "aligned_n_pivots": record.pivots.shape[0] - 2,
            "aligned_path_length": path_length(record.pivots),
            "raw_line_train_loss": float(attrs["raw_line_saddle_loss"]),
            "aligned_line_train_loss": float(attrs["aligned_line_saddle_loss"]),
            "alignment_distance_before": float(attrs["alignment_distance_before"]),
            "alignment_distance_after": float(attrs["alignment_distance_after"]),
        }
    return paths, aligned


def alignment_figure_job(row: dict, mst_json, png, pdf) -> None:
    """Raw vs aligned MST paths of a row: straight-line barrier and AutoNEB saddle per edge.
    ``row``: the row's ``report`` stage settings."""
    listing = MSTPathsRecord.read(mst_json)
    paths, aligned = mst_path_summaries(listing, row)
    label = f"{dataset_label(row['dataset'])} {arch_label(row['arch'])}"
    path_figures.plot_alignment(
        {pair: {**aligned[pair], **paths[pair]} for pair in aligned},
        png, pdf, f"{label}: raw vs permutation-aligned MST paths",
        config_hash=stage_hash(row, "aligned"),
    )  # fmt: skip


def table_b1_job(
    row_jsons,
    pairs_csvs,
    csv,
    md,
    tex,
    pairs,
    fig5_png,
    fig5_pdf,
    expected_hashes: dict,
    trends_png,
    trends_pdf,
) -> None:
    """Table B.1 (CSV, Markdown, LaTeX), all pair details, and Figure 5.
    ``expected_hashes``: ``"dataset/arch"`` -> the row's report config hash."""
    rows = [TableRow.read(p) for p in row_jsons]
    expected = {tuple(k.split("/")): v for k, v in expected_hashes.items()}
    write_table_b1(rows, csv, md, tex, expected)
    write_pair_details([d for p in pairs_csvs for d in read_pair_details(p)], pairs)
    summary_figures.plot_min_vs_saddle(records(rows), fig5_png, fig5_pdf)
    summary_figures.plot_trends(records(rows), trends_png, trends_pdf)


def row_figures_job(
    row: dict,
    minima_paths,
    row_json,
    landscape_json,
    mst_json,
    cycles,
    fig4_png,
    fig4_pdf,
    fig6_png,
    fig6_pdf,
    fig7_png,
    fig7_pdf,
    mst_png,
    mst_pdf,
    disconnectivity_png,
    disconnectivity_pdf,
) -> None:
    """Figures 4, 6, 7, the MST and the disconnectivity graph of one row.
    ``row``: the row's ``evaluation`` stage settings."""
    minima = load_row_minima(minima_paths, row, tensors=False)
    table_row = TableRow.read(row_json)
    landscape = LandscapeRecord.read(landscape_json)
    listing = MSTPathsRecord.read(mst_json)
    evaluations = evaluations_of(listing.evaluated, row)
    config_hash = stage_hash(row, "evaluation")
    label = f"{dataset_label(row['dataset'])} {arch_label(row['arch'])}"
    (a, b), record = highest_mst_path(landscape, listing.paths, row)
    last = record.history[-1].cycle
    path_figures.plot_path_cycles(
        record.history,
        [c if c <= last else -1 for c in cycles],
        fig4_png,
        fig4_pdf,
        f"{label}: loss along path {a}-{b} during AutoNEB",
        config_hash=config_hash,
    )
    if any(m.history for m in minima):
        summary_figures.plot_learning_curves(
            [m.history for m in minima],
            table_row.train_sadd,
            fig6_png,
            fig6_pdf,
            f"{label}: learning curves",
            config_hash=config_hash,
        )
    else:  # minima trained elsewhere
        summary_figures.plot_minima_levels(
            [m.metrics["train_loss"] for m in minima],
            table_row.train_sadd,
            fig6_png,
            fig6_pdf,
            label,
            config_hash=config_hash,
        )
    dense = evaluations[(a, b)].dense
    path_figures.plot_parallel_coordinates(
        record.pivots,
        None,
        dense["t"],
        dense["train_loss"],
        fig7_png,
        fig7_pdf,
        title=f"{label}: parameters along path {a}-{b}",
        config_hash=config_hash,
    )
    landscape_figures.plot_mst(
        landscape.nodes,
        landscape.minimum_loss,
        landscape.mst,
        mst_png,
        mst_pdf,
        f"{label}: minimum spanning tree of {len(landscape.computed)} paths",
        config_hash=config_hash,
    )
    landscape_figures.plot_disconnectivity(
        landscape.nodes,
        landscape.minimum_loss,
        landscape.merges,
        disconnectivity_png,
        disconnectivity_pdf,
        f"{label}: disconnectivity graph",
        config_hash=config_hash,
    )


def ensemble_figure_job(row: dict, mst_json, png, pdf) -> None:
    """Test error of the ensembles along the row's MST paths vs K (evaluation.ensemble_sizes).
    ``row``: the row's ``evaluation`` stage settings."""
    evaluations = evaluations_of(MSTPathsRecord.read(mst_json).evaluated, row)
    curves = {pair: rec.ensembles for pair, rec in evaluations.items() if rec.ensembles}
    label = f"{dataset_label(row['dataset'])} {arch_label(row['arch'])}"
    path_figures.plot_path_ensembles(
        curves, png, pdf, f"{label}: ensembles along the MST paths",
        config_hash=stage_hash(row, "evaluation"),
    )  # fmt: skip


def _wall_seconds(tsv) -> float | None:
    """The wall time a benchmark TSV of this workflow records (summed over its rows), or None
    when the file is absent (it is run-specific: another machine's results lack it)."""
    import csv
    from pathlib import Path

    if tsv is None or not Path(tsv).is_file():
        return None
    with open(tsv, newline="") as handle:
        return float(sum(float(r["wall_s"]) for r in csv.DictReader(handle, delimiter="\t")))


def families_job(
    row: dict, minima_paths, landscape_json, mst_json, timings: dict, out_csv, png, pdf
) -> list[dict]:
    """The connections of every compared pair side by side (curves.families): AutoNEB, each
    curve family, the straight line (and, with alignment, the aligned straight line) -- the
    maximum training loss and test error along each, the barrier above the higher minimum, the
    length in parameter space, the cost in gradient samples (mini-batch samples x gradient
    passes) and wall time (``timings``: benchmark TSV per ``(family, pair)``). ``row``: the
    row's ``report`` stage settings."""
    from ..report.comparisons import family_row, plot_families, write_families

    minima = {m.seed: m for m in load_row_minima(minima_paths, row, tensors=False)}
    landscape = LandscapeRecord.read(landscape_json)
    listing = MSTPathsRecord.read(mst_json)
    evaluations = evaluations_of(listing.evaluated, row)
    on_mst = {(a, b) for a, b, _ in landscape.mst}
    config_hash = stage_hash(row, "report")
    batch = row["autoneb"]["batch_size"]
    rows = []

    def add(pair, family, values):
        ends = [minima[s].metrics["train_loss"] for s in pair]
        rows.append(family_row(row["dataset"], row["arch"], pair, pair in on_mst, family, values,
                               ends, config_hash))  # fmt: skip

    for f in listing.paths:
        record = read_path(f, expect_config_hash=stage_hash(row, "paths"))
        pair = tuple(sorted(map(int, record.endpoints)))
        if pair not in evaluations:
            continue
        ev = evaluations[pair]
        add(pair, "autoneb", {
            "max_train_loss": ev.saddles["train_loss"],
            "max_test_error": ev.saddles["test_error"],
            "length": path_length(record.pivots),
            "gradient_samples": batch * sum(c.steps * c.n_pivots for c in record.history),
            "wall_s": _wall_seconds(timings.get(f"autoneb/{pair[0]}-{pair[1]}")),
        })  # fmt: skip
        ends = record.pivots[[0, -1]].astype(np.float64)
        add(pair, "line", {
            "max_train_loss": ev.line_saddles["train_loss"],
            "max_test_error": ev.line_saddles["test_error"],
            "length": float(np.linalg.norm(ends[1] - ends[0])),
            "gradient_samples": 0,
        })  # fmt: skip
    for f in listing.aligned:
        record = read_path(f, load_pivots=False, expect_config_hash=stage_hash(row, "aligned"))
        pair = tuple(sorted(map(int, record.endpoints)))
        add(pair, "aligned_line", {
            "max_train_loss": float(record.attrs["aligned_line_saddle_loss"]),
            "length": float(record.attrs["alignment_distance_after"]),
            "gradient_samples": 0,
        })  # fmt: skip
    for kind, curves in curve_summaries(listing, row).items():
        for pair, values in curves.items():
            wall = _wall_seconds(timings.get(f"{kind}/{pair[0]}-{pair[1]}"))
            add(pair, kind, {**values, "wall_s": wall})
    rows.sort(key=lambda r: (not r["on_mst"], r["i"], r["j"], r["family"]))
    write_families(rows, out_csv)
    label = f"{dataset_label(row['dataset'])} {arch_label(row['arch'])}"
    plot_families(rows, png, pdf, label, config_hash=config_hash)
    return rows


def repeats_figure_job(row: dict, minima_paths, landscape_json, mst_json, png, pdf) -> None:
    """AutoNEB's run-to-run spread on the MST edges (comparisons.autoneb_repeats). ``row``: the
    row's ``report`` stage settings."""
    from ..report.comparisons import plot_repeats

    minima = {m.seed: m for m in load_row_minima(minima_paths, row, tensors=False)}
    landscape = LandscapeRecord.read(landscape_json)
    runs = repeat_saddles(MSTPathsRecord.read(mst_json), landscape, row)
    ends = {p: max(minima[s].metrics["train_loss"] for s in p) for p in runs}
    label = f"{dataset_label(row['dataset'])} {arch_label(row['arch'])}"
    plot_repeats(runs, ends, png, pdf, label, config_hash=stage_hash(row, "report"))
