"""What measuring like the paper costs, at the paper's sizes (CIFAR-shaped tensors, 1 thread).

1. **The Epoch column's learning curve with exact BatchNorm statistics.** Every epoch the curve
   entry is measured like Min and Sadd: statistics recomputed on the un-augmented training set,
   then the training and test sets in eval mode (``engine.train.exact_bn_metrics``), instead of
   evaluating with the running statistics. Reported: one training epoch, the evaluation either
   way, and the extra cost as a fraction of an epoch.
2. **The MST weights on the full training set.** At the end of every AutoNEB job the final path is
   evaluated at its dense positions (pivots and 9 points per gap), each point with exact BN, on
   the full training set (``engine.evaluate.saddle_curve``). Reported: one point's cost, one
   NEB step's cost (N pivots, batch 512), and the fraction of a whole path job (the paper's
   14 cycles / 16,000 steps) for a path that ends with few or with many pivots.

Times are measured on ``--samples`` training images and scaled linearly to CIFAR's 50,000 / 10,000
(every cost here is a pass over the data). Ratios are what carries to a GPU.

    .venv/bin/python benchmarks/bench_measurement.py [--arch resnet-20] [--samples 2048]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import job_runtime, machine, table  # noqa: E402

from nobarriers.engine.evaluate import saddle_curve  # noqa: E402
from nobarriers.engine.model_energy import ModelEnergy  # noqa: E402
from nobarriers.engine.neb import NEBStep  # noqa: E402
from nobarriers.engine.train import exact_bn_metrics  # noqa: E402
from nobarriers.models import build_model  # noqa: E402
from nobarriers.nn.batches import augment_batch  # noqa: E402
from nobarriers.nn.path_geometry import dense_positions, initial_path  # noqa: E402
from nobarriers.nn.points import evaluate_model, point_of  # noqa: E402
from nobarriers.settings.autoneb_config import NEBSettings  # noqa: E402

CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000
PAPER_STEPS = 16_000


def timed(fn, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", default="resnet-20")
    ap.add_argument("--samples", type=int, default=2048, help="training images measured")
    ap.add_argument("--pivots", type=int, default=4, help="interior pivots of the timed step")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    job_runtime(args.threads, "cpu")
    print(f"# measuring like the paper: cost ({args.arch}, CIFAR-shaped)\nmachine: {machine()}\n")
    g = torch.Generator().manual_seed(0)
    n = args.samples
    n_test = max(2, n * CIFAR_TEST // CIFAR_TRAIN)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    x_test, y_test = x[:n_test].clone(), y[:n_test].clone()
    torch.manual_seed(0)
    model = build_model(args.arch, 10, (3, 32, 32))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scale = CIFAR_TRAIN / n

    def epoch():
        model.train()
        order = torch.randperm(n, generator=g)
        for s in range(0, n, 128):
            idx = order[s : s + 128]
            xb = augment_batch(x.index_select(0, idx), "crop_flip", g)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), y.index_select(0, idx)).backward()
            opt.step()

    def running():
        evaluate_model(model, x, y, 1000)
        evaluate_model(model, x_test, y_test, 1000)

    def exact():
        exact_bn_metrics(model, (x, y, x_test, y_test), 1000, restore=True)

    t_epoch, t_running, t_exact = timed(epoch), timed(running, 2), timed(exact, 2)
    curve = [
        {
            "train epoch s (50k)": t_epoch * scale,
            "curve, running BN s": t_running * scale,
            "curve, exact BN s": t_exact * scale,
            "extra per epoch s": (t_exact - t_running) * scale,
            "extra / epoch": (t_exact - t_running) / (t_epoch + t_running),
        }
    ]
    print("## 1. the Epoch column: a learning-curve entry with exact BatchNorm statistics\n")
    print(table(curve))

    eval_model = build_model(args.arch, 10, (3, 32, 32))
    point = point_of(model)

    def one_point():
        saddle_curve(eval_model, torch.stack([point, point]), (x, y, None, None), 0, None, 1000)

    t_point = timed(one_point, 2) / 2 * scale  # two positions evaluated: per point, 50k images
    energy = ModelEnergy(model, x, y, batch_size=512, mode="loop")
    path = initial_path(point, point + 0.01 * torch.randn_like(point), args.pivots)
    neb = NEBStep(energy, path, np.full(args.pivots + 1, 1.0 / (args.pivots + 1)), 0.01,
                  NEBSettings())  # fmt: skip
    neb.step(torch.Generator().manual_seed(1))  # warm-up
    t_step = timed(lambda: neb.step(torch.Generator().manual_seed(2)), 2)
    per_pivot = t_step / (args.pivots + 2 / 3)  # endpoints forward-only: ~1/3 of a pivot each
    rows = []
    for label, final in (("few insertions", 7), ("the cap", 29)):
        growth = np.linspace(3, final, 14)  # pivots per cycle, 3 at the start
        steps = [1000] * 4 + [2000] * 2 + [1000] * 8
        path_s = sum(s * per_pivot * (p + 2 / 3) for s, p in zip(steps, growth, strict=True))
        points = len(dense_positions(final + 2, 9))
        weight_s = points * t_point
        rows.append(
            {
                "path": f"{label}: {final} pivots at the end",
                "AutoNEB s": path_s,
                "dense points": points,
                "weights s": weight_s,
                "weights / path job": weight_s / (path_s + weight_s),
            }
        )
    print(f"\n## 2. MST weights on the full training set (one point {t_point:.1f} s on 50k "
          f"images; one NEB step {t_step:.2f} s at N = {args.pivots}, batch 512)\n")  # fmt: skip
    print(table(rows))
    return curve, rows


if __name__ == "__main__":
    main()
