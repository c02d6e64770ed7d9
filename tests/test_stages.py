"""The stage functions (one per workflow job) on a tiny digits row, without Snakemake.

One module-scoped fixture runs the chain the rules run -- dataset, three minima, overlap, the
rounds of Algorithm 3 with their AutoNEB paths, the landscape, the dense evaluation of the MST,
the table row, Table B.1 and the figures -- in a temporary folder, in seconds; each test checks
what one stage promises.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nobarriers.cli import ALIGNMENT_ATTRS, _text, describe_file
from nobarriers.core.errors import FileFormatError, NoBarriersError
from nobarriers.engine.overlap import read_overlap_csv
from nobarriers.formats.minimum import load_minimum
from nobarriers.formats.pathfile import read_evaluation, read_path
from nobarriers.formats.records import (
    DatasetRecord,
    LandscapeRecord,
    MSTPathsRecord,
    RoundRecord,
    TableRow,
)
from nobarriers.report.pairs import read_pair_details
from nobarriers.report.table import read_table_b1
from nobarriers.settings.config import WorkflowConfig, stage_hash, stage_settings
from nobarriers.stages import data, evaluation, exploration, minima, overlap, paths, report
from nobarriers.stages.compute import JobRuntime

ROOT = Path(__file__).resolve().parents[1]

CONFIG = {
    "minima_per_arch": 3,
    "recipes": {"digits": {"epochs": 3}},
    "autoneb": {
        "schedule": [{"steps": 8, "lr": 0.1}, {"steps": 8, "lr": 0.01}],
        "batch_size": 64,
        "eval_subset": 128,
        "n_between": 3,
        "mode": "loop",
    },
    "exploration": {"max_paths": 3, "pairs_per_round": 2},
    "evaluation": {"n_between": 2, "line_points": 3, "ensemble_sizes": [3]},
    "alignment": "weight_matching",
    "rows": [{"dataset": "digits", "arch": "mlp-4"}],
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("stages")
    settings = WorkflowConfig(dict(CONFIG))
    row = settings.row("digits", "mlp-4")
    runtime = JobRuntime(data_dir=str(root / "data"), device="cpu")
    out = {"root": root, "row": row, "runtime": runtime}
    out["dataset"] = data.prepare_dataset_job("digits", runtime, root / "digits.json")
    minima_paths = []
    for seed in row["seeds"]:
        path = root / "minima" / f"{seed}.safetensors"
        minima.train_job(stage_settings(row, "minima"), seed, path, root / f"{seed}.ckpt", runtime)
        minima_paths.append(path)
    out["minima"] = minima_paths
    ov = {k: root / "overlap" / f"o.{k}" for k in ("csv", "matrix.csv", "png", "pdf")}
    out["overlap_flagged"] = overlap.overlap_job(
        stage_settings(row, "minima"), minima_paths, runtime, ov["csv"], ov["matrix.csv"],
        ov["png"], ov["pdf"], threshold=0.0, metric="smaller",
    )  # fmt: skip
    out["overlap"] = ov
    path_settings = stage_settings(row, "paths")
    rounds, path_files, r = [], [], 0
    while True:
        record = exploration.select_pairs_job(
            path_settings, minima_paths, path_files, root / "rounds" / f"{r}.json", r,
            settings.values["exploration"],
        )  # fmt: skip
        rounds.append(record)
        if not record.pairs:
            break
        for a, b in record.pairs:
            target = root / "paths" / f"{a}-{b}.h5"
            state = root / "paths" / f"{a}-{b}.state.pt"
            paths.autoneb_job(path_settings, minima_paths[a], minima_paths[b], target, state,
                              runtime)  # fmt: skip
            path_files.append(target)
        r += 1
    out["rounds"], out["paths"] = rounds, path_files
    out["landscape"] = exploration.landscape_job(
        path_settings, minima_paths, path_files, root / "landscape.json"
    )
    eval_settings = stage_settings(row, "evaluation")
    evaluated = []
    for a, b in out["landscape"].mst_pairs:
        target = root / "evaluated" / f"{a}-{b}.h5"
        evaluation.evaluate_path_job(eval_settings, root / "paths" / f"{a}-{b}.h5", target,
                                     runtime)  # fmt: skip
        evaluated.append(target)
    mst_files = [root / "paths" / f"{a}-{b}.h5" for a, b in out["landscape"].mst_pairs]
    aligned = []
    for a, b in out["landscape"].mst_pairs:
        target = root / "aligned" / f"{a}-{b}.h5"
        paths.aligned_path_job(stage_settings(row, "aligned"), minima_paths[a], minima_paths[b],
                               target, root / "aligned" / f"{a}-{b}.state.pt", runtime)  # fmt: skip
        aligned.append(target)
    out["aligned"] = aligned
    exploration.mst_paths_job(evaluated, mst_files, root / "mst_paths.json", aligned)
    report_settings = stage_settings(row, "report")
    out["table_row"] = report.table_row_job(
        report_settings, minima_paths, root / "landscape.json", root / "mst_paths.json",
        ov["csv"], root / "table_row.json", root / "pairs.csv",
    )  # fmt: skip
    out["eval_settings"] = eval_settings
    out["report_settings"] = report_settings
    return out


def test_dataset_record(chain):
    record = DatasetRecord.read(chain["root"] / "digits.json")
    assert (record.n_train, record.n_test, record.num_classes) == (1437, 360, 10)
    assert record.input_shape == [1, 8, 8] and record.provenance["version"]


def test_minima_carry_their_stage_hash(chain):
    expected = stage_hash(chain["row"], "minima")
    for seed, path in zip(chain["row"]["seeds"], chain["minima"], strict=True):
        m = load_minimum(path, expect_config_hash=expected)
        assert m.seed == seed and len(m.history) == 3
        assert not (chain["root"] / f"{seed}.ckpt").exists()


def test_rounds_follow_algorithm_3(chain):
    losses = {s: load_minimum(p).metrics["train_loss"] for s, p in zip(
        chain["row"]["seeds"], chain["minima"], strict=True)}  # fmt: skip
    best = min(losses, key=losses.get)
    first, second, last = chain["rounds"]
    # the star from the lowest-loss minimum, then one bypass within the budget of 3, then stop
    assert len(first.pairs) == 2 and all(best in p for p in first.pairs)
    assert len(second.pairs) == 1 and best not in second.pairs[0]
    assert last.pairs == [] and last.computed_before == 3
    assert RoundRecord.read(chain["root"] / "rounds" / "0.json") == first


def test_path_files_store_their_pair_and_hash(chain):
    expected = stage_hash(chain["row"], "paths")
    for path in chain["paths"]:
        record = read_path(path, expect_config_hash=expected)
        a, b = record.endpoints
        assert path.name == f"{a}-{b}.h5" and record.pivots.shape[0] >= 3
        assert not path.with_suffix(".state.pt").exists()  # removed once the file is written


def test_landscape_matches_the_path_files(chain):
    land = LandscapeRecord.read(chain["root"] / "landscape.json")
    saddles = {tuple(read_path(p, load_pivots=False).endpoints): read_path(p).saddle_loss
               for p in chain["paths"]}  # fmt: skip
    assert land.computed == saddles
    assert len(land.mst) == 2 and all((a, b) in saddles for a, b, _ in land.mst)
    # the pair off the tree is bounded by the higher tree edge on its tree path
    off = next(pair for pair in saddles if pair not in land.mst_pairs)
    index = {n: k for k, n in enumerate(land.nodes)}
    assert land.bounds[index[off[0]]][index[off[1]]] == max(s for _, _, s in land.mst)


def test_dense_evaluation_of_the_mst(chain):
    listing = MSTPathsRecord.read(chain["root"] / "mst_paths.json")
    assert len(listing.evaluated) == len(listing.paths) == 2
    expected = stage_hash(chain["eval_settings"], "evaluation")
    for f in listing.evaluated:
        record = read_evaluation(f, expect_config_hash=expected)
        dense = record.dense
        # the saddle is the maximum along the path, endpoints included
        assert record.saddles["train_loss"] >= max(dense["train_loss"][[0, -1]]) - 1e-12
        assert dense["t"][0] == 0 and np.all(np.diff(dense["t"]) > 0)


def test_table_row_is_the_mean_over_minima_and_mst_edges(chain):
    row = TableRow.read(chain["root"] / "table_row.json")
    losses = [load_minimum(p).metrics["train_loss"] for p in chain["minima"]]
    assert row.train_min == pytest.approx(np.mean(losses), rel=1e-12)
    listing = MSTPathsRecord.read(chain["root"] / "mst_paths.json")
    saddles = [read_evaluation(f).saddles["train_loss"] for f in listing.evaluated]
    assert row.train_sadd == pytest.approx(np.mean(saddles), rel=1e-12)
    assert (row.n_minima, row.n_edges, row.n_paths) == (3, 2, 3)
    assert row.config_hash == stage_hash(chain["report_settings"], "report")
    # the table's hash names the row's minima, its budget and its overlap threshold
    for change in ({"minima_per_arch": 4}, {"exploration": {"max_paths": 2}},
                   {"overlap": {"threshold": 0.5}}):  # fmt: skip
        other = WorkflowConfig({**CONFIG, **change}).row("digits", "mlp-4")
        assert stage_hash(other, "report") != row.config_hash, change
        assert stage_hash(other, "paths") == stage_hash(chain["row"], "paths"), change


def test_overlap_flags_reach_the_table_row(chain):
    # threshold 0: every pair that shares a misclassified sample is flagged
    flagged_in_file = sum(r["above_threshold"] for r in read_overlap_csv(chain["overlap"]["csv"]))
    assert flagged_in_file == len(chain["overlap_flagged"]) > 0
    assert chain["table_row"].n_overlap_flagged == flagged_in_file


def test_pair_table(chain):
    rows = read_pair_details(chain["root"] / "pairs.csv")
    assert len(rows) == 3 and sum(r["on_mst"] for r in rows) == 2
    for r in rows:
        assert r["ultrametric_bound"] <= r["saddle_train_loss"] + 1e-12
        assert (r["dense_train_loss"] is None) == (not r["on_mst"])
        assert (r["ensemble_path_test_error"] is None) == (not r["on_mst"])


def test_ensembles_along_the_mst_paths(chain, tmp_path):
    minima = {s: load_minimum(p) for s, p in zip(chain["row"]["seeds"], chain["minima"],
                                                 strict=True)}  # fmt: skip
    listing = MSTPathsRecord.read(chain["root"] / "mst_paths.json")
    pairs = {(r["i"], r["j"]): r for r in read_pair_details(chain["root"] / "pairs.csv")}
    path_errors, endpoint_errors = [], []
    for f in listing.evaluated:
        record = read_evaluation(f)
        ens = record.ensembles
        assert ens["sizes"].tolist() == [2, 3]  # K = 2 (the endpoints) always
        a, b = record.endpoints
        # each endpoint alone, exact BN, is the minimum's own test error
        assert ens["endpoint_test_error"].tolist() == pytest.approx(
            [minima[a].metrics["test_error"], minima[b].metrics["test_error"]], abs=1e-12
        )
        row = pairs[(a, b)]
        assert row["ensemble_endpoints_test_error"] == ens["test_error"][0]
        assert row["ensemble_size"] == 3 and row["ensemble_path_test_error"] == ens["test_error"][1]
        path_errors.append(ens["test_error"][1])
        endpoint_errors.append(ens["test_error"][0])
    table_row = TableRow.read(chain["root"] / "table_row.json")
    assert table_row.ensemble_size == 3
    assert table_row.ensemble_path_test_error == pytest.approx(np.mean(path_errors))
    assert table_row.ensemble_endpoints_test_error == pytest.approx(np.mean(endpoint_errors))
    png, pdf = tmp_path / "e.png", tmp_path / "e.pdf"
    report.ensemble_figure_job(chain["eval_settings"], chain["root"] / "mst_paths.json", png, pdf)
    assert png.stat().st_size > 0 and pdf.read_bytes()[:5] == b"%PDF-"


def test_table_b1_and_figures(chain, tmp_path):
    root = chain["root"]
    names = ("csv", "md", "tex", "pairs", "fig5_png", "fig5_pdf", "trends_png", "trends_pdf")
    out = {k: tmp_path / f"t.{k}" for k in names}
    expected = {"digits/mlp-4": chain["table_row"].config_hash}
    report.table_b1_job([root / "table_row.json"], [root / "pairs.csv"], **out,
                        expected_hashes=expected)  # fmt: skip
    (back,) = read_table_b1(out["csv"])
    assert back == chain["table_row"]
    assert read_pair_details(out["pairs"]) == read_pair_details(root / "pairs.csv")
    figures = {f"{n}_{e}": tmp_path / f"{n}.{e}" for n in ("fig4", "fig6", "fig7", "mst",
               "disconnectivity") for e in ("png", "pdf")}  # fmt: skip
    report.row_figures_job(chain["eval_settings"], chain["minima"], root / "table_row.json",
                           root / "landscape.json", root / "mst_paths.json", [1, 2, 9],
                           **figures)  # fmt: skip
    evaluation.slice_job(chain["eval_settings"], root / "landscape.json", root / "mst_paths.json",
                     tmp_path / "s.png", tmp_path / "s.pdf", 3, 0.25, chain["runtime"])  # fmt: skip
    for path in [*figures.values(), out["fig5_png"], out["trends_png"], tmp_path / "s.png"]:
        assert path.stat().st_size > 1000, path
    # the barriers of the trends figure: the paths' and the straight lines' above the minima
    row = chain["table_row"]
    assert 0 <= row.barrier_mean <= row.line_barrier_mean


def test_results_of_another_configuration_are_refused(chain, tmp_path):
    other = {**chain["eval_settings"], "evaluation": {**chain["eval_settings"]["evaluation"],
                                                      "n_between": 5}}  # fmt: skip
    with pytest.raises(FileFormatError, match="config_hash"):
        report.table_row_job(other, chain["minima"], chain["root"] / "landscape.json",
                             chain["root"] / "mst_paths.json", chain["overlap"]["csv"],
                             tmp_path / "r.json", tmp_path / "p.csv")  # fmt: skip
    with pytest.raises(NoBarriersError, match="must not mix"):
        report.table_b1_job([chain["root"] / "table_row.json"], [chain["root"] / "pairs.csv"],
                            *(tmp_path / f"x{k}" for k in range(6)),
                            expected_hashes={"digits/mlp-4": "000000000000"},
                            trends_png=tmp_path / "t.png",
                            trends_pdf=tmp_path / "t.pdf")  # fmt: skip
    assert math.isfinite(chain["table_row"].factor)


def test_path_job_checks_its_endpoints_against_their_files(chain, tmp_path):
    # a minimum whose recorded loss is not what its weights give on this run's data (another
    # dataset, or damage the checksum cannot see): refused before any AutoNEB step
    from nobarriers.formats.minimum import write_minimum

    m = load_minimum(chain["minima"][1])
    changed = tmp_path / "1.safetensors"
    write_minimum(changed, m.state_dict, m.predictions, arch=m.arch, dataset=m.dataset,
                  seed=m.seed, recipe=m.recipe, metrics={**m.metrics, "train_loss": 0.5},
                  history=m.history, config_hash=m.config_hash, num_classes=m.num_classes,
                  input_shape=m.input_shape)  # fmt: skip
    row = stage_settings(chain["row"], "paths")
    with pytest.raises(FileFormatError) as err:
        paths.autoneb_job(row, chain["minima"][0], changed, tmp_path / "0-1.h5",
                          tmp_path / "0-1.state.pt", chain["runtime"])  # fmt: skip
    assert str(changed) in str(err.value) and "records 0.5" in str(err.value)
    assert not (tmp_path / "0-1.h5").exists() and not (tmp_path / "0-1.state.pt").exists()


def test_planning_and_bookkeeping_never_import_torch(chain, tmp_path):
    # the start-up (what rules/common.smk imports, the paper config resolved and checked), the
    # rounds, the landscape and the report run in the main Snakemake process or as short jobs:
    # without torch they start in a fraction of a second
    import subprocess
    import sys

    code = (
        "import sys; import nobarriers.stages.exploration, nobarriers.stages.report; "
        "from nobarriers.stages.exploration import mst_paths_job; "
        "from nobarriers.formats.minimum import load_minimum; "
        "from nobarriers.settings.config import WorkflowConfig, stage_hash; "
        "from nobarriers.stages.checks import check_user_models; "
        "import nobarriers.core.results_lock, nobarriers.formats.records; "
        "import nobarriers.stages.common; "
        "s = WorkflowConfig.load('config/paper.yaml'); rows = s.selected_rows(); "
        "[stage_hash(s.row(*r), 'report') and s.summary(*r) for r in rows]; "
        "check_user_models(s, rows); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)  # fmt: skip
    assert out.stdout.strip() == "False"
    # and the bookkeeping jobs themselves, on real files: the minima's numbers, the paths' and
    # the evaluations' records, the rounds, the landscape, the MST listing, the table row (a
    # minimum read without its tensors once imported torch to check their shapes: 2.3 s of CPU
    # in each of these jobs)
    root, row = chain["root"], chain["row"]
    jobs = f"""
