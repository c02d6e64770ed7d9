"""Run the CPU benchmarks one after the other (``make bench``) and keep their output.

Each benchmark runs in its own process (1 torch thread unless ``--threads``) and its stdout is
written to ``--out`` (default ``/tmp/nobarriers-bench``) as ``<name>.md``. ``make demo``'s cost is
measured separately by ``bash benchmarks/bench_demo.sh`` (about 10 minutes), the GPU numbers by
``benchmarks/gpu_benchmark.py`` on a CUDA machine.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only neb_step autoneb]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHES = {
    "neb_step": ["bench_neb_step.py"],
    "autoneb": ["bench_autoneb.py"],
    "training": ["bench_training.py"],
    "workflow": ["bench_workflow.py"],
}
QUICK = {
    "neb_step": ["--n", "4", "16", "--repeats", "5", "--big-n", "4", "--big-repeats", "2"],
    "autoneb": ["--paper-cycles", "1", "--rounds", "7"],
    "training": ["--rounds", "3", "--cifar-batches", "2"],
    "workflow": ["--repeats", "1"],
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    ap.add_argument("--quick", action="store_true", help="fewer N / repeats (a few minutes)")
    ap.add_argument("--out", default="/tmp/nobarriers-bench")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.only:
        cmd = [sys.executable, str(HERE / BENCHES[name][0]), *(QUICK[name] if args.quick else [])]
        print(f"\n===== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        with open(out / f"{name}.md", "w") as log:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            proc.wait()
        print(f"===== {name}: exit {proc.returncode}, {time.perf_counter() - t0:.0f} s", flush=True)
        if proc.returncode:
            failed.append(name)
    print(f"\noutputs in {out}/ ; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
