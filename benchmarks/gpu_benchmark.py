"""GPU benchmark (one command, < 8 minutes on one H100): ResNet-20 on CIFAR-shaped tensors.

1. NEB step (a full :class:`~nobarriers.engine.neb.NEBStep`) loop vs vmap at N = 8, 16, 32 interior
   pivots, batch 512 (the paper's), each with channels_last and bf16 autocast off/on, against the
   floor N x one plain training step (fp32); ``auto``'s pick is reported for the fp32 setting; the
   fp32 loop also with ``endpoint_losses="once"`` (no endpoint forward passes).
2. Training throughput (images/s) with tensor-resident data and batched on-device augmentation,
   batch 128 (the paper's recipe), fp32 / channels_last / bf16 / both.

Prints markdown tables; stops starting new measurements after ``--budget`` seconds (default 420).

    .venv/bin/python benchmarks/gpu_benchmark.py            # needs a CUDA device
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, machine, table  # noqa: E402

from nobarriers.engine.model_energy import ModelEnergy  # noqa: E402
from nobarriers.engine.neb import NEBStep  # noqa: E402
from nobarriers.models import build_model  # noqa: E402
from nobarriers.nn.batches import augment_batch  # noqa: E402
from nobarriers.nn.path_geometry import initial_path  # noqa: E402
from nobarriers.settings.autoneb_config import NEBSettings  # noqa: E402

OPTIONS = [(False, False), (True, False), (False, True), (True, True)]  # channels_last, bf16


def label(cl, bf):
    return "+".join([s for s, on in (("channels_last", cl), ("bf16", bf)) if on]) or "fp32"


def neb_rows(args, device, deadline):
    torch.manual_seed(0)
    model = build_model("resnet-20", 10, (3, 32, 32)).to(device)
    x = torch.randn(4096, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (4096,), device=device)
    rows = []
    for n in args.n:
        xb, yb = x[: args.batch], y[: args.batch]
        opt = torch.optim.SGD(model.parameters(), lr=0.0)

        def floor(n=n, xb=xb, yb=yb, opt=opt):
            for _ in range(n):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb), yb).backward()
                opt.step()

        t_floor = interleaved({"floor": floor}, args.repeats, warmup=2, device=device)["floor"]
        auto = ModelEnergy(model, x, y, args.batch, mode="auto")
        start = auto.point_of(model)
        path = initial_path(start, start + 0.05 * torch.randn_like(start), n)
        weights = np.full(n + 1, 1 / (n + 1))
        t0 = time.perf_counter()
        NEBStep(auto, path, weights, lr=0.01).step(torch.Generator().manual_seed(0))
        calib = time.perf_counter() - t0
        runs = [(cl, bf, mode, False) for cl, bf in OPTIONS for mode in ("loop", "vmap")]
        runs.insert(1, (False, False, "loop", True))  # endpoint_losses="once"
        for cl, bf, mode, once in runs:
            if time.perf_counter() > deadline:
                print("time budget reached; skipping the rest", file=sys.stderr)
                return rows
            row = {"N": n, "options": label(cl, bf) + (", endpoints once" if once else "")}
            row["mode"] = mode
            try:
                e = ModelEnergy(
                    model, x, y, args.batch, mode=mode, channels_last=cl, autocast_bf16=bf
                )
                ends = None
                if once:
                    ends = e.mean_batch_losses(path[[0, -1]], 4, torch.Generator())
                neb = NEBStep(
                    e,
                    path,
                    weights,
                    lr=0.01,
                    settings=NEBSettings(weight_decay=0.0),
                    endpoint_losses=ends,
                )
                g = torch.Generator().manual_seed(0)
                t = interleaved({"s": lambda neb=neb, g=g: neb.step(g)}, args.repeats, 2, device)[
                    "s"
                ]
                row |= {"step ms": 1e3 * t, "step/floor": t / t_floor}
            except (RuntimeError, torch.OutOfMemoryError) as exc:
                row |= {"step ms": "n/a", "step/floor": str(exc).splitlines()[0][:40]}
                torch.cuda.empty_cache()
            row |= {"floor ms (fp32)": 1e3 * t_floor}
            if (cl, bf, mode, once) == (False, False, "loop", False):
                row |= {"auto picks": auto.resolved_mode, "calib s": calib}
            rows.append(row)
            print(table(rows[-1:]), flush=True)
    return rows


def train_rows(args, device, deadline):
    rows = []
    x = torch.randn(50_000, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (50_000,), device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    for cl, bf in OPTIONS:
        if time.perf_counter() > deadline:
            break
        torch.manual_seed(0)
        model = build_model("resnet-20", 10, (3, 32, 32)).to(device)
        if cl:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        ctx = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf else contextlib.nullcontext
        )

        def steps(model=model, opt=opt, cl=cl, ctx=ctx):
            for _ in range(args.train_steps):
                idx = torch.randint(0, x.shape[0], (128,), device=device, generator=gen)
                xb = augment_batch(x.index_select(0, idx), "crop_flip", gen)
                if cl:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with ctx():
                    out = model(xb)
                loss = F.cross_entropy(out.float(), y.index_select(0, idx))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        t = interleaved({"t": steps}, 3, warmup=1, device=device)["t"]
        rows.append(
            {
                "options": label(cl, bf),
                "images/s": 128 * args.train_steps / t,
                "epoch (50k) s": 50_000 / (128 * args.train_steps / t),
            }
        )
        print(table(rows[-1:]), flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", nargs="+", type=int, default=[8, 16, 32])
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--train-steps", type=int, default=100)
    ap.add_argument("--budget", type=float, default=420.0, help="seconds before skipping the rest")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("gpu_benchmark.py needs a CUDA device (none visible)")
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    deadline = time.perf_counter() + args.budget
    print(f"# GPU benchmark (ResNet-20, CIFAR-shaped)\nmachine: {machine()}\n")
    train = train_rows(args, device, deadline - 0.6 * args.budget)
    neb = neb_rows(args, device, deadline)
    print(f"\n## NEB step (batch {args.batch}), medians of {args.repeats} steps\n")
    print(table(neb))
    print("\n## training throughput (batch 128, tensor-resident data, on-device augmentation)\n")
    print(table(train))


if __name__ == "__main__":
    main()