import json, sys
from pathlib import Path
from nobarriers.stages import exploration, report
from nobarriers.stages.common import evaluations_of, highest_mst_path, load_row_minima
root, out, row = Path({str(root)!r}), Path({str(tmp_path)!r}), json.loads(sys.argv[1])
minima = [root / "minima" / f"{{s}}.safetensors" for s in row["seeds"]]
paths = sorted((root / "paths").glob("*.h5"))
assert load_row_minima(minima, row["minima"], tensors=False)[0].metrics
exploration.select_pairs_job(row["paths"], minima, paths, out / "round.json", 3,
                             json.loads(sys.argv[2]))
landscape = exploration.landscape_job(row["paths"], minima, paths, out / "landscape.json")
mst = [root / "paths" / f"{{a}}-{{b}}.h5" for a, b in landscape.mst_pairs]
exploration.mst_paths_job(sorted((root / "evaluated").glob("*.h5")), mst, out / "mst.json")
assert evaluations_of(sorted((root / "evaluated").glob("*.h5")), row["evaluation"])
assert highest_mst_path(landscape, paths, row["paths"])[1].pivots.size
report.table_row_job(row["report"], minima, root / "landscape.json", root / "mst_paths.json",
                     root / "overlap" / "o.csv", out / "row.json", out / "pairs.csv")
