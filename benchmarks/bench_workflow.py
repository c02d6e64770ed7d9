"""Workflow overhead: Snakemake dry runs and the checkpoint loop.

1. ``snakemake -n --configfile config/paper.yaml`` (the paper's 28-row workflow, nothing run),
   median of ``--repeats`` runs; goal <= 15 s.
2. One checkpoint-loop iteration on the embedded config: the wall time of a dry run over a
   *finished* embedded run (``--finished DIR``, e.g. the output of ``bench_demo.sh``; Snakemake then
   re-evaluates every ``select_pairs``/``landscape`` checkpoint round) divided by the number of
   rounds, and the CPU/wall time of the ``select_pairs`` jobs themselves (from their log
   timestamps in the finished run's Snakemake log, if given with ``--snakemake-log``).

Outputs go to scratch directories (``--config results_dir=... data_dir=...``,
``--workflow-profile none``); the repository's ``results/`` is never touched.

    .venv/bin/python benchmarks/bench_workflow.py [--finished /tmp/bench_demo/results]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(REPO / ".venv" / "bin" / "snakemake")


def dry_run(extra: list[str], results: str, data: str) -> tuple[float, str]:
    cmd = [SNAKEMAKE, "-n", "--workflow-profile", "none", "--cores", "2", *extra]
    cmd += ["--config", f"results_dir={results}", f"data_dir={data}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, proc.stdout + proc.stderr


def select_pairs_times(log: Path) -> list[float]:
    """Wall seconds of each select_pairs job, from the timestamps of a Snakemake log."""
    text = log.read_text().splitlines()
    stamp = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
    start: dict[str, datetime] = {}
    out = []
    last = None
    rule = None
    for line in text:
        m = stamp.match(line.strip())
        if m:
            last = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        s = line.strip()
        if s.startswith(("localcheckpoint select_pairs", "checkpoint select_pairs")):
            rule = "select_pairs"
        elif s.startswith("jobid:") and rule == "select_pairs" and last is not None:
            start[s.split()[1]] = last
            rule = None
        elif s.startswith(("rule ", "localrule ", "checkpoint ", "localcheckpoint ")):
            rule = None
        elif s.startswith("Finished jobid:") and last is not None:
            jid = s.split()[2]
            if jid in start:
                out.append((last - start.pop(jid)).total_seconds())
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--finished", default=None, help="results_dir of a finished embedded run")
    ap.add_argument("--snakemake-log", default=None, help="Snakemake log of that run")
    ap.add_argument("--scratch", default="/tmp/bench_workflow")
    args = ap.parse_args(argv)
    print(f"# workflow overhead\nmachine: {machine()}\n")
    rows = []
    paper = [
        dry_run(["--configfile", "config/paper.yaml"], f"{args.scratch}/paper", "/tmp/bench_data")
        for _ in range(args.repeats)
    ]
    walls = [w for w, _ in paper]
    jobs = re.search(r"^total\s+(\d+)", paper[0][1], re.M)
    rows.append(
        {
            "measurement": "snakemake -n --configfile config/paper.yaml",
            "median s": statistics.median(walls),
            "all s": " ".join(f"{w:.1f}" for w in walls),
            "note": f"{jobs.group(1) if jobs else '?'} jobs planned; goal <= 15 s",
        }
    )
    empty = [dry_run([], f"{args.scratch}/embedded", "/tmp/bench_data")[0] for _ in range(2)]
    rows.append(
        {
            "measurement": "snakemake -n (embedded config, nothing run yet)",
            "median s": statistics.median(empty),
            "all s": " ".join(f"{w:.1f}" for w in empty),
            "note": "first round only",
        }
    )
    if args.finished:
        fin = Path(args.finished)
        rounds = len(list(fin.glob("*/*/rounds/*.json")))
        data_dir = str(fin.parent / "data")
        done = [dry_run([], str(fin), data_dir)[0] for _ in range(args.repeats)]
        med = statistics.median(done)
        rows.append(
            {
                "measurement": "snakemake -n over the finished embedded run",
                "median s": med,
                "all s": " ".join(f"{w:.1f}" for w in done),
                "note": f"{rounds} checkpoint rounds re-evaluated",
            }
        )
        if rounds:
            rows.append(
                {
                    "measurement": "  per checkpoint round (dry-run share)",
                    "median s": (med - statistics.median(empty)) / rounds,
                    "all s": "",
                    "note": "(finished - empty) / rounds",
                }
            )
    if args.snakemake_log:
        sp = select_pairs_times(Path(args.snakemake_log))
        if sp:
            rows.append(
                {
                    "measurement": "select_pairs job wall time",
                    "median s": statistics.median(sp),
                    "all s": " ".join(f"{w:.0f}" for w in sp),
                    "note": f"{len(sp)} jobs, 1 s log resolution, includes interpreter start",
                }
            )
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
