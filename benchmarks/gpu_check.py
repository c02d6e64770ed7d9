"""GPU check, the engine part (``benchmarks/gpu_check.sh`` runs it after the workflows):

1. **CPU vs GPU agreement.** Two BatchNorm CNN-4 minima on digits (trained on the CPU, 200 SGD
   steps each, the same for both devices), one short AutoNEB run (2 cycles, common batches drawn
   with the same seed) on the CPU and on the GPU. Reported: the saddle losses and their relative
   difference (tolerance ``--rtol-autoneb``, default 2e-2: fp32 reductions differ between
   devices, and 200 NEB steps amplify the rounding), the largest distance between the two final
   paths relative to the endpoints' distance, and the exact-BN saddle curve of the *same* pivots
   evaluated on both devices (tolerance ``--rtol-eval``, default 1e-4: no trajectory, only
   rounding).
2. **One paper-size AutoNEB cycle.** ResNet-20, batch 512 (the paper's), the NEB step of the
   workflow's default settings timed at N = 2, 4, 8, 16 interior pivots; the paper's 16,000 steps
   extrapolated for a path whose pivots grow from 2 to 8 and for one that reaches the cap of 29.

    .venv/bin/python benchmarks/gpu_check.py [--device cuda] [--steps 20]
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
from _common import machine, sync, table  # noqa: E402

from nobarriers.datasets import load_dataset  # noqa: E402
from nobarriers.engine.autoneb import run_autoneb  # noqa: E402
from nobarriers.engine.evaluate import saddle_curve  # noqa: E402
from nobarriers.engine.model_energy import ModelEnergy  # noqa: E402
from nobarriers.engine.neb import NEBStep  # noqa: E402
from nobarriers.models import build_model  # noqa: E402
from nobarriers.nn.path_geometry import initial_path  # noqa: E402
from nobarriers.nn.points import point_of, recompute_bn_statistics  # noqa: E402
from nobarriers.settings.autoneb_config import AutoNEBConfig, Cycle, NEBSettings  # noqa: E402

PAPER_STEPS = 16_000


def trained(arch: str, data, seed: int, steps: int) -> torch.nn.Module:
    """A quick minimum on the CPU (deterministic), exact BN statistics."""
    torch.manual_seed(seed)
    model = build_model(arch, data.num_classes, data.input_shape)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, data.x_train.shape[0], (128,), generator=g)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
        opt.step()
    recompute_bn_statistics(model, data.x_train, 512)
    return model.eval()


def agreement(devices=("cpu", "cuda"), arch="cnn-4", data_dir="data", train_steps=200,
              neb_steps=100) -> dict:  # fmt: skip
    """The same AutoNEB run and the same evaluation on two devices."""
    data = load_dataset("digits", data_dir)
    a, b = trained(arch, data, 1, train_steps), trained(arch, data, 2, train_steps)
    config = AutoNEBConfig(
        schedule=[Cycle(neb_steps, 0.05), Cycle(neb_steps, 0.01)], eval_subset=None, n_between=3
    )
    runs = {}
    for device in devices:
        model = build_model(arch, data.num_classes, data.input_shape).to(device)
        model.load_state_dict(a.state_dict())
        x, y = data.x_train.to(device), data.y_train.to(device)
        energy = ModelEnergy(model, x, y, batch_size=256, mode="loop", device=device)
        start = time.perf_counter()
        result = run_autoneb(energy, point_of(a).to(device), point_of(b).to(device), config, seed=7)
        sync(device)
        runs[device] = (result, time.perf_counter() - start)
    (ra, ta), (rb, tb) = runs[devices[0]], runs[devices[1]]
    span = float((point_of(a) - point_of(b)).norm())
    pa, pb = torch.as_tensor(ra.pivots).cpu(), torch.as_tensor(rb.pivots).cpu()
    path_diff = float((pa - pb).norm(dim=1).max()) / span if pa.shape == pb.shape else float("nan")
    curves = []
    for device in devices:  # the same pivots (the first device's path) on both devices
        d = load_dataset("digits", data_dir, device=device)
        model = build_model(arch, data.num_classes, data.input_shape).to(device)
        curves.append(saddle_curve(model, pa.to(device), d, 3)["train_loss"])
    return {
        "saddle " + devices[0]: float(ra.saddle_loss),
        "saddle " + devices[1]: float(rb.saddle_loss),
        "saddle rel. diff": abs(ra.saddle_loss - rb.saddle_loss) / abs(ra.saddle_loss),
        "pivots": f"{pa.shape[0] - 2} / {pb.shape[0] - 2}",
        "max path diff / |a-b|": path_diff,
        "eval curve max rel. diff": float(np.max(np.abs(curves[0] - curves[1]) / curves[0])),
        f"AutoNEB s {devices[0]} / {devices[1]}": f"{ta:.1f} / {tb:.1f}",
    }


def cycle_estimate(device="cuda", arch="resnet-20", batch=512, pivots=(2, 4, 8, 16), steps=20):
    """Seconds per NEB step at each N, and the paper's 16,000 steps extrapolated."""
    torch.manual_seed(0)
    model = build_model(arch, 10, (3, 32, 32)).to(device)
    x = torch.randn(max(4 * batch, 1024), 3, 32, 32, device=device)
    y = torch.randint(0, 10, (x.shape[0],), device=device)
    energy = ModelEnergy(model, x, y, batch_size=batch, mode="loop", device=device)
    a = point_of(model)
    per_step = {}
    for n in pivots:
        path = initial_path(a, a + 0.01 * torch.randn_like(a), n)
        neb = NEBStep(energy, path, np.full(n + 1, 1.0 / (n + 1)), 0.01, NEBSettings())
        gen = torch.Generator(device=device).manual_seed(0)
        neb.step(gen)  # warm-up (cuDNN autotuning)
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            neb.step(gen)
        sync(device)
        per_step[n] = (time.perf_counter() - start) / steps
    rows = [{"N": n, "step s": per_step[n]} for n in sorted(per_step)]
    return rows, path_hours(per_step)


