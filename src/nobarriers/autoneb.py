"""AutoNEB: cycles of NEB with adaptive pivot insertion (Algorithm 2, Sec. 4.1, Appendix A).

Algorithm 2 of Draxler et al. (2018): initialise N pivots equally spaced on the segment between the
minima; then for every cycle of the schedule optimise the path with NEB (:mod:`nobarriers.neb`),
evaluate the loss along the path and insert pivots where the residual is large.

Insertion (Appendix A, eq. 4): between pivots i and i+1 the loss is evaluated at
``alpha = k / (n_between + 1)``, ``k = 1..n_between``; the residual
``L(p_i (1-alpha) + p_{i+1} alpha) - ((1-alpha) L(p_i) + alpha L(p_{i+1}))`` is normalised by
``max_i L(p_i) - min_i L(p_i)`` over the pivots. A gap whose highest normalised residual exceeds
``insert_threshold`` receives one pivot at that alpha; gaps are served by descending residual, at
most ``max_insert_per_cycle`` per cycle and up to ``max_pivots`` interior pivots. Inserting at
``alpha`` splits the gap's target weight ``alpha : 1 - alpha``. No insertion follows the last cycle:
the returned path is the optimised one (Algorithm 2: "return path after final iteration").

Resume: after every finished cycle the complete state (pivots, target weights, cycle index, all RNG
states including the batch generator, the resolved energy mode, the history) is written atomically
to ``state_path`` as a ``torch.save`` file of tensors/numbers/strings only (loaded with
``weights_only=True``). Re-running the same call continues after the last finished cycle; on the
CPU the result is bitwise identical to an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .autoneb_config import (  # noqa: F401 - re-exported
    MODES,
    OPTIMIZERS,
    AutoNEBConfig,
    Cycle,
    paper_schedule,
)
from .energy import Energy
from .errors import ConfigError, FileFormatError
from .neb import run_neb
from .progress import Progress
from .runtime import atomic_path

log = logging.getLogger("nobarriers")

STATE_FORMAT = "nobarriers-autoneb-state/1"


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


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


@dataclass
class AutoNEBResult:
    pivots: torch.Tensor  # [N+2, D] final, endpoints included
    target_weights: np.ndarray  # [N+1] relative target arc length of each gap (sum 1)
    history: list[CycleRecord]
    saddle_loss: float  # history[-1].saddle_loss


# --------------------------------------------------------------------------------------------
# insertion (Appendix A)
# --------------------------------------------------------------------------------------------


def gap_alphas(n_between: int) -> np.ndarray:
    """The interior evaluation positions ``k / (n_between + 1)``, ``k = 1..n_between``."""
    return np.arange(1, n_between + 1) / (n_between + 1)


def normalised_residuals(pivot_loss, gap_loss, alphas) -> np.ndarray:
    """Eq. 4: ``(L(alpha) - L_guess(alpha)) / (max L(p) - min L(p))`` per gap ``[N+1, K]``.

    A flat pivot profile (max == min) is normalised by the smallest positive float64, so any
    positive residual counts as large."""
    pivot_loss = np.asarray(pivot_loss, dtype=np.float64)
    gap_loss = np.asarray(gap_loss, dtype=np.float64)
    alphas = np.asarray(alphas, dtype=np.float64)
    guess = pivot_loss[:-1, None] * (1 - alphas[None, :]) + pivot_loss[1:, None] * alphas[None, :]
    scale = max(float(pivot_loss.max() - pivot_loss.min()), np.finfo(np.float64).tiny)
    return (gap_loss - guess) / scale


def select_insertions(
    pivot_loss, gap_loss, alphas, threshold: float, max_insert: int, room: int
) -> list[tuple[int, float, float]]:
    """Choose ``(gap, alpha, residual)`` insertions, sorted by gap.

    Per gap only the alpha of highest normalised residual is a candidate, and only if it exceeds
    ``threshold``; candidates are taken by descending residual up to ``min(max_insert, room)``.
    """
    res = normalised_residuals(pivot_loss, gap_loss, alphas)
    alphas = np.asarray(alphas, dtype=np.float64)
    best = res.argmax(axis=1)
    candidates = [
        (g, float(alphas[best[g]]), float(res[g, best[g]]))
        for g in range(res.shape[0])
        if res[g, best[g]] > threshold
    ]
    candidates.sort(key=lambda c: (-c[2], c[0]))
    chosen = candidates[: max(0, min(max_insert, room))]
    return sorted(chosen)


def insert_pivots(
    pivots: Tensor, target_weights, insertions: list[tuple[int, float, float]]
) -> tuple[Tensor, np.ndarray]:
    """Insert ``p_g (1 - alpha) + p_{g+1} alpha`` for each ``(gap, alpha, _)``; the gap's target
    weight ``w`` becomes ``alpha w, (1 - alpha) w``."""
    weights = list(np.asarray(target_weights, dtype=np.float64))
    rows = list(pivots)
    for gap, alpha, _ in sorted(insertions, reverse=True):  # back to front keeps indices valid
        new = rows[gap] * (1.0 - alpha) + rows[gap + 1] * alpha
        rows.insert(gap + 1, new)
        w = weights[gap]
        weights[gap : gap + 1] = [alpha * w, (1.0 - alpha) * w]
    return torch.stack(rows), np.asarray(weights, dtype=np.float64)


def evaluate_dense(evaluate, pivots: Tensor, n_between: int):
    """Evaluate all pivots and ``n_between`` chord points per gap, one gap at a time (bounded
    memory). Returns ``(t, loss, pivot_loss, gap_loss [N+1, n_between])`` as float64 arrays."""
    alphas = gap_alphas(n_between)
    n_gaps = pivots.shape[0] - 1
    pivot_loss = _as_array(evaluate(pivots))
    gap_loss = np.empty((n_gaps, n_between))
    for g in range(n_gaps):
        a = torch.as_tensor(alphas, dtype=pivots.dtype, device=pivots.device).unsqueeze(1)
        points = pivots[g] * (1 - a) + pivots[g + 1] * a
        gap_loss[g] = _as_array(evaluate(points))
    t = np.concatenate(
        [np.concatenate([[g], g + alphas]) for g in range(n_gaps)] + [[float(n_gaps)]]
    )
    loss = np.concatenate(
        [np.concatenate([[pivot_loss[g]], gap_loss[g]]) for g in range(n_gaps)] + [pivot_loss[-1:]]
    )
    return t, loss, pivot_loss, gap_loss


def _as_array(values) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


# --------------------------------------------------------------------------------------------
# resume state
# --------------------------------------------------------------------------------------------


def _fingerprint(start: Tensor, end: Tensor) -> str:
    h = hashlib.sha256()
    for t in (start, end):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _config_json(config: AutoNEBConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)


def _global_rng_state() -> dict:
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def _set_global_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npd = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npd["keys"].numpy().astype(np.uint32),
            npd["pos"],
            npd["has_gauss"],
            npd["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_state(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_state(path: Path, config: AutoNEBConfig, fingerprint: str, seed: int, dim: int) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a format error
        raise FileFormatError(f"cannot read AutoNEB state file {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise FileFormatError(f"{path} is not an AutoNEB state file ({STATE_FORMAT})")
    if state["config"] != _config_json(config):
        raise ConfigError(
            f"AutoNEB state file {path} was written with another config; delete it or restore "
            f"the config. stored: {state['config']}"
        )
    if state["fingerprint"] != fingerprint or state["dim"] != dim:
        raise ConfigError(f"AutoNEB state file {path} belongs to other endpoints; delete it")
    if state["seed"] != seed:
        raise ConfigError(
            f"AutoNEB state file {path} was written with seed {state['seed']}, not {seed}"
        )
    return state


# --------------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------------


def initial_path(start: Tensor, end: Tensor, n_interior: int) -> Tensor:
    """``n_interior + 2`` pivots equally spaced on the segment from ``start`` to ``end``."""
    alphas = torch.linspace(0, 1, n_interior + 2, dtype=torch.float64)[1:-1]
    inner = [start * (1 - float(a)) + end * float(a) for a in alphas]
    return torch.stack([start, *inner, end])


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
        energy: the energy (:class:`~nobarriers.energy.FunctionEnergy`, ``ModelEnergy``, ...).
        start, end: the minima, flat tensors of length ``energy.dim``.
        config: hyper-parameters and cycle schedule.
        state_path: resume file written after every finished cycle (``None``: no resume).
        seed: seeds the NEB batch generator and the insertion-evaluation subset.
        evaluate_fn: ``points [M, D] -> losses [M]`` for the insertion evaluation; default
            ``energy.evaluation_losses(points, config.eval_subset, seed)``.
        on_cycle_end: optional ``callback(record: CycleRecord)`` after the state is saved.
    """
    config.check_optimizer()
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
    if config.channels_last or config.autocast_bf16:
        set_options = getattr(energy, "set_speed_options", None)
        if set_options is None:
            raise ConfigError(
                f"AutoNEB config: channels_last/autocast_bf16 need a network energy, "
                f"not {type(energy).__name__}"
            )
        set_options(channels_last=config.channels_last, autocast_bf16=config.autocast_bf16)
    if energy.mode == "auto" and config.mode != "auto":
        energy.resolved_mode = config.mode
    if evaluate_fn is None:

        def evaluate_fn(points):
            return energy.evaluation_losses(points, config.eval_subset, seed)

    state_path = Path(state_path) if state_path is not None else None
    fingerprint = _fingerprint(start, end)
    generator = torch.Generator().manual_seed(int(seed))
    n_cycles = len(config.schedule)

    if state_path is not None and state_path.exists():
        state = _load_state(state_path, config, fingerprint, seed, energy.dim)
        done = int(state["cycle"])
        pivots = state["pivots"].to(device)
        weights = state["target_weights"].numpy()
        history = [CycleRecord.from_state(r) for r in state["history"]]
        generator.set_state(state["generator"])
        _set_global_rng_state(state["rng"])
        if energy.mode == "auto" and state["mode"] is not None:
            energy.resolved_mode = state["mode"]
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
        pivots, _ = run_neb(
            energy,
            pivots,
            weights,
            steps=cycle.steps,
            lr=cycle.lr,
            optimizer=config.optimizer,
            optimizer_kwargs=config.optimizer_kwargs,
            weight_decay=config.weight_decay,
            generator=generator,
            common_batch=config.common_batch,
            endpoint_losses=endpoint_losses,
            cycle=f"{number}/{n_cycles}",
            progress=progress,
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
        )
        history.append(record)
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
        if state_path is not None:
            _save_state(
                state_path,
                {
                    "format": STATE_FORMAT,
                    "config": _config_json(config),
                    "fingerprint": fingerprint,
                    "dim": energy.dim,
                    "seed": int(seed),
                    "cycle": number,
                    "pivots": pivots.detach().cpu().clone(),
                    "target_weights": torch.from_numpy(np.asarray(weights, dtype=np.float64)),
                    "generator": generator.get_state(),
                    "rng": _global_rng_state(),
                    "mode": energy.resolved_mode,
                    "history": [r.to_state() for r in history],
                },
            )
        if on_cycle_end is not None:
            on_cycle_end(record)

    return AutoNEBResult(
        pivots=pivots.detach(),
        target_weights=np.asarray(weights, dtype=np.float64) / np.sum(weights),
        history=history,
        saddle_loss=history[-1].saddle_loss,
    )
