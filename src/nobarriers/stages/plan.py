"""``nobarriers plan``: what a configuration will cost before it is submitted.

For every row: the jobs per rule, the AutoNEB path jobs (the first round, at most the budget),
the sequential rounds, and the floating-point work of each kind of job; in total the GPU hours
and the wall time at a number of concurrent GPUs. What is counted and what is assumed:

* **Counted** (:mod:`nobarriers.nn.flops`): each network's multiply-accumulates per sample,
  from its layers; a training step is three forward passes' work.
* **Measured** (``benchmarks/bench_neb_step.py``, README "Performance"): a NEB step of N
  pivots costs :data:`NEB_STEP_RATIO` times N training steps of its batch.
* **Assumed**, each a setting of the plan: the pivots a path carries on average (the paper's
  schedule inserts up to 2 per cycle from 3; the demo's paths end with about 7), the paper's
  early stop never ending a row before its budget (the worst case), and the throughput a GPU
  sustains on these small-batch fp32 networks (:data:`ASSUMED_TFLOPS`), to be replaced by a
  measured one (``--tflops``, or ``benchmarks/gpu_check.sh`` on the cluster's GPU).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from ..core.errors import ConfigError

#: a NEB step of N pivots / N training steps of the same batch, measured on a CPU for
#: ResNet-20 and CNN-12 at N = 4 and 8 with endpoint_losses: per_step (README, Performance)
NEB_STEP_RATIO = 1.2
#: effective fp32 throughput of one GPU on these networks at their batch sizes, TFLOP/s:
#: ASSUMED, not measured (an A100's fp32 peak is 19.5; small CIFAR networks at batch 64-512
#: reach a few percent of it). Override with --tflops once gpu_check.sh has measured one.
ASSUMED_TFLOPS = 1.0
#: interior pivots a path carries on average over its cycles (assumed, see the module doc)
ASSUMED_PIVOTS = 7


@dataclass
class RowPlan:
    dataset: str
    arch: str
    jobs: dict[str, tuple[int, int]]  # rule -> (at least, at most)
    rounds: tuple[int, int]  # the first round's share of the star; the fewest rounds in all
    flops: dict[str, float]  # kind of job -> floating-point operations of the row, at most
    notes: list[str] = field(default_factory=list)

    @property
    def total_flops(self) -> float:
        return sum(self.flops.values())


def _dense_points(pivots: int, n_between: int) -> int:
    return (pivots + 1) * n_between + pivots + 2


def row_plan(settings, dataset: str, arch: str, pivots: int = ASSUMED_PIVOTS) -> RowPlan:
    """The jobs and the floating-point work of one row (at most: the whole budget)."""
    import torch

    from ..models import build_model
    from ..nn.flops import FLOPS_PER_MAC, TRAIN_FORWARDS, forward_macs

    row = settings.row(dataset, arch)
    source = settings.dataset_source(dataset)
    if source.sizes is None or source.input_shape is None or source.num_classes is None:
        raise ConfigError(
            f"the size of dataset {dataset!r} is known only once it is prepared (a loader "
            "function); prepare it first, or plan with an .npz file"
        )
    n_train, n_test = source.sizes
    with torch.device("meta"):
        model = build_model(arch, source.num_classes, source.input_shape, spec=row.get("model"))
    forward = forward_macs(model, source.input_shape) * FLOPS_PER_MAC  # per sample
    step = TRAIN_FORWARDS * forward
    n = len(row["seeds"])
    edges = n - 1
    budget = min(row["exploration"]["max_paths"], n * (n - 1) // 2)
    recipe, autoneb, evaluation = row["recipe"], row["autoneb"], row["evaluation"]
    imported = "imported_minima" in row
    sample = row["comparisons"]["sample_pairs"]
    repeats = row["comparisons"]["autoneb_repeats"]
    families = row["curves"]["families"]
    aligned = row["alignment"] != "none"

    # a minimum: its epochs, each followed by the exact-BN learning curve (BN pass, train, test)
    curve_pass = (2 * n_train + n_test) * forward
    train = 0.0 if imported else recipe["epochs"] * (n_train * step + curve_pass)
    # a path: the NEB steps, each cycle's insertion test, the MST weight of the final path
    steps = sum(c["steps"] for c in autoneb["schedule"])
    neb = steps * NEB_STEP_RATIO * pivots * autoneb["batch_size"] * step
    subset = autoneb["eval_subset"] or n_train
    dense = _dense_points(pivots, autoneb["n_between"])
    insertion = len(autoneb["schedule"]) * dense * 2 * subset * forward
    weight_data = row["mst"]["weight_subset"] or n_train
    path = neb + insertion + dense * 2 * weight_data * forward
    # an evaluated edge: the dense path and the straight line, each point BN + train + test
    evaluate = _dense_points(pivots, evaluation["n_between"]) + evaluation["line_points"]
    evaluate *= curve_pass
    slice_ = settings.values["figures"]["slice_resolution"] ** 2 * 2 * n_train * forward
    compared = edges + sample
    curve_epochs = row["curves"]["epochs"] or recipe["epochs"]
    curve = curve_epochs * n_train * step + row["curves"]["n_points"] * curve_pass

    jobs = {
        "train_minimum": (0, 0) if imported else (n, n),
        "import_minimum": (n, n) if imported else (0, 0),
        "autoneb_path": (min(edges, budget) + sample, budget + sample),
        "evaluate_path": (compared, compared),
        "slice_figure": (1, 1),
    }
    if aligned:
        jobs["aligned_path"] = (compared, compared)
    if repeats > 1:
        jobs["repeat_path"] = ((repeats - 1) * edges,) * 2
    if families:
        jobs["curve"] = (len(families) * compared,) * 2
    flops = {
        "train_minimum": jobs["train_minimum"][1] * train,
        "autoneb_path": jobs["autoneb_path"][1] * path,
        "evaluate_path": compared * evaluate,
        "slice_figure": slice_,
        "aligned_path": compared * path if aligned else 0.0,
        "repeat_path": (repeats - 1) * edges * path,
        "curve": len(families) * compared * curve,
    }
    # rounds: the star at once, then bypasses (at most one per MST edge and round)
    per_round = row["exploration"]["pairs_per_round"] or edges
    later = max(budget - edges, 0)
    first = math.ceil(min(edges, budget) / min(per_round, edges))
    rounds = (first, first + math.ceil(later / min(per_round, edges)) if later else first)
    notes = [f"{forward / 1e6:.3g} MFLOP per sample forward ({n_train} training, {n_test} test)"]
    return RowPlan(dataset, arch, jobs, rounds, {k: v for k, v in flops.items() if v}, notes)


@dataclass
class Plan:
    rows: list[RowPlan]
    tflops: float
    gpus: int
    measured_tflops: bool
    rounds: dict[int, int] = field(default_factory=dict)  # minima -> simulated rounds (median)

    def gpu_hours(self, flops: float) -> float:
        return flops / (self.tflops * 1e12) / 3600

    @property
    def total_gpu_hours(self) -> float:
        return sum(self.gpu_hours(r.total_flops) for r in self.rows)

    def wall_hours(self) -> float:
        """At ``gpus`` concurrent GPUs: the work spread over them, but never shorter than the
        longest chain of one row (a minimum, then one path per sequential round, then an
        evaluation and the slice)."""
        chains = []
        for r in self.rows:
            per_minimum = r.flops.get("train_minimum", 0) / max(r.jobs["train_minimum"][1], 1)
            per_path = r.flops.get("autoneb_path", 0) / max(r.jobs["autoneb_path"][1], 1)
            per_eval = r.flops.get("evaluate_path", 0) / max(r.jobs["evaluate_path"][1], 1)
            rounds = max(r.rounds[1], self.rounds.get(r.jobs["evaluate_path"][1] + 1, 0))
            chain = per_minimum + rounds * per_path + per_eval + r.flops.get("slice_figure", 0)
            chains.append(self.gpu_hours(chain))
        return max(self.total_gpu_hours / self.gpus, max(chains, default=0.0))


def make_plan(settings, gpus: int = 1, tflops: float | None = None, pivots: int = ASSUMED_PIVOTS):
    """The plan of every selected row of a validated configuration."""
    if gpus < 1:
        raise ConfigError(f"--gpus {gpus}: at least one GPU")
    if tflops is not None and not tflops > 0:
        raise ConfigError(f"--tflops {tflops:g}: a throughput must be above 0")
    if pivots < 1:
        raise ConfigError(f"--pivots {pivots}: at least one pivot")
    rows = [row_plan(settings, d, a, pivots) for d, a in settings.selected_rows()]
    rounds = {}
    for n in sorted({len(settings.row(*r)["seeds"]) for r in settings.selected_rows()}):
        medians = []
        for model in LANDSCAPES:
            runs = sorted(r for r, _ in simulated_rounds(n, settings.values["exploration"], model))
            medians.append(runs[len(runs) // 2])
        rounds[n] = max(medians)
    return Plan(rows, tflops or ASSUMED_TFLOPS, gpus, tflops is not None, rounds)


def format_plan(plan: Plan) -> str:
    """The plan as plain text: a line per row, the totals, and what is assumed."""
    rules = sorted({rule for r in plan.rows for rule in r.jobs if r.jobs[rule][1]})
    lines = [
        "row                          " + "  ".join(f"{r:>14}" for r in rules)
        + "  rounds (first; fewest)  GPU hours (at most)",
    ]  # fmt: skip
    for r in plan.rows:
        cells = []
        for rule in rules:
            low, high = r.jobs.get(rule, (0, 0))
            cells.append(f"{low if low == high else f'{low}-{high}':>14}")
        rounds = f"{r.rounds[0]}; {r.rounds[1]}"
        name = f"{r.dataset}/{r.arch}"
        lines.append(f"{name:<29}" + "  ".join(cells) + f"  {rounds:>22}  "
                     f"{plan.gpu_hours(r.total_flops):>19.1f}")  # fmt: skip
    totals = {rule: sum(r.jobs.get(rule, (0, 0))[1] for r in plan.rows) for rule in rules}
    by_kind: dict[str, float] = {}
    for r in plan.rows:
        for kind, value in r.flops.items():
            by_kind[kind] = by_kind.get(kind, 0.0) + value
    source = "measured" if plan.measured_tflops else "ASSUMED (override with --tflops)"
    lines += [
        "",
        "jobs at most: " + ", ".join(f"{rule} {n}" for rule, n in totals.items()),
        "GPU hours by kind: " + ", ".join(
            f"{kind} {plan.gpu_hours(v):.1f}" for kind, v in sorted(by_kind.items())),
        f"total: {plan.total_gpu_hours:.1f} GPU hours at {plan.tflops:g} TFLOP/s per GPU "
        f"({source}); wall time at {plan.gpus} GPU(s): {plan.wall_hours():.1f} h (with the "
        f"simulated rounds below: " + ", ".join(
            f"{r} rounds for {n} minima" for n, r in plan.rounds.items()) + ")",
        f"counted: each network's FLOPs per sample from its layers; measured: a NEB step of N "
        f"pivots = {NEB_STEP_RATIO} x N training steps (benchmarks/bench_neb_step.py); assumed: "
        f"{ASSUMED_PIVOTS} pivots per path on average, every row using its whole budget",
    ]  # fmt: skip
    return "\n".join(lines)


#: landscape models of simulated saddles (barrier above the higher endpoint, relative to the
#: minima's loss): nearly flat (the paper's finding), independent barriers, a hierarchy of basins
LANDSCAPES = ("flat", "independent", "hierarchical")


def simulated_saddle(model: str, rng, ends: tuple[float, float], basins: tuple[int, int]) -> float:
    high = max(ends)
    if model == "flat":
        return high * (1 + 0.05 * abs(rng.standard_normal()))
    if model == "independent":
        return high * (1 + rng.exponential(0.5))
    # hierarchical: pairs across basins cross a higher barrier than pairs within one
    return high * (1 + (1.0 if basins[0] != basins[1] else 0.1) * (1 + 0.2 * rng.random()))


def simulated_rounds(n: int, exploration: dict, model: str, trials: int = 20, seed: int = 0):
    """Algorithm 3 as the workflow runs it (rounds of at most ``pairs_per_round``, the budget,
    the early stop) on ``trials`` simulated landscapes of ``n`` minima: ``(rounds, paths)`` of
    each trial, the rounds counting the non-empty selections a run waits for in sequence."""
    keys = ("max_paths", "pairs_per_round", "similar_saddles_rtol", "similar_saddles_scale")
    return _simulated(n, tuple(exploration[k] for k in keys), model, trials, seed)


@functools.cache
def _simulated(n: int, budget: tuple, model: str, trials: int, seed: int) -> list:
    import numpy as np

    from ..engine.landscape import next_pairs

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(trials):
        loss = {k: float(v) for k, v in enumerate(rng.uniform(0.9, 1.1, n))}
        basins = {k: int(rng.integers(0, 3)) for k in range(n)}
        computed, rounds = {}, 0
        max_paths, per_round, rtol, scale = budget
        while pairs := next_pairs(
            loss, computed, per_round, budget=max_paths, similar_rtol=rtol, similar_scale=scale
        ):
            rounds += 1
            for a, b in pairs:
                computed[(a, b)] = simulated_saddle(
                    model, rng, (loss[a], loss[b]), (basins[a], basins[b])
                )
        out.append((rounds, len(computed)))
    return out


def format_simulated_rounds(n: int, exploration: dict, trials: int = 20) -> str:
    """One line per landscape model: the rounds and paths of the simulated runs."""
    lines = [f"Algorithm 3 on simulated saddles ({n} minima, {trials} landscapes per model):"]
    for model in LANDSCAPES:
        runs = simulated_rounds(n, exploration, model, trials)
        rounds = sorted(r for r, _ in runs)
        paths = sorted(p for _, p in runs)
        lines.append(
            f"  {model:<13} rounds median {rounds[len(rounds) // 2]} (range {rounds[0]}-"
            f"{rounds[-1]}), paths median {paths[len(paths) // 2]} (range {paths[0]}-{paths[-1]})"
        )
    return "\n".join(lines)
