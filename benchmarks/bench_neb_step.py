"""NEB step cost: loop vs vmap vs auto-chosen mode, against the floor of N plain training steps.

For each network and number of interior pivots N, one full :class:`~nobarriers.engine.neb.NEBStep`
step (redistribution, losses and gradients of all pivots on one common batch, tangents, projection,
SGD update) is timed in each energy mode, interleaved with the floor: N x one plain training step
(forward + backward + SGD step of the ``nn.Module``) on the same batch. Medians of ``--repeats``
interleaved rounds. ``auto`` is timed with the mode its rule picks (the batched kernel for MLPs,
the loop otherwise): the check that the rule picks the faster mode.
``once`` is the step with ``AutoNEBConfig(endpoint_losses="once")`` (fixed endpoint losses, no
endpoint forward passes), in the loop for conv nets and vmap for MLPs.

    .venv/bin/python benchmarks/bench_neb_step.py   # digits nets all N, big nets short
    .venv/bin/python benchmarks/bench_neb_step.py --nets resnet-20 --n 8 16 --repeats 5

Networks: ``mlp-32`` (digits 64-32-10), ``mlp-100`` (64-100-10), ``digits-cnn`` (cnn-12 on 8x8
digits), ``cnn-12`` and ``resnet-20`` on CIFAR-shaped random tensors (3x32x32, 10 classes).
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
from _common import interleaved, job_runtime, machine, table  # noqa: E402

from nobarriers.engine.model_energy import ModelEnergy  # noqa: E402
from nobarriers.engine.neb import NEBStep  # noqa: E402
from nobarriers.models import build_model  # noqa: E402
from nobarriers.nn.path_geometry import initial_path  # noqa: E402
from nobarriers.settings.autoneb_config import NEBSettings  # noqa: E402

NETS = {  # name: (arch, input shape, samples, default batch)
    "mlp-32": ("mlp-32", (1, 8, 8), 1437, 256),
    "mlp-100": ("mlp-100", (1, 8, 8), 1437, 256),
    "digits-cnn": ("cnn-12", (1, 8, 8), 1437, 256),
    "cnn-12": ("cnn-12", (3, 32, 32), 2048, 128),
    "resnet-20": ("resnet-20", (3, 32, 32), 2048, 128),
}
BIG = ("cnn-12", "resnet-20")
CONV = ("digits-cnn", "cnn-12", "resnet-20")
CONV_MODE = "loop"  # the mode "once" is timed in for conv nets (vmap for the MLPs)


def make(net: str, batch: int | None, device):
    arch, shape, n, default_batch = NETS[net]
    torch.manual_seed(0)
    model = build_model(arch, 10, shape).to(device)
    x = torch.randn(n, *shape, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    return model, x, y, batch or default_batch


def neb_for(energy, model, n_pivots, endpoints_once=False):
    start = energy.point_of(model)
    end = start + 0.05 * torch.randn_like(start)
    path = initial_path(start, end, n_pivots)
    ends = None
    if endpoints_once:  # AutoNEBConfig(endpoint_losses="once")
        ends = energy.mean_batch_losses(path[[0, -1]], 4, torch.Generator().manual_seed(2))
    return NEBStep(
        energy,
        path,
        np.full(n_pivots + 1, 1.0 / (n_pivots + 1)),
        lr=0.01,
        settings=NEBSettings(optimizer_kwargs={"momentum": 0.9}, weight_decay=1e-4),
        endpoint_losses=ends,
    )


def floor_fn(model, x, y, n_pivots):
    """N x one plain training step (forward, backward, SGD step) on batch (x, y)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    model.train()

    def run():
        for _ in range(n_pivots):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

    return run


def bench(net: str, ns: list[int], repeats: int, batch: int | None, device) -> list[dict]:
    model, x, y, bs = make(net, batch, device)
    rows = []
    for n in ns:
        energies = {m: ModelEnergy(model, x, y, bs, mode=m) for m in ("loop", "vmap", "auto")}
        nebs = {m: neb_for(e, model, n) for m, e in energies.items()}
        nebs["once"] = neb_for(energies[CONV_MODE if net in CONV else "vmap"], model, n, True)
        gens = {m: torch.Generator().manual_seed(0) for m in nebs}
        # auto: the first step includes the rule's one trial evaluation
        t0 = time.perf_counter()
        nebs["auto"].step(gens["auto"])
        first_auto = time.perf_counter() - t0
        xb, yb = energies["loop"].sample_batch(torch.Generator().manual_seed(1))
        fns = {"floor": floor_fn(model, xb, yb, n)}
        for m in ("loop", "vmap", "auto", "once"):
            fns[m] = lambda neb=nebs[m], g=gens[m]: neb.step(g)
        try:
            t = interleaved(fns, repeats, warmup=1, device=device)
        except RuntimeError as exc:  # e.g. out of memory for vmap on a small GPU
            print(f"{net} N={n}: {exc}", file=sys.stderr)
            continue
        rows.append(
            {
                "net": net,
                "N": n,
                "batch": bs,
                "floor ms": 1e3 * t["floor"],
                "loop ms": 1e3 * t["loop"],
                "vmap ms": 1e3 * t["vmap"],
                "auto ms": 1e3 * t["auto"],
                "auto picks": energies["auto"].resolved_mode,
                "loop/floor": t["loop"] / t["floor"],
                "vmap/floor": t["vmap"] / t["floor"],
                "auto/floor": t["auto"] / t["floor"],
                "once/floor": t["once"] / t["floor"],
                "loop/vmap": t["loop"] / t["vmap"],
                "calib s": first_auto,
                "calib/1000 steps": first_auto / (1000 * t["auto"]),
            }
        )
        print(table(rows[-1:]), flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--n", nargs="+", type=int, default=[4, 8, 16, 32], help="interior pivots")
    ap.add_argument("--repeats", type=int, default=15, help="interleaved rounds (small nets)")
    ap.add_argument("--big-n", nargs="+", type=int, default=[4, 8], help="N for cnn-12/resnet-20")
    ap.add_argument("--big-repeats", type=int, default=3, help="rounds for cnn-12/resnet-20")
    ap.add_argument("--batch", type=int, default=None, help="override the batch size")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    job_runtime(args.threads, args.device)
    print(f"# NEB step benchmark\nmachine: {machine()}\n")
    rows = []
    for net in args.nets:
        big = net in BIG and args.device == "cpu"
        ns = args.big_n if big else args.n
        reps = args.big_repeats if big else args.repeats
        rows += bench(net, ns, reps, args.batch, args.device)
    cols = [
        "net", "N", "batch", "floor ms", "loop ms", "vmap ms", "auto picks",
        "loop/floor", "vmap/floor", "auto/floor", "once/floor", "loop/vmap", "calib/1000 steps",
    ]  # fmt: skip
    print("\n## summary (medians; ratios within one run)\n")
    print(table(rows, cols))
    return rows


if __name__ == "__main__":
    main()
