"""Training recipes of the minima (paper Section 4.2) as validated plain dicts.

The keys, their limits and their meanings are the schema's ``recipe`` definition; this module
holds the built-in recipes (the paper's per architecture family and a short CPU recipe for the
digits data) and the learning-rate schedule. Torch-free, so the workflow can validate its
configuration at start-up without importing torch.
"""

from __future__ import annotations

from . import schema
from .errors import ConfigError

_RECIPE = schema.definition("recipe")
#: every key of a recipe, in the schema's order
RECIPE_KEYS = tuple(_RECIPE["properties"])
#: keys a recipe may leave out, with their defaults (the GPU speed options)
OPTIONAL_RECIPE_KEYS = schema.defaults("recipe")

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
}

#: the paper's training recipes per architecture family (Section 4.2, Table B.1)
PAPER_RECIPES: dict[str, dict] = {
    "cnn": dict(_HE_ET_AL),
    "resnet": dict(_HE_ET_AL),
    "densenet": {**_HE_ET_AL, "epochs": 266, "batch_size": 64, "nesterov": True},
}

#: short CPU recipe for scikit-learn's digits (not in the paper): >= 95 % test accuracy in seconds
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
}

RECIPES: dict[str, dict] = {**PAPER_RECIPES, "digits": DIGITS_RECIPE}

#: how a network trains, not what it learns (NHWC computes the same convolutions up to float
#: rounding): no part of the minima's settings, so changing it retrains nothing
SPEED_OPTIONS = ("channels_last",)


def validate_recipe(recipe: dict, where: str = "recipe") -> dict:
    """Check a complete recipe against the schema and return a normalised copy (optional keys
    filled, floats as floats, milestones sorted, keys in the schema's order). Unknown, missing
    and out-of-range keys raise :class:`ConfigError` naming the key; ``where`` prefixes it."""
    if not isinstance(recipe, dict):
        raise ConfigError(f"{where}: a recipe must be a mapping, got {type(recipe).__name__}")
    complete = {**_RECIPE, "required": [k for k in RECIPE_KEYS if k not in OPTIONAL_RECIPE_KEYS]}
    checked = schema.validate(dict(recipe), complete, where)
    if checked["nesterov"] and checked["momentum"] <= 0:
        raise ConfigError(f"{where}: nesterov is true but momentum is 0")
    for key in ("epochs", "batch_size", "eval_batch_size"):
        checked[key] = int(checked[key])
    for key in ("lr", "momentum", "weight_decay", "lr_gamma"):
        checked[key] = float(checked[key])
    checked["lr_milestones"] = sorted(float(m) for m in checked["lr_milestones"])
    return {k: checked[k] for k in RECIPE_KEYS}


def arch_family(arch: str) -> str:
    """The built-in recipe of an architecture: ``'resnet-20' -> 'resnet'``; MLPs -> digits."""
    name = arch.lower()
    for family in ("densenet", "resnet", "cnn", "mlp"):
        if name.startswith(family):
            return "digits" if family == "mlp" else family
    raise ConfigError(
        f"architecture {arch!r}: no training recipe family (cnn, resnet, densenet, mlp)"
    )


def recipe_for(arch: str, dataset: str | None = None, overrides: dict | None = None) -> dict:
    """The built-in recipe for ``arch`` (the digits recipe for MLPs or ``dataset='digits'``),
    updated with ``overrides`` and validated."""
    family = "digits" if dataset == "digits" else arch_family(arch)
    return validate_recipe({**RECIPES[family], **(overrides or {})}, where=f"recipe for {arch}")


def milestone_epochs(recipe: dict) -> list[int]:
    """The epochs (0-based, counting finished epochs) at which the learning rate drops."""
    return [int(round(f * recipe["epochs"])) for f in recipe["lr_milestones"]]


def lr_at_epoch(recipe: dict, epoch: int) -> float:
    """Learning rate used during 0-based ``epoch`` (step schedule, like ``MultiStepLR``)."""
    drops = sum(1 for m in milestone_epochs(recipe) if epoch >= m)
    return recipe["lr"] * recipe["lr_gamma"] ** drops
