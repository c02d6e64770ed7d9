"""AutoNEB settings as typed views of the schema's ``autoneb`` section (paper Sec. 4.1, App. A).

Defaults and limits come from ``config.schema.yaml`` (:mod:`nobarriers.settings.schema`), nowhere
else:

* :class:`AutoNEBConfig` -- what :func:`nobarriers.engine.autoneb.run_autoneb` uses: the cycle
  schedule, insertion, endpoint losses, the insertion evaluation, and the NEB step
  (:class:`NEBSettings`);
* :class:`NEBSettings` -- what one NEB step (:class:`nobarriers.engine.neb.NEBStep`) needs;
* :class:`EnergySettings` -- how the NEB energy is evaluated (batch size, augmentation, vmap/loop,
  GPU speed options); the workflow builds :class:`nobarriers.engine.model_energy.ModelEnergy` with
  them.

Torch-free, so the workflow can validate and hash its configuration at start-up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..core.errors import ConfigError
from . import schema

_DEFAULTS = schema.defaults("autoneb")
#: read once: every settings object is checked against it (validation never changes it)
_DEFINITION = schema.definition("autoneb")

#: evaluation modes of an energy (the schema's enum)
MODES = tuple(_DEFINITION["properties"]["mode"]["enum"])
#: torch.optim optimisers that can run NEB (the schema's enum; tests compare it with torch)
OPTIMIZERS = tuple(_DEFINITION["properties"]["optimizer"]["enum"])


@dataclass
class Cycle:
    """One entry of the AutoNEB schedule: ``steps`` NEB steps at learning rate ``lr``."""

    steps: int
    lr: float


def parse_schedule(entries) -> list[Cycle]:
    """``[{repeat: 4, steps: 1000, lr: 0.1}, [500, 0.01], Cycle(...)]`` -> one Cycle per cycle.

    The one place where ``repeat`` is expanded."""
    cycles: list[Cycle] = []
    for index, entry in enumerate(entries or []):
        repeat = 1
        try:
            if isinstance(entry, Cycle):
                steps, lr = entry.steps, entry.lr
            elif isinstance(entry, dict):
                extra = set(entry) - {"steps", "lr", "repeat"}
                if extra:
                    raise ConfigError(
                        f"AutoNEB config: schedule[{index}] has unknown key(s) {sorted(extra)}"
                    )
                steps, lr, repeat = entry["steps"], entry["lr"], entry.get("repeat", 1)
            else:
                steps, lr = entry
            cycle = Cycle(int(steps), float(lr))
            repeat = int(repeat)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"AutoNEB config: schedule[{index}] = {entry!r} is not {{steps, lr}}"
            ) from exc
        cycles += [cycle] * repeat
    return cycles


def paper_schedule() -> list[Cycle]:
    """The 14 cycles (16,000 steps) of Sec. 4.1: 4x(1000, 0.1), 2x(2000, 0.1), 4x(1000, 0.01),
    4x(1000, 0.001) -- the schema's default schedule."""
    return parse_schedule(_DEFAULTS["schedule"])


def _check(view, where: str) -> None:
    """Validate a typed view's values against the schema (the limits are stated only there)."""
    payload = view.to_dict()
    schema.validate(payload, _DEFINITION, where, defaults=False)


@dataclass
class NEBSettings:
    """One NEB step's settings (Algorithm 1): the optimiser, the L2 decay, the batch sharing."""

    optimizer: str = _DEFAULTS["optimizer"]
    optimizer_kwargs: dict = field(default_factory=lambda: dict(_DEFAULTS["optimizer_kwargs"]))
    weight_decay: float = _DEFAULTS["weight_decay"]
    common_batch: bool = _DEFAULTS["common_batch"]

    def __post_init__(self):
        self.optimizer_kwargs = dict(self.optimizer_kwargs)
        _check(self, "NEB settings")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EnergySettings:
    """How the NEB energy of a network is evaluated: arguments of ``ModelEnergy``."""

    batch_size: int = _DEFAULTS["batch_size"]
    augment: bool = _DEFAULTS["augment"]
    mode: str = _DEFAULTS["mode"]
    channels_last: bool = _DEFAULTS["channels_last"]
    autocast_bf16: bool = _DEFAULTS["autocast_bf16"]

    def __post_init__(self):
        _check(self, "energy settings")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AutoNEBConfig:
    """AutoNEB hyper-parameters; defaults are the paper's (the schema's ``autoneb`` section)."""

    schedule: list[Cycle] = field(default_factory=paper_schedule)
    initial_pivots: int = _DEFAULTS["initial_pivots"]
    insert_threshold: float = _DEFAULTS["insert_threshold"]
    n_between: int = _DEFAULTS["n_between"]
    max_insert_per_cycle: int = _DEFAULTS["max_insert_per_cycle"]
    max_pivots: int = _DEFAULTS["max_pivots"]
    optimizer: str = _DEFAULTS["optimizer"]
    optimizer_kwargs: dict = field(default_factory=lambda: dict(_DEFAULTS["optimizer_kwargs"]))
    weight_decay: float = _DEFAULTS["weight_decay"]
    common_batch: bool = _DEFAULTS["common_batch"]
    endpoint_losses: str = _DEFAULTS["endpoint_losses"]
    endpoint_batches: int = _DEFAULTS["endpoint_batches"]
    eval_subset: int | None = _DEFAULTS["eval_subset"]
    keep_all_pivots: bool = _DEFAULTS["keep_all_pivots"]
    climbing_cycles: int = _DEFAULTS["climbing_cycles"]

    def __post_init__(self):
        self.schedule = parse_schedule(self.schedule)
        self.optimizer_kwargs = dict(self.optimizer_kwargs)
        _check(self, "AutoNEB config")
        if self.climbing_cycles >= len(self.schedule):
            raise ConfigError(
                f"AutoNEB config: climbing_cycles={self.climbing_cycles} needs a plain cycle "
                f"before the first climbing one (the climber is the highest pivot of a relaxed "
                f"path), but the schedule has {len(self.schedule)} cycle(s)"
            )
        if self.max_pivots < self.initial_pivots:
            raise ConfigError(
                f"AutoNEB config: max_pivots={self.max_pivots} is below "
                f"initial_pivots={self.initial_pivots}"
            )

    @property
    def neb(self) -> NEBSettings:
        """The settings of every NEB step of the run."""
        return NEBSettings(
            self.optimizer, self.optimizer_kwargs, self.weight_decay, self.common_batch
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
        """Build from a JSON/YAML dict; an unknown key is an error, naming the key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"AutoNEB config: unknown key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**d)


#: the keys of the schema's ``autoneb`` section that belong to the energy, not to the algorithm
ENERGY_KEYS = tuple(f.name for f in fields(EnergySettings))

#: how the energy is evaluated, not what: vmap or the loop, NCHW or NHWC compute the same
#: function (up to float rounding, like the device). They are no part of a stage's settings,
#: so changing them reruns nothing (bf16 autocast is: it changes the numbers).
SPEED_OPTIONS = ("mode", "channels_last")


def split_autoneb(settings: dict) -> tuple[AutoNEBConfig, EnergySettings]:
    """A workflow ``autoneb`` section (all keys) as the algorithm's and the energy's views."""
    algorithm = {k: v for k, v in settings.items() if k not in ENERGY_KEYS}
    energy = {k: v for k, v in settings.items() if k in ENERGY_KEYS}
    return AutoNEBConfig.from_dict(algorithm), EnergySettings(**energy)
