"""Training recipes of the minima (paper Section 4.2) as validated plain dicts.

The keys, their limits and their meanings are the schema's ``recipe`` definition; this module
collects the built-in recipes (each model family declares its own, each built-in dataset may) and
holds the learning-rate schedule. Torch-free, so the workflow can validate its
configuration at start-up without importing torch.
"""

from __future__ import annotations

from .. import datasets, models
from ..core.errors import ConfigError
from ..models.family import HE_ET_AL_RECIPE
from . import schema

_RECIPE = schema.definition("recipe")
#: every key of a recipe, in the schema's order
RECIPE_KEYS = tuple(_RECIPE["properties"])
#: keys a recipe may leave out, with their defaults (the GPU speed options)
OPTIONAL_RECIPE_KEYS = schema.defaults("recipe")


def built_in_recipes() -> dict[str, dict]:
    """The built-in recipes by name: each model family's (the paper's He et al. for CNNs,
    ResNets and MLPs, Huang et al. for DenseNets) and each built-in dataset's own (digits: a
    short CPU recipe). Drawn from the catalogues, so a new family or dataset brings its own."""
    return {
        **{name: dict(family.recipe) for name, family in models.families().items()},
        **{name: dict(s.recipe) for name, s in datasets.builtin().items() if s.recipe is not None},
    }


#: the paper's recipe for a network of the user's own (He et al. 2016), before its overrides
USER_MODEL_RECIPE = dict(HE_ET_AL_RECIPE)

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


def recipe_for(arch: str, dataset: str | None = None, overrides: dict | None = None) -> dict:
    """The built-in recipe of a built-in ``arch`` on a built-in ``dataset`` (the dataset's own
    if it has one, else the model family's), updated with ``overrides`` and validated."""
    source = datasets.builtin().get(dataset or "")
    recipe = source.recipe if source is not None and source.recipe else None
    if recipe is None:
        recipe = built_in_recipes()[models.describe(arch)["family"]]
    return validate_recipe({**recipe, **(overrides or {})}, where=f"recipe for {arch}")


def milestone_epochs(recipe: dict) -> list[int]:
    """The epochs (0-based, counting finished epochs) at which the learning rate drops."""
    return [int(round(f * recipe["epochs"])) for f in recipe["lr_milestones"]]


def lr_at_epoch(recipe: dict, epoch: int) -> float:
    """Learning rate used during 0-based ``epoch`` (step schedule, like ``MultiStepLR``)."""
    drops = sum(1 for m in milestone_epochs(recipe) if epoch >= m)
    return recipe["lr"] * recipe["lr_gamma"] ** drops