print("torch" in sys.modules)
"""
    stages = {k: stage_settings(row, k) for k in ("minima", "paths", "evaluation", "report")}
    args = [json.dumps({**stages, "seeds": row["seeds"]}), json.dumps(CONFIG["exploration"])]
    out = subprocess.run([sys.executable, "-c", jobs, *args], capture_output=True, text=True,
                         cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False" and (tmp_path / "row.json").is_file()


def test_aligned_mst_paths_beside_the_raw_ones(chain, tmp_path):
    """alignment: weight_matching: every MST edge also has an aligned path (b's neurons permuted
    to a's, same function), recorded with the alignment; pairs.csv and the table row report raw
    and aligned side by side; the raw landscape is untouched."""
    rows = {(r["i"], r["j"]): r for r in read_pair_details(chain["root"] / "pairs.csv")}
    expected = stage_hash(chain["row"], "aligned")
    aligned_saddles, raw_lines, aligned_lines = [], [], []
    for f in chain["aligned"]:
        record = read_path(f, expect_config_hash=expected)
        a, b = record.endpoints
        raw = read_path(chain["root"] / "paths" / f"{a}-{b}.h5")
        attrs = record.attrs
        assert attrs["alignment"] == "weight_matching" and attrs["alignment_sweeps"] >= 1
        assert attrs["alignment_distance_after"] <= attrs["alignment_distance_before"]
        assert attrs["alignment_max_output_diff"] < 1e-4  # the same function
        # same start; the end is b's permuted twin: the same distance from a as aligned says
        np.testing.assert_array_equal(record.pivots[0], raw.pivots[0])
        end_distance = float(
            np.linalg.norm(record.pivots[-1].astype(np.float64) - record.pivots[0])
        )
        assert end_distance == pytest.approx(attrs["alignment_distance_after"], rel=1e-5)
        row = rows[(a, b)]
        assert row["aligned_saddle_train_loss"] == record.saddle_loss
        assert row["aligned_n_pivots"] == record.pivots.shape[0] - 2
        assert row["n_pivots"] == raw.pivots.shape[0] - 2
        assert row["aligned_line_train_loss"] == attrs["aligned_line_saddle_loss"]
        assert row["path_length"] == pytest.approx(report.path_length(raw.pivots), rel=1e-12)
        shown = describe_file(f)["alignment"]  # what `nobarriers inspect` prints
        assert shown == {k: attrs[k] for k in ALIGNMENT_ATTRS}
        assert "aligned by weight_matching" in _text(describe_file(f))
        aligned_saddles.append(record.saddle_loss)
        raw_lines.append(attrs["raw_line_saddle_loss"])
        aligned_lines.append(attrs["aligned_line_saddle_loss"])
    table_row = TableRow.read(chain["root"] / "table_row.json")
    assert table_row.alignment_aligned_saddle == pytest.approx(np.mean(aligned_saddles))
    assert table_row.alignment_raw_line == pytest.approx(np.mean(raw_lines))
    assert table_row.alignment_aligned_line == pytest.approx(np.mean(aligned_lines))
    listing = MSTPathsRecord.read(chain["root"] / "mst_paths.json")
    dense = [read_evaluation(f).saddles["train_loss"] for f in listing.evaluated]
    assert table_row.train_sadd == pytest.approx(np.mean(dense))  # the paper's: the raw paths
    png, pdf = tmp_path / "a.png", tmp_path / "a.pdf"
    report.alignment_figure_job(chain["report_settings"], chain["root"] / "mst_paths.json",
                                png, pdf)  # fmt: skip
    assert png.stat().st_size > 0 and pdf.read_bytes()[:5] == b"%PDF-"


def test_a_changed_byte_in_any_record_is_refused_naming_the_file(chain, tmp_path):
    """The probe that found a silent wrong table: one bit flipped in a landscape record (an MST
    edge 0-2 read as 1-2). Every JSON record carries a checksum verified on read."""
    records = {
        "landscape.json": LandscapeRecord,
        "mst_paths.json": MSTPathsRecord,
        "table_row.json": TableRow,
        "digits.json": DatasetRecord,
        "rounds/0.json": RoundRecord,
    }
    for name, kind in records.items():
        original = chain["root"] / name
        copy = tmp_path / name.replace("/", "-")
        text = original.read_text()
        copy.write_text(text)
        kind.read(copy)  # as written: accepted
        digit = next(i for i, c in enumerate(text) if c.isdigit())
        flipped = text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1 :]
        copy.write_text(flipped)
        with pytest.raises(FileFormatError) as err:
            kind.read(copy)
        assert str(copy) in str(err.value) and "fails its checksum" in str(err.value), name


def flip_a_digit(data: bytes) -> bytes:
    """The first digit after the header line, one higher (mod 10): one changed byte."""
    i = next(i for i in range(data.index(b"\n"), len(data)) if data[i : i + 1].isdigit())
    return data[:i] + str((data[i] - 48 + 1) % 10).encode() + data[i + 1 :]


def test_a_changed_byte_in_a_csv_the_workflow_reads_again_is_refused(chain, tmp_path):
    """The CSVs read by a later job (the overlap table by the table row, a row's pair table by
    the merged one) carry their SHA-256 beside them, verified on read; the checksum file is
    sha256sum's own format."""
    import shutil
    import subprocess

    overlap_csv = chain["overlap"]["csv"]
    for original, read in ((overlap_csv, read_overlap_csv),
                           (chain["root"] / "pairs.csv", read_pair_details)):  # fmt: skip
        checked = subprocess.run(["sha256sum", "-c", original.name + ".sha256"],
                                 cwd=original.parent, capture_output=True, text=True)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
        copy = tmp_path / original.name
        shutil.copy(original, copy)
        shutil.copy(original.with_name(original.name + ".sha256"), tmp_path)
        assert read(copy)  # as written: accepted
        copy.write_bytes(flip_a_digit(copy.read_bytes()))
        with pytest.raises(FileFormatError) as err:
            read(copy)
        assert str(copy) in str(err.value) and "fails its checksum" in str(err.value)
        copy.with_name(copy.name + ".sha256").unlink()
        with pytest.raises(FileFormatError, match="without a readable checksum"):
            read(copy)
    # the job that reads the overlap table again refuses a changed one, naming it
    damaged = tmp_path / "overlap" / "o.csv"
    damaged.parent.mkdir()
    damaged.write_bytes(flip_a_digit(overlap_csv.read_bytes()))
    shutil.copy(overlap_csv.with_name(overlap_csv.name + ".sha256"), damaged.parent)
    with pytest.raises(FileFormatError, match="fails its checksum") as err:
        report.table_row_job(chain["report_settings"], chain["minima"],
                             chain["root"] / "landscape.json", chain["root"] / "mst_paths.json",
                             damaged, tmp_path / "r.json", tmp_path / "p.csv")  # fmt: skip
    assert str(damaged) in str(err.value)


def test_the_mst_path_list_moves_with_its_folder(chain, tmp_path):
    """mst_paths.json names its files relative to itself: a copied results folder reads its own
    files, never the original's (which may since have been replaced)."""
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(chain["root"], moved)
    listing = MSTPathsRecord.read(moved / "mst_paths.json")
    for f in [*listing.paths, *listing.evaluated, *listing.aligned]:
        assert Path(f).is_relative_to(moved) and Path(f).is_file(), f
    stored = (moved / "mst_paths.json").read_text()
    assert str(chain["root"]) not in stored and str(moved) not in stored


def test_two_runs_with_mode_auto_write_identical_bytes(chain, tmp_path):
    """mode: auto is a rule, not a timing: two path jobs of the same pair, one after the
    other, write byte-identical files (a timing-based choice differed by ~1e-8 between runs)."""
    row = stage_settings(chain["row"], "paths")
    row = {**row, "autoneb": {**row["autoneb"], "mode": "auto"}}
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run / "0-1.h5"
        out.parent.mkdir()
        paths.autoneb_job(row, chain["minima"][0], chain["minima"][1], out,
                          tmp_path / run / "state.pt", chain["runtime"])  # fmt: skip
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_the_early_stop_ends_the_loop_in_the_workflows_selection(chain, tmp_path):
    """Algorithm 3's round after the star, from the chain's own minima and paths: with a loose
    early stop it selects nothing and says why; without one it goes on (the stop skipped); on
    the barrier scale it decides on the barriers, not the losses."""
    settings = stage_settings(chain["row"], "paths")
    star = [chain["root"] / "paths" / f"{a}-{b}.h5" for a, b in chain["rounds"][0].pairs]
    base = {"max_paths": 3, "pairs_per_round": None, "similar_saddles_scale": "loss"}

    def round_one(**exploration):
        return exploration_job(settings, chain["minima"], star, tmp_path / "1.json", 1,
                               {**base, **exploration}).pairs  # fmt: skip

    exploration_job = exploration.select_pairs_job
    assert round_one(similar_saddles_rtol=None)  # no early stop: the loop goes on
    assert round_one(similar_saddles_rtol=10.0) == []  # every tree is "similar" at rtol 10
    saddles = [read_path(p, load_pivots=False).saddle_loss for p in star]
    spread = (max(saddles) - min(saddles)) / max(saddles)
    assert round_one(similar_saddles_rtol=spread * 0.99)  # just too tight: goes on
    assert round_one(similar_saddles_rtol=spread * 1.01) == []  # just loose enough: stops


def test_the_hessian_at_each_mst_saddle_reaches_the_pair_table(chain, tmp_path):
    """evaluation.hessian_subset: the evaluation job measures the spectrum at the path's highest
    point and pairs.csv reports it; with the option off the columns stay empty."""
    import json

    from nobarriers.stages.report import hessian_columns

    settings = {**chain["eval_settings"], "evaluation": {**chain["eval_settings"]["evaluation"],
                                                         "hessian_subset": 256}}  # fmt: skip
    (a, b), *_ = chain["landscape"].mst_pairs
    out = tmp_path / "evaluated.h5"
    evaluation.evaluate_path_job(settings, chain["root"] / "paths" / f"{a}-{b}.h5", out,
                                 chain["runtime"])  # fmt: skip
    record = read_evaluation(out)
    spectrum = json.loads(record.attrs["hessian"])
    columns = hessian_columns(record)
    assert spectrum["converged"] and columns["hessian_converged"]
    assert columns["hessian_lambda_max"] > 0 and columns["hessian_index"] >= 0
    assert columns["hessian_lambda_min"] <= columns["hessian_lambda_max"]
    assert spectrum["n_products"] > 0 and spectrum["grad_norm"] >= 0
    rows = read_pair_details(chain["root"] / "pairs.csv")
    assert all(r["hessian_index"] is None for r in rows)  # off in the chain's config


def test_comparisons_repeats_curves_sample_and_independent_ensembles(chain, tmp_path):
    """The comparison jobs on the chain's minima: a repeated AutoNEB run of an MST edge (another
    seed), both curve families for an MST edge and the off-MST pair, the independent ensembles;
    then the table row, pairs.csv and the families table report them beside the paper's."""
    import shutil

    from nobarriers.formats.records import IndependentEnsembles
    from nobarriers.report.comparisons import read_families
    from nobarriers.stages import curves

    cfg = {**CONFIG, "comparisons": {"sample_pairs": 1, "autoneb_repeats": 2},
           "curves": {"families": ["bezier", "polychain"], "epochs": 2, "n_points": 7}}  # fmt: skip
    row = WorkflowConfig(cfg).row("digits", "mlp-4")
    root = tmp_path / "row"
    shutil.copytree(chain["root"], root)
    minima = [root / "minima" / p.name for p in chain["minima"]]
    (a, b), *_ = chain["landscape"].mst_pairs
    sample = [p for p in [(0, 1), (0, 2), (1, 2)] if p not in chain["landscape"].mst_pairs]
    paths_settings = stage_settings(row, "paths")
    repeat = root / "repeats" / f"{a}-{b}" / "1.h5"
    paths.repeat_path_job(paths_settings, minima[a], minima[b], repeat, tmp_path / "r.state.pt",
                          chain["runtime"], repeat=1)  # fmt: skip
    first, again = read_path(root / "paths" / f"{a}-{b}.h5"), read_path(repeat)
    assert again.attrs["repeat"] == 1 and again.seed != first.seed
    assert not np.array_equal(again.pivots, first.pivots)  # another batch seed, another path
    curve_files, curve_evals = [], []
    for kind in ("bezier", "polychain"):
        for i, j in [(a, b), *sample]:
            out = root / "curves" / kind / f"{i}-{j}.h5"
            ev = root / "curves" / kind / f"{i}-{j}.evaluated.h5"
            curves.curve_job(stage_settings(row, "curves"), kind, minima[i], minima[j], out, ev,
                             tmp_path / f"{kind}.state.pt", chain["runtime"])  # fmt: skip
            curve_files.append(out), curve_evals.append(ev)
            dense = read_evaluation(ev).dense
            assert len(dense["t"]) == 7 and dense["t"][-1] == 1.0
            start = load_minimum(minima[i]).metrics["train_loss"]
            assert dense["train_loss"][0] == pytest.approx(start, rel=1e-4)  # exact BN at w1
    eval_settings = stage_settings(row, "evaluation")
    for i, j in sample:  # the sample's raw path exists (budget 3: every pair) and is evaluated
        target = root / "evaluated" / f"{i}-{j}.h5"
        evaluation.evaluate_path_job(eval_settings, root / "paths" / f"{i}-{j}.h5", target,
                                     chain["runtime"])  # fmt: skip
    independent = root / "independent.json"
    record = evaluation.independent_ensembles_job(eval_settings, minima, independent,
                                                  chain["runtime"])  # fmt: skip
    assert record.sizes == [2, 3] and record.draws == [3, 1]
    assert IndependentEnsembles.read(independent).test_error == record.test_error
    listing = [root / "evaluated" / f"{i}-{j}.h5" for i, j in [*chain["landscape"].mst_pairs,
                                                               *sample]]  # fmt: skip
    exploration.mst_paths_job(listing, [root / "paths" / f.name for f in listing],
                             root / "mst_paths.json", curves=curve_files,
                             curve_evaluations=curve_evals, repeats=[repeat])  # fmt: skip
    report_settings = stage_settings(row, "report")
    table_row = report.table_row_job(
        report_settings, minima, root / "landscape.json", root / "mst_paths.json",
        chain["overlap"]["csv"], root / "table_row.json", root / "pairs.csv", [independent],
    )  # fmt: skip
    assert table_row.repeats == 2 and table_row.repeat_saddle_first_mean is not None
    assert table_row.repeat_saddle_min_mean <= table_row.repeat_saddle_first_mean
    assert table_row.bezier_sadd > 0 and table_row.polychain_sadd > 0
    assert table_row.ensemble_independent_test_error == record.test_error[-1]
    pairs = {(r["i"], r["j"]): r for r in read_pair_details(root / "pairs.csv")}
    assert pairs[sample[0]]["in_sample"] and not pairs[(a, b)]["in_sample"]
    assert pairs[(a, b)]["repeats"] == 2
    assert pairs[(a, b)]["repeat_saddle_spread"] == pytest.approx(
        abs(first.saddle_loss - again.saddle_loss)
    )
    assert pairs[sample[0]]["bezier_train_loss"] is not None
    timings = {}
    rows = report.families_job(report_settings, minima, root / "landscape.json",
                               root / "mst_paths.json", timings, root / "families.csv",
                               tmp_path / "f.png", tmp_path / "f.pdf")  # fmt: skip
    families = {(r["i"], r["j"], r["family"]): r for r in read_families(root / "families.csv")}
    assert len(families) == len(rows)
    for pair in [(a, b), *sample]:
        line = families[(*pair, "line")]
        auto = families[(*pair, "autoneb")]
        assert line["gradient_samples"] == 0 and auto["gradient_samples"] > 0
        assert auto["barrier"] <= line["barrier"] + 1e-9  # AutoNEB beats the straight line
        assert {"bezier", "polychain"} <= {f for i, j, f in families if (i, j) == pair}
    assert (tmp_path / "f.png").stat().st_size > 0
    figure = (tmp_path / "r.png", tmp_path / "r.pdf")
    report.repeats_figure_job(report_settings, minima, root / "landscape.json",
                              root / "mst_paths.json", *figure)  # fmt: skip
    assert (tmp_path / "r.pdf").read_bytes()[:5] == b"%PDF-"
