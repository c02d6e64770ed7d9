"""Training recipes of the minima (paper Section 4.2), as plain validated dicts.

Torch-free, so the workflow can validate its configuration at start-up without importing torch.
"""

from __future__ import annotations

import math

from .errors import ConfigError

#: Every key a recipe must have, with its meaning.
RECIPE_KEYS = {
    "epochs": "number of passes over the training set (int >= 1)",
    "batch_size": "mini-batch size (int >= 1)",
    "lr": "initial SGD learning rate (float > 0)",
    "momentum": "SGD momentum (0 <= float < 1)",
    "nesterov": "Nesterov momentum (bool; needs momentum > 0)",
    "weight_decay": "L2 weight decay (float >= 0)",
    "lr_milestones": "fractions of training in (0, 1] after which the lr is multiplied by lr_gamma",
    "lr_gamma": "learning-rate factor at each milestone (0 < float <= 1)",
    "augment": "use the dataset's augmentation (bool; no effect for augment='none' datasets)",
    "eval_batch_size": "batch size for evaluation and BatchNorm recomputation (int >= 1)",
    "channels_last": "GPU option: NHWC memory format for conv nets (bool; paper: not used (fp32))",
    "autocast_bf16": "GPU option: bfloat16 autocast of forward/backward; evaluation stays fp32 "
    "(bool; paper: not used (fp32))",
}

#: Keys that may be left out of a recipe (they default to ``False``).
OPTIONAL_RECIPE_KEYS = {"channels_last": False, "autocast_bf16": False}

_HE_ET_AL = {
    "epochs": 136,
    "batch_size": 128,
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 1e-4,
    "lr_milestones": [0.5, 0.75],
    "lr_gamma": 0.1,
    "augment": True,
    "eval_batch_size": 1000,
    "channels_last": False,
    "autocast_bf16": False,
}

#: The paper's training recipes per architecture family (Section 4.2, Table B.1).
PAPER_RECIPES: dict[str, dict] = {
    "cnn": dict(_HE_ET_AL),
    "resnet": dict(_HE_ET_AL),
    "densenet": {**_HE_ET_AL, "epochs": 266, "batch_size": 64, "nesterov": True},
}

#: Short CPU recipe for sklearn digits (MLPs / small CNNs reach >= 95 % test accuracy in seconds).
DIGITS_RECIPE: dict = {
    "epochs": 40,
    "batch_size": 64,
    "lr": 0.05,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 1e-4,
    "lr_milestones": [0.5, 0.75],
    "lr_gamma": 0.1,
    "augment": False,
    "eval_batch_size": 512,
    "channels_last": False,
    "autocast_bf16": False,
}

RECIPES: dict[str, dict] = {**PAPER_RECIPES, "digits": DIGITS_RECIPE}


# --------------------------------------------------------------------------------------------
# recipes


def _number(recipe: dict, key: str, kind: type, where: str):
    value = recipe[key]
    if isinstance(value, str) and kind is float:  # YAML 1.1 reads "1e-4" as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: recipe key {key!r} must be a number, got {value!r}")
    if kind is int:
        if float(value) != int(value):
            raise ConfigError(f"{where}: recipe key {key!r} must be an integer, got {value!r}")
        return int(value)
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{where}: recipe key {key!r} must be finite, got {value!r}")
    return value