def path_hours(per_step: dict) -> list[dict]:
    """Hours of one path under the paper's 14-cycle schedule, from NEB step seconds measured at
    a few pivot counts: a straight-line fit in N (seconds = slope * N + offset) evaluated as the
    pivots grow linearly from 2 to 8 (a typical path) or to 29 (the cap)."""
    ns = np.array(sorted(per_step), float)
    fit = np.polyfit(ns, [per_step[int(n)] for n in ns], 1)
    schedule = [1000] * 4 + [2000] * 2 + [1000] * 8  # the paper's 14 cycles
    estimates = []
    for label, final in (("pivots 2 -> 8", 8), ("pivots 2 -> 29 (the cap)", 29)):
        growth = np.linspace(2, final, len(schedule))
        total = sum(s * np.polyval(fit, p) for s, p in zip(schedule, growth, strict=True))
        estimates.append({"path": label, "16,000 steps h": total / 3600})
    return estimates


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=20, help="timed NEB steps per N")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--rtol-autoneb", type=float, default=2e-2)
    ap.add_argument("--rtol-eval", type=float, default=1e-4)
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check.py: no CUDA device visible")
    torch.backends.cudnn.benchmark = True
    print(f"# GPU check, engine\nmachine: {machine()}\n")
    agree = agreement(("cpu", args.device), data_dir=args.data_dir)
    print("## CPU vs GPU: one AutoNEB run, one evaluation (digits CNN-4 with BN)\n")
    print(table([agree]))
    ok = (
        agree["saddle rel. diff"] <= args.rtol_autoneb
        and agree["eval curve max rel. diff"] <= args.rtol_eval
    )
    print(f"\nagreement within rtol {args.rtol_autoneb:g} (AutoNEB) / {args.rtol_eval:g} "
          f"(evaluation): {'yes' if ok else 'NO'}\n")  # fmt: skip
    rows, estimates = cycle_estimate(args.device, steps=args.steps)
    print("## ResNet-20 NEB step, batch 512 (paper), default settings\n")
    print(table(rows))
    print()
    print(table(estimates))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
