"""AutoNEB: cycles of NEB with adaptive pivot insertion (Algorithm 2, Sec. 4.1, Appendix A).

Algorithm 2 of Draxler et al. (2018): initialise N pivots equally spaced on the segment between the
minima; then for every cycle of the schedule optimise the path with NEB
(:mod:`nobarriers.engine.neb`), evaluate the loss along the path and insert pivots where the
residual is large
(:mod:`nobarriers.engine.insertion`). No insertion follows the last cycle: the returned path is the
optimised one (Algorithm 2: "return path after final iteration").

Resume: after every finished cycle the complete state is written atomically to ``state_path``
(:mod:`nobarriers.formats.autoneb_state`). Re-running the same call continues after the last
finished cycle; on the CPU the result is bitwise identical to an uninterrupted run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core.errors import ConfigError
from ..core.progress import Progress, note_resume_point
from ..formats.autoneb_state import endpoints_fingerprint, load_state, save_state
from ..nn.path_geometry import gap_alphas, initial_path
from ..nn.runtime import capture_rng_state, restore_rng_state
from ..settings.autoneb_config import AutoNEBConfig
from .energy import Energy
from .insertion import evaluate_dense, insert_pivots, select_insertions
from .neb import run_neb
from .optim import make_optimizer

log = logging.getLogger("nobarriers")


@dataclass
class CycleRecord:
    """What happened in one cycle and the evaluation after it."""

    cycle: int  # 1-based
    steps: int
    lr: float
    n_pivots: int  # interior pivots during the cycle
    t: np.ndarray  # dense positions 0..N+1 (pivot index + alpha) of the evaluation after the cycle
    loss: np.ndarray  # loss at those positions (eval subset, BN on the subset)
    pivot_loss: np.ndarray  # [N+2]
    saddle_loss: float  # max of loss
    inserted: list[float]  # positions (in t of this evaluation) where pivots were inserted
    wall_s: float
    pivots: np.ndarray | None = None  # [N+2, D] only if keep_all_pivots
    climbing: int | None = None  # interior index of the climbing pivot (climbing_cycles)
    no_climb: str = ""  # a climbing cycle without a climber: why (see climbing_pivot)

    def to_state(self) -> dict:
        d = asdict(self)
        for key in ("t", "loss", "pivot_loss", "pivots"):
            if d[key] is not None:
                d[key] = torch.from_numpy(np.ascontiguousarray(d[key]))
        return d

    @classmethod
    def from_state(cls, d: dict) -> CycleRecord:
        d = dict(d)
        for key in ("t", "loss", "pivot_loss", "pivots"):
            if d.get(key) is not None:
                d[key] = d[key].numpy()
        return cls(**d)


def climbing_pivot(record: CycleRecord) -> tuple[int | None, str]:
    """The climber of the next cycle and, without one, why not.

    The candidate is the interior pivot of highest loss on the path that follows ``record``'s
    cycle -- its pivots and the ones inserted after it, whose losses the dense evaluation
    measured at the points where they were inserted. It climbs only when the path's highest
    point is interior and above both endpoints: a path that rises to an endpoint has no saddle
    between them, and a climber pushed up the slope towards that endpoint would leave the path
    (on a tilted valley it diverged where plain NEB was stable). Returns ``(index, "")`` or
    ``(None, reason)``."""
    points = [(float(i), float(loss)) for i, loss in enumerate(record.pivot_loss)]
    for t in record.inserted:
        points.append((float(t), float(record.loss[int(np.argmin(np.abs(record.t - t)))])))
    losses = [loss for _, loss in sorted(points)]
    interior = losses[1:-1]
    best = int(np.argmax(interior))
    peak = int(np.argmax(record.loss))
    ends = max(losses[0], losses[-1])
    if peak in (0, len(record.loss) - 1):
        side = "start" if peak == 0 else "end"
        return None, (
            f"no climbing: the path's highest point is its {side} (loss {record.loss[peak]:.5g}); "
            "no saddle between the minima to climb to"
        )
    if interior[best] <= ends:
        return None, (
            f"no climbing: the highest interior pivot (loss {interior[best]:.5g}) is not above "
            f"the endpoints ({ends:.5g})"
        )
    return best, ""


@dataclass
class AutoNEBResult:
    pivots: torch.Tensor  # [N+2, D] final, endpoints included
    target_weights: np.ndarray  # [N+1] relative target arc length of each gap (sum 1)
    history: list[CycleRecord]
    saddle_loss: float  # history[-1].saddle_loss


def run_autoneb(
    energy: Energy,
    start: Tensor,
    end: Tensor,
    config: AutoNEBConfig,
    state_path: str | Path | None = None,
    seed: int = 0,
    evaluate_fn=None,
    on_cycle_end=None,
) -> AutoNEBResult:
    """Connect ``start`` and ``end`` (1-D points of the energy) with AutoNEB (Algorithm 2).

    Args:
        energy: the energy (:class:`~nobarriers.engine.energy.FunctionEnergy`,
            ``ModelEnergy``, ...).
        start, end: the minima, flat tensors of length ``energy.dim``.
        config: hyper-parameters and cycle schedule.
        state_path: resume file written after every finished cycle (``None``: no resume).
        seed: seeds the NEB batch generator and the insertion-evaluation subset.
        evaluate_fn: ``points [M, D] -> losses [M]`` for the insertion evaluation; default
            ``energy.evaluation_losses(points, config.eval_subset, seed)``.
        on_cycle_end: optional ``callback(record: CycleRecord)`` after the state is saved.
    """
    # bad optimizer_kwargs fail here, naming the key, before the first cycle
    make_optimizer(config.optimizer, [torch.zeros(1, requires_grad=True)], 0.1,
                   config.optimizer_kwargs)  # fmt: skip
    if start.dim() != 1 or end.dim() != 1 or start.shape != end.shape:
        raise ConfigError(
            f"AutoNEB endpoints must be 1-D points of equal length, got shapes "
            f"{tuple(start.shape)} and {tuple(end.shape)}"
        )
    if start.numel() != energy.dim:
        raise ConfigError(f"endpoints have length {start.numel()}, the energy expects {energy.dim}")
    device = getattr(energy, "device", None) or start.device
    start = start.detach().to(device)
    end = end.detach().to(device)
    if evaluate_fn is None:

        def evaluate_fn(points):
            return energy.evaluation_losses(points, config.eval_subset, seed)

    state_path = Path(state_path) if state_path is not None else None
    fingerprint = endpoints_fingerprint(start, end)
    # the resume state is tied to every setting that changes the result, the energy's included
    settings = {**config.to_dict(), "energy": energy.result_settings()}
    generator = torch.Generator().manual_seed(int(seed))
    n_cycles = len(config.schedule)

    if state_path is not None and state_path.exists():
        state = load_state(
            state_path, settings=settings, fingerprint=fingerprint, dim=energy.dim, seed=seed
        )
        done = int(state["cycle"])
        pivots = state["pivots"].to(device)
        weights = state["target_weights"].numpy()
        history = [CycleRecord.from_state(r) for r in state["history"]]
        restore_rng_state(state["rng"], {"batches": generator})
        if energy.mode == "auto" and state["mode"] is not None:
            energy.resolved_mode = state["mode"]  # the calibration of the interrupted run
        log.info("AutoNEB: resuming %s after cycle %d/%d", state_path, done, n_cycles)
    else:
        done = 0
        pivots = initial_path(start, end, config.initial_pivots)
        weights = np.full(config.initial_pivots + 1, 1.0 / (config.initial_pivots + 1))
        history = []

    endpoint_losses = None
    if config.endpoint_losses == "once":
        # a generator of its own (same seed), so the NEB batch sequence is that of "per_step"
        endpoint_losses = energy.mean_batch_losses(
            torch.stack([start, end]),
            config.endpoint_batches,
            torch.Generator().manual_seed(int(seed)),
        )
        log.info(
            "AutoNEB: endpoint losses %.5g and %.5g (mean of %d batches; endpoint_losses=once)",
            float(endpoint_losses[0]),
            float(endpoint_losses[1]),
            config.endpoint_batches,
        )
    log.info(
        "AutoNEB: %d cycles, %d steps, %d coordinates, energy mode %s",
        n_cycles,
        config.total_steps,
        energy.dim,
        energy.resolved_mode or energy.mode,
    )
    progress = Progress(
        config.total_steps,
        "AutoNEB step",
        start=sum(c.steps for c in config.schedule[:done]),
    )
    for index in range(done, n_cycles):
        cycle = config.schedule[index]
        number = index + 1
        t0 = time.perf_counter()
        n_interior = pivots.shape[0] - 2
        # climbing image in the last cycles, where the path has a saddle between the minima;
        # the climber is fixed for the whole cycle
        climbing, no_climb = None, ""
        if index >= n_cycles - config.climbing_cycles:
            climbing, no_climb = climbing_pivot(history[-1])
            if climbing is None:
                log.info("AutoNEB cycle %d/%d: %s", number, n_cycles, no_climb)
        pivots, _ = run_neb(
            energy,
            pivots,
            weights,
            steps=cycle.steps,
            lr=cycle.lr,
            settings=config.neb,
            generator=generator,
            endpoint_losses=endpoint_losses,
            cycle=f"{number}/{n_cycles}",
            progress=progress,
            climbing=climbing,
        )
        t, loss, pivot_loss, gap_loss = evaluate_dense(evaluate_fn, pivots, config.n_between)
        record_pivots = pivots.detach().cpu().numpy().copy() if config.keep_all_pivots else None
        inserted: list[float] = []
        if number < n_cycles:
            chosen = select_insertions(
                pivot_loss,
                gap_loss,
                gap_alphas(config.n_between),
                config.insert_threshold,
                config.max_insert_per_cycle,
                config.max_pivots - n_interior,
            )
            pivots, weights = insert_pivots(pivots, weights, chosen)
            inserted = [g + a for g, a, _ in chosen]
        record = CycleRecord(
            cycle=number,
            steps=cycle.steps,
            lr=cycle.lr,
            n_pivots=n_interior,
            t=t,
            loss=loss,
            pivot_loss=pivot_loss,
            saddle_loss=float(loss.max()),
            inserted=inserted,
            wall_s=time.perf_counter() - t0,
            pivots=record_pivots,
            climbing=climbing,
            no_climb=no_climb,
        )
        history.append(record)
        # saved before it is reported: a 'done' line in a log means the cycle is on disk
        if state_path is not None:
            save_state(
                state_path,
                settings=settings,
                fingerprint=fingerprint,
                dim=energy.dim,
                seed=seed,
                cycle=number,
                pivots=pivots.detach().cpu().clone(),
                target_weights=torch.from_numpy(np.asarray(weights, dtype=np.float64)),
                rng=capture_rng_state({"batches": generator}),
                mode=energy.resolved_mode,
                history=[r.to_state() for r in history],
            )
            note_resume_point(
                f"AutoNEB cycle {number}/{n_cycles} saved in {state_path}; a rerun resumes with "
                f"cycle {number + 1}"
            )
        log.info(
            "AutoNEB cycle %d/%d done: %d pivots, saddle loss %.5g at t=%.2f, inserted %s, %.1fs",
            number,
            n_cycles,
            n_interior,
            record.saddle_loss,
            float(t[int(np.argmax(loss))]),
            ", ".join(f"{s:.2f}" for s in inserted) or "none",
            record.wall_s,
        )
        if on_cycle_end is not None:
            on_cycle_end(record)

    return AutoNEBResult(
        pivots=pivots.detach(),
        target_weights=np.asarray(weights, dtype=np.float64) / np.sum(weights),
        history=history,
        saddle_loss=history[-1].saddle_loss,
    )