def validate_recipe(recipe: dict, where: str = "recipe") -> dict:
    """Check a recipe and return a normalised copy (ints, floats, bools, sorted milestones).

    Unknown or missing keys and bad values raise :class:`ConfigError` naming the key; ``where``
    (e.g. the config file and section) prefixes the message.
    """
    if not isinstance(recipe, dict):
        raise ConfigError(f"{where}: a recipe must be a mapping, got {type(recipe).__name__}")
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown recipe key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(RECIPE_KEYS)}"
        )
    recipe = {**OPTIONAL_RECIPE_KEYS, **recipe}
    missing = [k for k in RECIPE_KEYS if k not in recipe]
    if missing:
        raise ConfigError(f"{where}: missing recipe key(s) {', '.join(map(repr, missing))}")
    out: dict = {}
    for key in ("epochs", "batch_size", "eval_batch_size"):
        out[key] = _number(recipe, key, int, where)
        if out[key] < 1:
            raise ConfigError(f"{where}: recipe key {key!r} must be >= 1, got {recipe[key]!r}")
    for key in ("lr", "momentum", "weight_decay", "lr_gamma"):
        out[key] = _number(recipe, key, float, where)
    if out["lr"] <= 0:
        raise ConfigError(f"{where}: recipe key 'lr' must be > 0, got {recipe['lr']!r}")
    if not 0 <= out["momentum"] < 1:
        raise ConfigError(
            f"{where}: recipe key 'momentum' must be in [0, 1), got {out['momentum']}"
        )
    if out["weight_decay"] < 0:
        raise ConfigError(f"{where}: recipe key 'weight_decay' must be >= 0")
    if not 0 < out["lr_gamma"] <= 1:
        raise ConfigError(
            f"{where}: recipe key 'lr_gamma' must be in (0, 1], got {out['lr_gamma']}"
        )
    for key in ("nesterov", "augment", "channels_last", "autocast_bf16"):
        if not isinstance(recipe[key], bool):
            raise ConfigError(
                f"{where}: recipe key {key!r} must be true/false, got {recipe[key]!r}"
            )
        out[key] = recipe[key]
    if out["nesterov"] and out["momentum"] <= 0:
        raise ConfigError(f"{where}: recipe key 'nesterov' is true but 'momentum' is 0")
    milestones = recipe["lr_milestones"]
    if not isinstance(milestones, (list, tuple)):
        raise ConfigError(f"{where}: recipe key 'lr_milestones' must be a list of fractions")
    fractions = []
    for m in milestones:
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < float(m) <= 1:
            raise ConfigError(
                f"{where}: recipe key 'lr_milestones' holds {m!r}; each must be a fraction "
                "of training in (0, 1]"
            )
        fractions.append(float(m))
    out["lr_milestones"] = sorted(fractions)
    return {k: out[k] for k in RECIPE_KEYS}


def arch_family(arch: str) -> str:
    """``'resnet-20' -> 'resnet'``; MLPs belong to the digits family."""
    name = arch.lower()
    for family in ("densenet", "resnet", "cnn", "mlp"):
        if name.startswith(family):
            return "digits" if family == "mlp" else family
    raise ConfigError(
        f"architecture {arch!r}: no training recipe family (cnn, resnet, densenet, mlp)"
    )


def recipe_for(arch: str, dataset: str | None = None, overrides: dict | None = None) -> dict:
    """The family default recipe for ``arch`` (the digits recipe for MLPs or ``dataset='digits'``),
    updated with ``overrides`` and validated."""
    family = "digits" if dataset == "digits" else arch_family(arch)
    recipe = dict(RECIPES[family])
    if overrides:
        unknown = sorted(set(overrides) - set(RECIPE_KEYS))
        if unknown:
            raise ConfigError(f"recipe overrides: unknown key(s) {', '.join(map(repr, unknown))}")
        recipe.update(overrides)
    return validate_recipe(recipe, where=f"recipe for {arch}")


def milestone_epochs(recipe: dict) -> list[int]:
    """The epochs (0-based, counting finished epochs) at which the learning rate drops."""
    return [int(round(f * recipe["epochs"])) for f in recipe["lr_milestones"]]


def lr_at_epoch(recipe: dict, epoch: int) -> float:
    """Learning rate used during 0-based ``epoch`` (step schedule, like ``MultiStepLR``)."""
    drops = sum(1 for m in milestone_epochs(recipe) if epoch >= m)
    return recipe["lr"] * recipe["lr_gamma"] ** drops
