"""What Algorithm 3's early stop and the three extensions do on digits, measured through the
workflow itself (the numbers in the README).

Starts from a finished demo (``bash benchmarks/bench_demo.sh OUT`` writes ``OUT/results``) and
works on copies of it, so the demo stays as it was:

1. **The demo as run**: per row the MST edges raw vs aligned (straight-line barrier, saddle,
   pivots, path length, wall time of the path jobs), the ensemble curve, paths computed.
2. **Early stop on the demo**: the same budget without ``similar_saddles_rtol`` (finished paths are
   reused, only missing ones computed): paths, Sadd, ultrametric bounds.
3. **A digits CNN aligned**: ``--config alignment=weight_matching`` also aligns the CNN row.
4. **Climbing image**: one MLP row (``--climbing-arch``) again with
   ``autoneb.climbing_cycles: 1`` (its minima copied): the saddle of every pair both runs computed.
5. **Early stop on a larger run** (``--large``): two more MLP rows, every one of the 45 pairs,
   then the early stop replayed on the same paths.

    .venv/bin/python benchmarks/bench_extensions.py --demo /tmp/bench_demo/results \\
        --out /tmp/bench_ext [--large]
    .venv/bin/python benchmarks/bench_extensions.py --out /tmp/bench_ext --large  # part 5 only
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from nobarriers.engine.landscape import (  # noqa: E402
    minimum_spanning_tree,
    next_pairs,
    ultrametric_bounds,
)
from nobarriers.formats.pathfile import read_evaluation, read_path  # noqa: E402
from nobarriers.formats.records import LandscapeRecord, MSTPathsRecord  # noqa: E402
from nobarriers.report.pairs import read_pair_details  # noqa: E402
from nobarriers.report.table import read_table_b1  # noqa: E402
from nobarriers.settings.config import WorkflowConfig  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
DEMO = ROOT / "config" / "config.yaml"


def run(results: Path, *config: str, cores: int = 2, configfile=None) -> float:
    """One workflow run on ``results`` (its own working directory); returns its wall time."""
    workdir = results.parent / f".wd-{results.name}"
    workdir.mkdir(exist_ok=True)
    args = [
        SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "-d",
        str(workdir),
        "--cores",
        str(cores),
        "--rerun-incomplete",
    ]
    if configfile:
        args += ["--configfile", str(configfile)]
    args += ["--config", f"results_dir={results}", f"data_dir={results.parent / 'data'}", *config]
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stdout[-3000:] + proc.stderr[-6000:])
    return time.perf_counter() - start


def table(results: Path) -> dict:
    return {r.architecture: vars(r) for r in read_table_b1(results / "table_b1.csv")}


def landscape(results: Path, config: WorkflowConfig, arch: str) -> LandscapeRecord:
    return LandscapeRecord.read(
        results / "digits" / arch / config.rounds_folder() / "landscape.json"
    )


def seconds(tsv: Path) -> float:
    return float(tsv.read_text().splitlines()[1].split("\t")[0])


def job_seconds(results: Path, arch: str, kind: str, files) -> float:
    """Wall time of the path jobs of ``files`` (kind: paths or aligned), from their benchmarks."""
    folder = results / "benchmarks" / "digits" / arch / kind
    return sum(seconds(folder / f"{Path(f).stem}.tsv") for f in files)


#: pairs.csv columns of an MST edge, raw then aligned
COMPARED = (
    "raw_line_train_loss",
    "aligned_line_train_loss",
    "saddle_train_loss",
    "aligned_saddle_train_loss",
    "n_pivots",
    "aligned_n_pivots",
    "path_length",
    "aligned_path_length",
)


COMPARED_LABELS = ["line raw", "line aligned", "saddle raw", "saddle aligned", "pivots raw",
                   "pivots aligned", "length raw", "length aligned"]  # fmt: skip


def mean_of(pairs: list[dict], column: str) -> float:
    return float(np.mean([p[column] for p in pairs]))


def markdown(header: list[str], rows: list[list]) -> str:
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def demo_as_run(results: Path, config: WorkflowConfig) -> None:
    print("\n## 1. The demo as run\n")
    rows = []
    for dataset, arch in config.selected_rows():
        d = results / dataset / arch
        pairs = [p for p in read_pair_details(d / "pairs.csv") if p["on_mst"]]
        t = table(results)[arch]
        mst = MSTPathsRecord.read(d / config.rounds_folder() / "mst_paths.json")
        raw_s = job_seconds(results, arch, "paths", mst.paths)
        line = [arch, int(t["n_paths"]), len(pairs), t["train_min"], t["train_sadd"]]
        if mst.aligned:
            al_s = job_seconds(results, arch, "aligned", mst.aligned)
            line += [mean_of(pairs, c) for c in COMPARED] + [f"{raw_s:.0f} / {al_s:.0f}"]
        else:
            line += ["-"] * 8 + [f"{raw_s:.0f} / -"]
        rows.append(line)
    print(
        markdown(
            [
                "row",
                "paths",
                "MST edges",
                "Min",
                "Sadd",
                *COMPARED_LABELS,
                "path jobs [s] raw / aligned",
            ],
            rows,
        )
    )
    print("\nEnsembles along the MST paths (mean test error over the edges, %):\n")
    rows = []
    for dataset, arch in config.selected_rows():
        mst = MSTPathsRecord.read(
            results / dataset / arch / config.rounds_folder() / "mst_paths.json"
        )
        ens = [read_evaluation(p).ensembles for p in mst.evaluated]
        if not ens or ens[0] is None:
            continue
        sizes = ens[0]["sizes"]
        alone = np.mean([e["endpoint_test_error"].mean() for e in ens])
        curve = np.mean([e["test_error"] for e in ens], axis=0)
        rows.append([arch, f"{100 * alone:.2f}"] + [f"{100 * v:.2f}" for v in curve])
        header = ["row", "one endpoint"] + [f"K = {k}" for k in sizes]
    if rows:
        print(markdown(header, rows))


def compare_tables(label: str, a: Path, b: Path, ca: WorkflowConfig, cb: WorkflowConfig, archs):
    rows = []
    for arch in archs:
        ta, tb = table(a)[arch], table(b)[arch]
        la, lb = landscape(a, ca, arch), landscape(b, cb, arch)
        ba, bb = np.array(la.bounds, float), np.array(lb.bounds, float)
        off = ~np.eye(len(ba), dtype=bool)
        rows.append(
            [
                arch,
                int(ta["n_paths"]),
                int(tb["n_paths"]),
                ta["train_sadd"],
                tb["train_sadd"],
                float(np.max(np.abs(ba - bb)[off])),
                float(np.max((np.abs(ba - bb) / bb)[off])),
            ]
        )
    print(f"\n{label}\n")
    print(
        markdown(
            [
                "row",
                "paths (early stop)",
                "paths (without)",
                "Sadd (early stop)",
                "Sadd (without)",
                "max |Δ bound|",
                "max rel. Δ bound",
            ],
            rows,
        )
    )


def replay(
    minimum_loss: dict, oracle: dict, rtol, budget: int, per_round, scale: str = "loss"
) -> dict:
    """Algorithm 3 as the workflow runs it, with every pair's saddle known (``oracle``): the
    paths an early stop ``rtol`` on ``scale`` would compute (paths are keyed by pair, so these
    are the saddles the workflow would measure)."""
    computed: dict = {}
    while pairs := next_pairs(
        minimum_loss, computed, per_round, budget=budget, similar_rtol=rtol, similar_scale=scale
    ):
        computed |= {pair: oracle[pair] for pair in pairs}
    return computed


SWEEP_COLUMNS = ["row", "scale", "rtol", "paths", "Sadd (mean MST saddle)", "mean MST barrier",
                 "max |Δ bound|", "max rel. Δ bound"]  # fmt: skip


def early_stop_sweep(record: LandscapeRecord, arch: str, rtols, per_round=None) -> list[list]:
    """Paths, the MST's mean saddle (= Sadd of the training loss) and the ultrametric bounds of
    each early stop, on both scales (``similar_saddles_scale``), against the run without one
    (``record``: its paths are those Algorithm 3 chose up to the budget, so a stop's choice is
    a prefix of them)."""
    minimum_loss, oracle = record.minimum_loss, record.computed
    _, full = ultrametric_bounds(minimum_loss, oracle)
    off = ~np.eye(len(full), dtype=bool)
    rows = []
    for scale, rtol in [(None, None)] + [(s, r) for s in ("loss", "barrier") for r in rtols]:
        computed = (
            replay(minimum_loss, oracle, rtol, len(oracle), per_round, scale) if rtol else oracle
        )
        _, bounds = ultrametric_bounds(minimum_loss, computed)
        tree = minimum_spanning_tree(minimum_loss, computed)
        saddles = [w for _, _, w in tree]
        barriers = [max(w - max(minimum_loss[a], minimum_loss[b]), 0.0) for a, b, w in tree]
        delta = np.abs(bounds - full)[off]
        rows.append([arch, scale or "--", f"{rtol:g}" if rtol else "none", len(computed),
                     float(np.mean(saddles)), float(np.mean(barriers)), float(delta.max()),
                     float((delta / full[off]).max())])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--demo", type=Path, help="results folder of a finished demo (parts 1-4; without it "
        "only part 5, with --large)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--large", action="store_true", help="also the 45-pair early-stop run")
    parser.add_argument("--climbing-arch", default="mlp-4", help="the row of part 4")
    parser.add_argument("--skip", nargs="*", default=[], help="parts to skip: 2 3 4")
    args = parser.parse_args()
    import yaml

    demo_config = WorkflowConfig(yaml.safe_load(DEMO.read_text()))
    if args.demo is None:
        args.skip = ["2", "3", "4"]
    else:
        demo_as_run(args.demo, demo_config)
    archs = [a for _, a in demo_config.selected_rows()]
    args.out.mkdir(parents=True, exist_ok=True)

    def copy_demo(name: str) -> Path:
        target = args.out / name / "results"
        shutil.rmtree(target.parent, ignore_errors=True)
        target.parent.mkdir(parents=True)
        shutil.copytree(args.demo, target, symlinks=True)  # copy2: modification times kept
        shutil.copytree(args.demo.parent / "data", target.parent / "data")
        return target

    budget = demo_config.values["exploration"]
    if "2" not in args.skip:
        nostop = copy_demo("no-early-stop")
        wall = run(
            nostop,
            f"exploration={{max_paths: {budget['max_paths']}, "
            f"pairs_per_round: {budget['pairs_per_round'] or 'null'}, "
            "similar_saddles_rtol: null}",
        )
        cfg = WorkflowConfig(
            {
                **yaml.safe_load(DEMO.read_text()),
                "exploration": {**budget, "similar_saddles_rtol": None},
            }
        )
        compare_tables(
            f"## 2. Early stop on the demo (the rerun without it: {wall:.0f} s)",
            args.demo,
            nostop,
            demo_config,
            cfg,
            archs,
        )
        sweep = []
        for arch in archs:
            record = landscape(nostop, cfg, arch)
            sweep += early_stop_sweep(record, arch, (0.1, 0.2, 0.3, 0.5), budget["pairs_per_round"])
        print("\nThe demo's saddles replayed with early stops on both scales (offline, the "
              "workflow's Algorithm 3 under the demo's budget):\n")  # fmt: skip
        print(markdown(SWEEP_COLUMNS, sweep))
    if "3" not in args.skip:
        aligned = copy_demo("cnn-aligned")
        wall = run(aligned, "alignment=weight_matching")
        pairs = [
            p for p in read_pair_details(aligned / "digits" / "cnn-4" / "pairs.csv") if p["on_mst"]
        ]
        names = [f"{p['i']}-{p['j']}" for p in pairs]
        raw, secs = (job_seconds(aligned, "cnn-4", kind, names) for kind in ("paths", "aligned"))
        print(f"\n## 3. The digits CNN-4 aligned (run: {wall:.0f} s)\n")
        print(
            markdown(
                [
                    "row",
                    *COMPARED_LABELS,
                    "distance before",
                    "distance after",
                    "path jobs [s] raw / aligned",
                ],
                [
                    [
                        "cnn-4",
                        *(mean_of(pairs, c) for c in COMPARED),
                        mean_of(pairs, "alignment_distance_before"),
                        mean_of(pairs, "alignment_distance_after"),
                        f"{raw:.0f} / {secs:.0f}",
                    ]
                ],
            )
        )
    if "4" not in args.skip:
        arch = args.climbing_arch
        target = args.out / "climbing" / "results"
        shutil.rmtree(target.parent, ignore_errors=True)
        for part in ("data", f"digits/{arch}/minima"):
            shutil.copytree(args.demo / part, target / part)
        shutil.copytree(args.demo.parent / "data", target.parent / "data")
        config = yaml.safe_load(DEMO.read_text())
        config["rows"] = [r for r in config["rows"] if r["arch"] == arch]
        config["autoneb"]["climbing_cycles"] = 1
        configfile = target.parent / "climbing.yaml"
        configfile.write_text(yaml.safe_dump(config))
        wall = run(target, configfile=configfile)
        rows = []
        for p in sorted((args.demo / "digits" / arch / "paths").glob("*-*.h5")):
            other = target / "digits" / arch / "paths" / p.name
            if other.is_file():
                plain, climbed = (
                    read_path(p, load_pivots=False),
                    read_path(other, load_pivots=False),
                )
                rows.append(
                    [
                        p.stem,
                        plain.saddle_loss,
                        climbed.saddle_loss,
                        climbed.saddle_loss - plain.saddle_loss,
                        plain.history[-1].n_pivots,
                        climbed.history[-1].n_pivots,
                    ]
                )
        print(f"\n## 4. Climbing image in the last cycle, {arch} (run: {wall:.0f} s)\n")
        print(
            markdown(
                ["pair", "saddle plain", "saddle climbing", "Δ", "pivots plain", "pivots climbing"],
                rows,
            )
        )
        deltas = np.array([r[3] for r in rows])
        print(
            f"\nmean Δ {deltas.mean():.3g}, mean relative Δ "
            f"{np.mean(deltas / np.array([r[1] for r in rows])):.3g}; Sadd plain "
            f"{table(args.demo)[arch]['train_sadd']:.5g}, "
            f"climbing {table(target)[arch]['train_sadd']:.5g}"
        )
    if args.large:
        target = args.out / "large" / "results"
        config = yaml.safe_load(DEMO.read_text())
        config["rows"] = [{"dataset": "digits", "arch": a} for a in ("mlp-8", "mlp-16")]
        config["exploration"] = {
            "max_paths": 45,
            "similar_saddles_rtol": None,
        }
        config["evaluation"] = {"ensemble_sizes": []}
        config["figures"] = {"slice_resolution": 5}
        configfile = args.out / "large.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        configfile.write_text(yaml.safe_dump(config))
        wall_all = run(target, configfile=configfile)
        every = WorkflowConfig(copy.deepcopy(config))  # the config is changed below
        full = args.out / "large" / "all-pairs"
        shutil.rmtree(full, ignore_errors=True)
        shutil.copytree(target, full)  # the table of the every-pair run, before it is rewritten
        config["exploration"]["similar_saddles_rtol"] = 0.1
        configfile.write_text(yaml.safe_dump(config))
        wall_stop = run(target, configfile=configfile)
        compare_tables(
            f"## 5. Early stop, 45 pairs possible (every pair: {wall_all:.0f} s, "
            f"replayed with the early stop: {wall_stop:.0f} s)",
            target,
            full,
            WorkflowConfig(config),
            every,
            ["mlp-8", "mlp-16"],
        )
        sweep = []
        for arch in ("mlp-8", "mlp-16"):
            sweep += early_stop_sweep(landscape(full, every, arch), arch, (0.1, 0.2, 0.3, 0.5))
        print("\nThe same 45 saddles replayed with other early stops on both scales (offline, "
              "the workflow's Algorithm 3, rounds as wide as it allows):\n")  # fmt: skip
        print(markdown(SWEEP_COLUMNS, sweep))
    print(f"\nmachine: {machine()}")


def machine() -> str:
    return subprocess.run(["uname", "-srm"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
