"""AutoNEB time-to-solution for one digits pair, dense-evaluation share, step-vs-floor ratio.

1. Trains two digits minima (``--arch``, default ``mlp-32`` = 64-32-10, the digits recipe).
2. **Time to solution**: AutoNEB between them with a fixed short schedule (the embedded config's:
   2x(150, 0.1), 2x(150, 0.01), 1x(150, 0.001), batch 256): wall time, saddle loss, pivots.
3. **Paper schedule shape**: cycles of 1000 steps (Sec. 4.1) starting from ``--pivots`` interior
   pivots (default 11): share of each cycle's wall time spent in the dense evaluation (all pivots +
   9 points per gap, exact-BN loss on the eval subset) and the insertion decision.
4. **Step vs floor**: one whole AutoNEB/NEB step with ``--pivots`` pivots (redistribution, batch,
   losses+gradients of all pivots, tangents, projection, update) against the floor = the sum of
   its interior pivots' forward+backward passes on the same batch, interleaved, medians.

    .venv/bin/python benchmarks/bench_autoneb.py [--arch mlp-32] [--paper-cycles 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, job_runtime, machine, table  # noqa: E402

from nobarriers.datasets import load_dataset  # noqa: E402
from nobarriers.engine.autoneb import run_autoneb  # noqa: E402
from nobarriers.engine.model_energy import ModelEnergy  # noqa: E402
from nobarriers.engine.neb import NEBStep  # noqa: E402
from nobarriers.engine.train import train_minimum  # noqa: E402
from nobarriers.formats.minimum import load_minimum  # noqa: E402
from nobarriers.nn.path_geometry import initial_path  # noqa: E402
from nobarriers.settings.autoneb_config import AutoNEBConfig, Cycle, NEBSettings  # noqa: E402
from nobarriers.settings.recipes import recipe_for  # noqa: E402

DEMO_SCHEDULE = [Cycle(150, 0.1)] * 2 + [Cycle(150, 0.01)] * 2 + [Cycle(150, 0.001)]


def minima(arch, data, tmp):
    recipe = recipe_for(arch, "digits")
    points = []
    for seed in (0, 1):
        out = Path(tmp) / f"{seed}.safetensors"
        train_minimum(arch, data, recipe, seed, out, Path(tmp) / f"{seed}.ckpt")
        m = load_minimum(out)
        points.append(m.build(data.num_classes, data.input_shape))
    return points


class TimedEval:
    """``evaluate_fn`` for run_autoneb that records the wall time of each cycle's evaluation."""

    def __init__(self, energy, subset, seed=0):
        self.energy, self.subset, self.seed = energy, subset, seed
        self.spent = 0.0

    def __call__(self, points):
        t0 = time.perf_counter()
        out = self.energy.evaluation_losses(points, self.subset, self.seed)
        self.spent += time.perf_counter() - t0
        return out


def run(energy, a, b, config, label):
    timed = TimedEval(energy, config.eval_subset)
    per_cycle = []
    last = [0.0]

    def on_cycle_end(rec):
        per_cycle.append((rec, timed.spent - last[0]))
        last[0] = timed.spent

    t0 = time.perf_counter()
    res = run_autoneb(energy, a, b, config, evaluate_fn=timed, on_cycle_end=on_cycle_end)
    wall = time.perf_counter() - t0
    rows = []
    for rec, ev in per_cycle:
        rows.append(
            {
                "run": label,
                "cycle": rec.cycle,
                "steps": rec.steps,
                "pivots": rec.n_pivots,
                "eval points": len(rec.t),
                "cycle s": rec.wall_s,
                "eval+insert s": ev,
                "eval share": ev / rec.wall_s,
                "ms/step": 1e3 * (rec.wall_s - ev) / rec.steps,
                "saddle": rec.saddle_loss,
            }
        )
    return res, wall, rows


def step_vs_floor(energy, model, a, b, n_pivots, rounds, steps_per_round):
    neb = NEBStep(
        energy,
        initial_path(a, b, n_pivots),
        np.full(n_pivots + 1, 1 / (n_pivots + 1)),
        lr=0.01,
        settings=NEBSettings(optimizer_kwargs={"momentum": 0.9}, weight_decay=1e-4),
    )
    gen = torch.Generator().manual_seed(0)
    xb, yb = energy.sample_batch(torch.Generator().manual_seed(1))
    model.train()

    def steps():
        for _ in range(steps_per_round):
            neb.step(gen)

    def floor():
        for _ in range(steps_per_round):
            for _ in range(n_pivots):
                model.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb), yb).backward()

    t = interleaved({"step": steps, "floor": floor}, rounds, warmup=1)
    return t["step"] / steps_per_round, t["floor"] / steps_per_round


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", default="mlp-32")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--pivots", type=int, default=11)
    ap.add_argument("--paper-cycles", type=int, default=2, help="1000-step cycles to time")
    ap.add_argument("--rounds", type=int, default=21, help="interleaved rounds, step vs floor")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mode", default="auto", choices=["auto", "vmap", "loop"])
    args = ap.parse_args(argv)
    job_runtime(args.threads, "cpu")
    print(f"# AutoNEB benchmark ({args.arch}, digits)\nmachine: {machine()}\n")
    data = load_dataset("digits", None)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        m_a, m_b = minima(args.arch, data, tmp)
        print(f"two minima trained in {time.perf_counter() - t0:.1f} s")

    def energy():
        return ModelEnergy(m_a, data.x_train, data.y_train, args.batch, mode=args.mode)

    e = energy()
    a, b = e.point_of(m_a), e.point_of(m_b)
    demo = AutoNEBConfig(schedule=DEMO_SCHEDULE, eval_subset=None)
    res, wall, rows_demo = run(e, a, b, demo, "demo schedule")
    print(f"\n## time to solution (fixed schedule {demo.total_steps} steps, batch {args.batch})")
    print(
        f"wall {wall:.1f} s, saddle loss {res.saddle_loss:.4f}, "
        f"{res.pivots.shape[0] - 2} pivots, energy mode {e.resolved_mode}\n"
    )
    print(table(rows_demo))

    paper = AutoNEBConfig(
        schedule=[Cycle(1000, 0.1)] * args.paper_cycles,
        initial_pivots=args.pivots,
        eval_subset=2048,
    )
    e2 = energy()
    _, wall2, rows_paper = run(e2, a, b, paper, "paper shape")
    shares = [r["eval share"] for r in rows_paper]
    print(f"\n## paper schedule shape: {args.paper_cycles} x 1000 steps from {args.pivots} pivots")
    print(table(rows_paper))
    print(f"dense eval + insertion share of a cycle: median {statistics.median(shares):.1%}")

    step, floor = step_vs_floor(energy(), m_a, a, b, args.pivots, args.rounds, 10)
    print(f"\n## whole AutoNEB step vs floor ({args.pivots} pivots, batch {args.batch})")
    print(
        table(
            [
                {
                    "step ms": 1e3 * step,
                    "floor ms (sum of pivots' fwd+bwd)": 1e3 * floor,
                    "step/floor": step / floor,
                    "goal": "<= 1.5",
                }
            ]
        )
    )
    return {
        "wall_s": wall,
        "saddle": res.saddle_loss,
        "eval_share": statistics.median(shares),
        "step_over_floor": step / floor,
    }


if __name__ == "__main__":
    main()
