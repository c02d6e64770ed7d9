"""AutoNEB settings (paper Section 4.1, Appendix A): the cycle schedule and hyper-parameters.

Torch-free, so the workflow can validate and hash its configuration at start-up without
importing torch; :mod:`nobarriers.autoneb` runs the algorithm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from .errors import ConfigError

MODES = ("auto", "vmap", "loop")

#: how NEB steps get the endpoints' losses, which the tangents of the outermost pivots compare
#: against: "per_step" evaluates both endpoints on every step's batch (the authors' code);
#: "once" uses their mean loss over ``endpoint_batches`` batches, measured once per run.
ENDPOINT_LOSSES = ("per_step", "once")

#: torch.optim optimisers usable for NEB (LBFGS needs a closure, SparseAdam sparse gradients);
#: tests/test_autoneb.py checks this list against the installed torch.
OPTIMIZERS = (
    "ASGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Muon",
    "NAdam",
    "RAdam",
    "RMSprop",
    "Rprop",
    "SGD",
)


@dataclass
class Cycle:
    """One entry of the AutoNEB schedule: ``steps`` NEB steps at learning rate ``lr``."""

    steps: int
    lr: float


def paper_schedule() -> list[Cycle]:
    """The 14 cycles (16,000 steps) of Sec. 4.1: 4x(1000, 0.1), 2x(2000, 0.1), 4x(1000, 0.01),
    4x(1000, 0.001)."""
    return (
        [Cycle(1000, 0.1) for _ in range(4)]
        + [Cycle(2000, 0.1) for _ in range(2)]
        + [Cycle(1000, 0.01) for _ in range(4)]
        + [Cycle(1000, 0.001) for _ in range(4)]
    )


@dataclass
class AutoNEBConfig:
    """AutoNEB hyper-parameters; defaults are the paper's (Sec. 4.1, Appendix A)."""

    schedule: list[Cycle] = field(default_factory=paper_schedule)
    initial_pivots: int = 3  # interior pivots of the first cycle, equally spaced on the segment
    insert_threshold: float = 0.2  # normalised residual (paper 20%; the authors' code used 0.1)
    n_between: int = 9  # interpolated points evaluated per gap
    max_insert_per_cycle: int = 2  # cap on new pivots per cycle (reference code: 2)
    max_pivots: int = 31  # cap on interior pivots
    optimizer: str = "SGD"  # any torch.optim class name
    optimizer_kwargs: dict = field(default_factory=lambda: {"momentum": 0.9})
    weight_decay: float = 1e-4  # L2 added to each pivot's gradient before projection
    batch_size: int = 512  # NEB mini-batch (paper: 512 CNNs/ResNet-20/32, 256 deeper)
    common_batch: bool = True  # one batch for all pivots of a step (reference: one per pivot)
    endpoint_losses: str = "per_step"  # "per_step" (authors' code) | "once" (speed option)
    endpoint_batches: int = 32  # batches averaged for endpoint_losses="once"
    eval_subset: int | None = 2048  # training samples for the insertion evaluation (None = all)
    mode: str = "auto"  # "auto" | "vmap" | "loop"
    keep_all_pivots: bool = False  # store every cycle's pivots in the path file
    channels_last: bool = False  # GPU option: NHWC batches/network in NEB steps (paper: fp32 NCHW)
    autocast_bf16: bool = False  # GPU option: bf16 autocast in NEB steps (paper: not used, fp32)

    def __post_init__(self):
        self.schedule = [_cycle(c, i) for i, c in enumerate(self.schedule)]
        self.optimizer_kwargs = dict(self.optimizer_kwargs)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the offending key."""
        if not self.schedule:
            raise ConfigError("AutoNEB config: schedule is empty; give at least one cycle")
        for i, c in enumerate(self.schedule):
            if int(c.steps) != c.steps or c.steps < 1:
                raise ConfigError(f"AutoNEB config: schedule[{i}].steps must be a positive int")
            if not c.lr > 0:
                raise ConfigError(f"AutoNEB config: schedule[{i}].lr must be > 0")
        checks = [
            ("initial_pivots", self.initial_pivots >= 1),
            ("insert_threshold", self.insert_threshold >= 0),
            ("n_between", self.n_between >= 1),
            ("max_insert_per_cycle", self.max_insert_per_cycle >= 0),
            ("max_pivots", self.max_pivots >= self.initial_pivots),
            ("weight_decay", self.weight_decay >= 0),
            ("batch_size", self.batch_size >= 1),
            ("eval_subset", self.eval_subset is None or self.eval_subset >= 2),
            ("endpoint_batches", self.endpoint_batches >= 1),
        ]
        for key, ok in checks:
            if not ok:
                raise ConfigError(f"AutoNEB config: invalid {key}={getattr(self, key)!r}")
        if self.mode not in MODES:
            raise ConfigError(f"AutoNEB config: mode {self.mode!r} is not one of {MODES}")
        if self.endpoint_losses not in ENDPOINT_LOSSES:
            raise ConfigError(
                f"AutoNEB config: endpoint_losses {self.endpoint_losses!r} is not one of "
                f"{ENDPOINT_LOSSES}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"AutoNEB config: unknown optimizer {self.optimizer!r}; "
                f"valid names: {', '.join(OPTIMIZERS)}"
            )

    def check_optimizer(self) -> None:
        """Build the optimiser once on a dummy tensor: bad ``optimizer_kwargs`` fail here, with
        the key named, before the first cycle (imports torch; :meth:`validate` does not)."""
        import torch

        from .neb import make_optimizer

        make_optimizer(
            self.optimizer, [torch.zeros(1, requires_grad=True)], 0.1, self.optimizer_kwargs
        )

    @property
    def total_steps(self) -> int:
        return sum(c.steps for c in self.schedule)

    def to_dict(self) -> dict:
        """JSON-compatible dict (the schedule as a list of ``{"steps", "lr"}``)."""
        d = asdict(self)
        d["schedule"] = [{"steps": int(c.steps), "lr": float(c.lr)} for c in self.schedule]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> AutoNEBConfig:
        """Build from a JSON/YAML dict; unknown keys are an error. Schedule entries may be
        ``{"steps", "lr"}`` (optionally with ``"repeat": k``) or ``[steps, lr]`` pairs."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"AutoNEB config: unknown key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        kwargs = dict(d)
        if "schedule" in kwargs:
            schedule = []
            for i, entry in enumerate(kwargs["schedule"] or []):
                repeat = 1
                if isinstance(entry, dict):
                    entry = dict(entry)
                    repeat = int(entry.pop("repeat", 1))
                schedule += [_cycle(entry, i)] * repeat
            kwargs["schedule"] = schedule
        return cls(**kwargs)


def _cycle(entry, index: int) -> Cycle:
    try:
        if isinstance(entry, Cycle):
            return Cycle(int(entry.steps), float(entry.lr))
        if isinstance(entry, dict):
            extra = set(entry) - {"steps", "lr"}
            if extra:
                raise ConfigError(
                    f"AutoNEB config: schedule[{index}] has unknown key(s) {sorted(extra)}"
                )
            return Cycle(int(entry["steps"]), float(entry["lr"]))
        steps, lr = entry
        return Cycle(int(steps), float(lr))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"AutoNEB config: schedule[{index}] = {entry!r} is not {{steps, lr}}"
        ) from exc
