"""What curvature at a point costs (``engine.hessian``): ResNet-20 on CIFAR-shaped random data.

1. **One Hessian-vector product against one gradient**, at batch 32 and 128, in float32 and in
   float64 (the spectrum's default, so that Lanczos sees a symmetric operator): the product of
   ``network_products`` (a forward and a double backward pass, BatchNorm in eval mode) and a
   plain forward + backward of the same eval-mode network.
2. **One spectrum** (lambda_max and the 3 lowest eigenvalues, ``network_spectrum``) at the
   network's initial point on a small subset: Hessian-vector products used, wall time, whether it
   converged. The number of products depends on the spectrum (how clustered its low end is), not
   on the subset; the time per product grows linearly with the subset.

    .venv/bin/python benchmarks/bench_hessian.py [--batches 32 128] [--subset 16]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, job_runtime, machine, table  # noqa: E402

from nobarriers.engine.hessian import network_products, network_spectrum  # noqa: E402
from nobarriers.models import build_model  # noqa: E402
from nobarriers.nn.points import point_of  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def product_rows(model, x, y, batches, dtypes, repeats):
    """Median seconds of one product and one gradient per batch size and dtype."""
    point = point_of(model)
    v = np.random.default_rng(0).standard_normal(point.numel())
    rows = []
    for name in dtypes:
        dtype = DTYPES[name]
        net = copy.deepcopy(model).to(dtype).eval()
        for b in batches:
            xb, yb = x[:b].to(dtype), y[:b]
            hvp, _ = network_products(model, point, x, y, subset=b, batch_size=b, dtype=dtype)

            def gradient(net=net, xb=xb, yb=yb):
                net.zero_grad(set_to_none=True)
                F.cross_entropy(net(xb), yb).backward()

            times = interleaved({"gradient": gradient, "product": lambda hvp=hvp: hvp(v)}, repeats)
            rows.append(
                {
                    "dtype": name,
                    "batch": b,
                    "gradient s": times["gradient"],
                    "Hessian-vector product s": times["product"],
                    "product / gradient": times["product"] / times["gradient"],
                }
            )
            print(table(rows[-1:]), flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", default="resnet-20")
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    ap.add_argument("--repeats", type=int, default=2, help="timed calls of each (after a warm-up)")
    ap.add_argument("--subset", type=int, default=16, help="samples of the spectrum's loss")
    ap.add_argument("--spectrum-dtype", choices=list(DTYPES), default="float64")
    ap.add_argument("--maxiter", type=int, default=50, help="ARPACK restarts per solve, at most")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    job_runtime(args.threads, "cpu")
    print(f"# curvature at a point: cost ({args.arch}, CIFAR-shaped)\nmachine: {machine()}\n")
    generator = torch.Generator().manual_seed(0)
    n = max(*args.batches, args.subset)
    x = torch.randn(n, 3, 32, 32, generator=generator)
    y = torch.randint(0, 10, (n,), generator=generator)
    torch.manual_seed(0)
    model = build_model(args.arch, 10, (3, 32, 32))
    print(f"{point_of(model).numel():,} parameters\n")
    print("## 1. one Hessian-vector product vs one gradient (median of round-robin calls)\n")
    products = product_rows(model, x, y, args.batches, args.dtypes, args.repeats)
    print("\n" + table(products))
    result = network_spectrum(
        model,
        point_of(model),
        x,
        y,
        subset=args.subset,
        batch_size=args.subset,
        weight_decay=1e-4,
        dtype=DTYPES[args.spectrum_dtype],
        maxiter=args.maxiter,
    )
    spectrum = {
        "samples": args.subset,
        "dtype": args.spectrum_dtype,
        "products": result.n_products,
        "wall s": result.seconds,
        "s / product": result.seconds / max(result.n_products, 1),
        "converged": result.converged,
        "lambda_max": result.lambda_max,
        "lowest": ", ".join(f"{v:.4g}" for v in result.lowest) or "-",
        "index": result.n_negative,
        "max residual": float(result.residuals.max()) if result.residuals.size else None,
    }
    print("\n## 2. one spectrum (lambda_max + 3 lowest) at the initial point\n")
    print(table([spectrum]))
    print(f"\n{result.message}")
    return products, spectrum


if __name__ == "__main__":
    main()
