"""Parametric curves between two minima (Garipov, Izmailov, Podoprikhin, Vetrov, Wilson 2018).

A curve ``phi(t)``, ``t`` in [0, 1], with ``phi(0) = w1`` and ``phi(1) = w2`` fixed; only the bend
``theta`` trains. Every point of a curve is ``a(t) w1 + b(t) theta + c(t) w2``
(:func:`curve_coefficients`):

* ``"bezier"`` (quadratic Bezier): ``(1-t)^2 w1 + 2t(1-t) theta + t^2 w2``;
* ``"polychain"`` (polygonal chain with one bend): ``2(t theta + (0.5-t) w1)`` on [0, 0.5] and
  ``2((t-0.5) w2 + (1-t) theta)`` on [0.5, 1]; ``phi(0.5) = theta``.

:func:`train_curve` minimises the expected loss ``E_{t ~ U(0,1)} L(phi(t))``: each mini-batch
draws ONE ``t``, builds ``phi(t)``, computes the loss and its gradient ``g`` at ``phi(t)`` and,
by the chain rule, gives ``theta`` the gradient ``b(t) g``. The bend starts at the midpoint
``(w1 + w2) / 2`` (both curves then are the straight line). The optimiser is the project's SGD
with momentum on the training recipe's step schedule (:func:`nobarriers.settings.recipes.
lr_at_epoch`); weight decay acts on ``theta`` only (Garipov et al.'s code instead adds an L2
term on ``phi(t)``, whose gradient is ``wd b(t) phi(t)``). BatchNorm runs in train mode (the
statistics of each batch at ``phi(t)``), as theirs; the caller's network is never changed (a
private copy trains). Resumable after every epoch (:mod:`nobarriers.formats.curve_state`).

A trained curve is evaluated like an AutoNEB path: :func:`curve_points` at dense ``t`` gives the
pivots that :func:`nobarriers.engine.evaluate.evaluate_path` evaluates unchanged
(``n_between=0``: exactly those points, each with exact BatchNorm statistics).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import ConfigError, DivergenceError, FileFormatError
from ..core.progress import Progress, note_resume_point
from ..formats.curve_state import endpoints_fingerprint, load_curve_state, save_curve_state
from ..nn.batches import augment_batch
from ..nn.points import trainable_parameters
from ..nn.runtime import capture_rng_state, restore_rng_state, seed_everything
from ..settings.recipes import lr_at_epoch
from .energy import FunctionEnergy
from .optim import SGD

_LOGGER = logging.getLogger("nobarriers")

#: the curve families: quadratic Bezier and the polygonal chain with one bend
CURVE_KINDS = ("bezier", "polychain")

#: settings every curve training needs (a training recipe has them all)
_COMMON_KEYS = ("lr", "momentum", "nesterov", "weight_decay", "lr_milestones", "lr_gamma", "epochs")


# ------------------------------------------------------------------------------ parametrisation


def check_kind(kind: str) -> str:
    if kind not in CURVE_KINDS:
        raise ConfigError(f"unknown curve kind {kind!r}; valid: {', '.join(CURVE_KINDS)}")
    return kind


def curve_coefficients(kind: str, t: float) -> tuple[float, float, float]:
    """``(a, b, c)`` with ``phi(t) = a w1 + b theta + c w2``; ``b = d phi / d theta``."""
    check_kind(kind)
    t = float(t)
    if not 0.0 <= t <= 1.0:  # also refuses NaN
        raise ConfigError(f"curve position t={t} outside [0, 1]")
    if kind == "bezier":
        return (1.0 - t) ** 2, 2.0 * t * (1.0 - t), t * t
    if t <= 0.5:
        return 1.0 - 2.0 * t, 2.0 * t, 0.0
    return 0.0, 2.0 * (1.0 - t), 2.0 * t - 1.0


def curve_point(kind: str, w1: Tensor, theta: Tensor, w2: Tensor, t: float) -> Tensor:
    """``phi(t)``: exactly ``w1`` at t = 0, ``w2`` at t = 1 (``theta`` at the chain's 0.5)."""
    a, b, c = curve_coefficients(kind, t)
    return a * w1 + b * theta + c * w2


def curve_points(kind: str, w1: Tensor, theta: Tensor, w2: Tensor, ts: Sequence[float]) -> Tensor:
    """The points ``phi(t)`` of every ``t`` in ``ts`` as pivots ``[M, D]`` (e.g.
    ``ts = numpy.linspace(0, 1, n_points)``), for ``evaluate_path(..., n_between=0)``."""
    return torch.stack([curve_point(kind, w1, theta, w2, t) for t in ts])


def control_points(w1: Tensor, theta: Tensor, w2: Tensor) -> Tensor:
    """The curve's control points ``[3, D]``: ``w1``, the bend ``theta``, ``w2``."""
    return torch.stack([w1, theta.to(w1), w2])


def initial_bend(w1: Tensor, w2: Tensor) -> Tensor:
    """The midpoint ``(w1 + w2) / 2``: where the bend starts."""
    return (w1 + w2) / 2


# ------------------------------------------------------------------------------------ objectives


class _NetworkObjective:
    """Mean cross-entropy of a private copy of ``model`` in train mode (BatchNorm on the batch's
    statistics, dropout on) on the mini-batches of one epoch: a fresh permutation per epoch, as
    :func:`nobarriers.engine.train.train_minimum` draws them."""

    def __init__(self, model, x, y, batch_size, augment, device, seed):
        if x.shape[0] != y.shape[0] or x.shape[0] < 2:
            raise ConfigError(f"curve training needs >= 2 samples with labels, got {x.shape[0]}")
        self.net = copy.deepcopy(model).to(device).train()
        self.params = [p for _, p in trainable_parameters(self.net)]
        self.numels = [p.numel() for p in self.params]
        self.dim = sum(self.numels)
        self.x, self.y = x.to(device), y.to(device)
        self.batch_size = int(batch_size)
        self.augment = augment
        self.generators = {  # streams of their own: batch order (CPU) and augmentation
            "batches": torch.Generator().manual_seed(4 * seed + 1),
            "augment": torch.Generator(device=device).manual_seed(4 * seed + 2),
        }

    def identity(self) -> dict:
        return {"objective": "network", "n_train": int(self.x.shape[0]), "augment": self.augment}

    def batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = self.x.shape[0]
        order = torch.randperm(n, generator=self.generators["batches"]).to(self.x.device)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            if idx.numel() < 2:  # BatchNorm cannot train on a single sample
                break
            xb = self.x.index_select(0, idx)
            if self.augment != "none":
                xb = augment_batch(xb, self.augment, self.generators["augment"])
            yield xb, self.y.index_select(0, idx)

    def loss_and_grad(self, point: Tensor, batch) -> tuple[Tensor, Tensor, int]:
        """Loss at ``point``, its gradient ``[D]`` and the batch's sample count."""
        xb, yb = batch
        with torch.no_grad():
            for p, chunk in zip(self.params, point.split(self.numels), strict=True):
                p.copy_(chunk.view_as(p))
                p.grad = None
        loss = F.cross_entropy(self.net(xb), yb)
        loss.backward()
        grad = torch.cat([p.grad.reshape(-1) for p in self.params])
        return loss.detach(), grad, int(xb.shape[0])


class _FunctionObjective:
    """Any differentiable ``fn(x: Tensor[D]) -> scalar``; an epoch is ``steps_per_epoch`` steps
    (the only randomness is ``t``)."""

    def __init__(self, fn, steps_per_epoch):
        self.fn = fn
        self.steps = int(steps_per_epoch)
        self.generators: dict[str, torch.Generator] = {}

    def identity(self) -> dict:
        return {"objective": "function", "steps_per_epoch": self.steps}

    def batches(self) -> Iterator[None]:
        return iter([None] * self.steps)

    def loss_and_grad(self, point: Tensor, batch) -> tuple[Tensor, Tensor, int]:
        x = point.detach().requires_grad_(True)
        with torch.enable_grad():
            value = self.fn(x)
            (grad,) = torch.autograd.grad(value, x)
        return value.detach(), grad, 1


# -------------------------------------------------------------------------------------- training


@dataclass
class CurveResult:
    """A trained curve and what it cost.

    ``history``: per epoch ``epoch`` (1-based), ``lr``, ``loss`` (mean mini-batch loss at the
    epoch's random ``t``: a Monte Carlo estimate of the expected loss along the curve), ``wall_s``
    (cumulative). ``n_gradient_evaluations``: forward+backward passes, one per mini-batch (the unit
    of AutoNEB's steps x pivots); ``n_sample_gradients``: samples x passes (= passes for a
    function); ``wall_s``: training time summed over every run that contributed (resumes too).
    """

    kind: str
    w1: Tensor
    theta: Tensor
    w2: Tensor
    history: list[dict] = field(default_factory=list)
    n_gradient_evaluations: int = 0
    n_sample_gradients: int = 0
    wall_s: float = 0.0

    def points(self, ts: Sequence[float]) -> Tensor:
        return curve_points(self.kind, self.w1, self.theta, self.w2, ts)

    def control_points(self) -> Tensor:
        return control_points(self.w1, self.theta, self.w2)


def curve_settings(settings: dict, network: bool) -> dict:
    """The settings curve training uses, checked and normalised: the recipe keys ``lr``,
    ``momentum``, ``nesterov``, ``weight_decay``, ``lr_milestones``, ``lr_gamma``, ``epochs``,
    plus ``batch_size`` for a network or ``steps_per_epoch`` for a function; ``augment`` (default
    true) for a network. Other keys (a full recipe's ``eval_batch_size`` ...) are ignored."""
    size_key = "batch_size" if network else "steps_per_epoch"
    missing = [k for k in (*_COMMON_KEYS, size_key) if k not in settings]
    if missing:
        raise ConfigError(f"curve settings lack {', '.join(missing)}")
    out = {k: float(settings[k]) for k in ("lr", "momentum", "weight_decay", "lr_gamma")}
    out["nesterov"] = bool(settings["nesterov"])
    out["lr_milestones"] = sorted(float(m) for m in settings["lr_milestones"])
    out["epochs"] = int(settings["epochs"])
    out[size_key] = int(settings[size_key])
    if network:
        out["augment"] = bool(settings.get("augment", True))
    numbers = [out[k] for k in ("lr", "momentum", "weight_decay", "lr_gamma")]
    if not all(math.isfinite(v) and v >= 0 for v in [*numbers, *out["lr_milestones"]]):
        raise ConfigError(
            f"curve settings: lr, momentum, weight_decay, lr_gamma, lr_milestones "
            f"must be finite and >= 0, got {numbers} {out['lr_milestones']}"
        )
    if out["epochs"] < 0 or out[size_key] < (2 if network else 1):
        raise ConfigError(
            f"curve settings: epochs {out['epochs']} must be >= 0 and {size_key} "
            f"{out[size_key]} >= {2 if network else 1}"
        )
    if out["nesterov"] and out["momentum"] <= 0:
        raise ConfigError("curve settings: nesterov is true but momentum is 0")
    return out


def train_curve(
    kind: str,
    objective: nn.Module | FunctionEnergy | Callable[[Tensor], Tensor],
    w1: Tensor,
    w2: Tensor,
    settings: dict,
    seed: int,
    *,
    data: tuple[Tensor, Tensor] | None = None,
    augment: str = "none",
    state_path=None,
    config_hash: str = "",
    on_epoch_end: Callable[[int, dict], None] | None = None,
    device=None,
    log: logging.Logger | None = None,
) -> CurveResult:
    """Train the bend of a ``kind`` curve from ``w1`` to ``w2`` (points: trainable parameters).

    ``objective``: a network (``data = (x_train, y_train)``, ``augment`` the dataset's kind, used
    if ``settings["augment"]``) or a differentiable function of a flat vector (a
    :class:`FunctionEnergy` or a plain callable). ``settings``: see :func:`curve_settings` (a
    training recipe fits). ``state_path``: resume state, written after every epoch and kept at
    the end (a rerun of a finished training returns its result at once; delete the file once the
    output is written); a state of another run (kind, settings, endpoints, seed, ``config_hash``)
    is refused. ``on_epoch_end(epoch, entry)``: called after each epoch's state is written (a
    test hook: raising from it simulates a killed job).
    """
    check_kind(kind)
    logger = log or _LOGGER
    seed = int(seed)
    network = isinstance(objective, nn.Module)
    cfg = curve_settings(settings, network)
    device = torch.device(device) if device is not None else w1.device
    w1 = w1.detach().to(device)
    w2 = w2.detach().to(device)
    if w1.dim() != 1 or w1.shape != w2.shape:
        raise ConfigError(f"curve endpoints must be points of one shape: {w1.shape}, {w2.shape}")

    seed_everything(seed)  # dropout draws from torch's global generator
    if network:
        if data is None:
            raise ConfigError("train_curve on a network needs data=(x_train, y_train)")
        kind_aug = augment if cfg["augment"] else "none"
        obj = _NetworkObjective(objective, *data, cfg["batch_size"], kind_aug, device, seed)
        if obj.dim != w1.numel():
            raise ConfigError(
                f"{type(objective).__name__} has {obj.dim} trainable parameters, the endpoints "
                f"{w1.numel()}"
            )
    else:
        fn = objective.fn if isinstance(objective, FunctionEnergy) else objective
        obj = _FunctionObjective(fn, cfg["steps_per_epoch"])
    t_gen = torch.Generator().manual_seed(4 * seed + 3)  # the curve positions t, on the CPU
    generators = {**obj.generators, "t": t_gen}

    theta = initial_bend(w1, w2).clone()
    optimizer = SGD(
        [theta],
        lr=cfg["lr"],
        momentum=cfg["momentum"],
        nesterov=cfg["nesterov"],
        weight_decay=cfg["weight_decay"],  # on theta only: the endpoints are not parameters
    )
    run = {  # a state continues only the same run
        "kind": kind,
        "settings": {**cfg, **obj.identity(), "config_hash": str(config_hash)},
        "fingerprint": endpoints_fingerprint(w1, w2),
        "dim": int(w1.numel()),
        "seed": seed,
    }
    history: list[dict] = []
    start_epoch, n_grad, n_samples, wall_before = 0, 0, 0, 0.0
    state_path = Path(state_path) if state_path is not None else None
    if state_path is not None and state_path.exists():
        state = load_curve_state(state_path, **run)
        try:
            with torch.no_grad():
                theta.copy_(state["theta"])
            optimizer.load_state_dict(state["optimizer"])
            restore_rng_state(state["rng"], generators)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise FileFormatError(
                f"curve training state {state_path}: unusable ({exc}); delete it to restart"
            ) from exc
        history = list(state["history"])
        start_epoch = int(state["epochs_done"])
        n_grad, n_samples = int(state["n_gradient_evaluations"]), int(state["n_sample_gradients"])
        wall_before = float(state["wall_s"])
        logger.info(
            "%s curve: resuming from %s after epoch %d/%d",
            kind,
            state_path,
            start_epoch,
            cfg["epochs"],
        )
    else:
        logger.info(
            "%s curve: training %d epochs, dimension %d, seed %d",
            kind,
            cfg["epochs"],
            run["dim"],
            seed,
        )

    progress = Progress(
        cfg["epochs"], f"{kind} curve epoch", logger=logger, every_s=0.0, start=start_epoch
    )
    t0, wall = time.perf_counter(), wall_before
    for epoch in range(start_epoch, cfg["epochs"]):
        lr = lr_at_epoch(cfg, epoch)
        optimizer.param_groups[0]["lr"] = lr
        loss_sum, steps = torch.zeros((), device=device), 0
        for batch in obj.batches():
            t = float(torch.rand((), generator=t_gen, dtype=torch.float64))
            _, b, _ = curve_coefficients(kind, t)
            loss, grad, count = obj.loss_and_grad(curve_point(kind, w1, theta, w2, t), batch)
            theta.grad = grad.mul_(b)  # chain rule: d phi(t) / d theta = b(t) (a scalar)
            optimizer.step()
            loss_sum += loss
            steps += 1
            n_grad += 1
            n_samples += count
        mean_loss = float(loss_sum) / max(steps, 1)
        if not (math.isfinite(mean_loss) and bool(torch.isfinite(theta).all())):
            raise DivergenceError(
                f"{kind} curve training diverged in epoch {epoch + 1}/{cfg['epochs']} "
                f"(mean loss {mean_loss}, lr {lr:g}); lower the curve's 'lr'"
            )
        wall = wall_before + time.perf_counter() - t0
        entry = {"epoch": epoch + 1, "lr": lr, "loss": mean_loss, "wall_s": wall}
        history.append(entry)
        if state_path is not None:
            save_curve_state(
                state_path,
                **run,
                epochs_done=epoch + 1,
                theta=theta.detach().cpu(),
                optimizer=optimizer.state_dict(),
                rng=capture_rng_state(generators),
                history=history,
                n_gradient_evaluations=n_grad,
                n_sample_gradients=n_samples,
                wall_s=wall,
            )
            note_resume_point(
                f"{kind} curve: epoch {epoch + 1}/{cfg['epochs']} saved in {state_path}; "
                f"a rerun resumes with epoch {epoch + 2}"
            )
        progress.update(lr=lr, loss=mean_loss)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, entry)

    return CurveResult(
        kind=kind,
        w1=w1,
        theta=theta.detach().clone(),
        w2=w2,
        history=history,
        n_gradient_evaluations=n_grad,
        n_sample_gradients=n_samples,
        wall_s=wall,
    )
