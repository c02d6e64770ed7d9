"""Workflow configuration: schema validation with defaults, row resolution, and config hashes.

The Snakefile calls :func:`load_config` before any job is planned, so an unknown key, a wrong type,
an unknown architecture or dataset, or a budget below one fails at start-up with the key named.

Every result file records the hash of the settings it was computed from (:func:`stage_hash`);
Snakemake passes the hash as a rule parameter, so a changed setting reruns exactly the jobs it
affects, and a file computed under other settings is refused instead of mixed into a table.
"""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from .errors import ConfigError

DATASETS = ("cifar10", "cifar100", "digits")


def load_schema() -> dict:
    text = resources.files("nobarriers").joinpath("config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _extend_with_defaults(validator_class):
    """A validator that also fills in ``default`` values of missing properties."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _extend_with_defaults(jsonschema.Draft7Validator)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in error.absolute_path]
    return ".".join(parts).replace(".[", "[") or "<top level>"


_JSON_TYPES = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None)}


def _coerce_command_line_strings(config: dict, validator) -> None:
    """Turn strings into the numbers/booleans/nulls the schema expects, in place.

    ``snakemake --config exploration='{max_paths: 20}'`` parses nested values with YAML's
    BaseLoader, so every nested scalar arrives as a string; top-level values are parsed already.
    """
    for _ in range(100):
        changed = False
        for error in validator.iter_errors(config):
            if error.validator != "type" or not isinstance(error.instance, str):
                continue
            wanted = (
                error.validator_value
                if isinstance(error.validator_value, list)
                else [error.validator_value]
            )
            try:
                value = yaml.safe_load(error.instance)
            except yaml.YAMLError:
                continue
            if not any(
                isinstance(value, _JSON_TYPES[t])
                and not (t != "boolean" and isinstance(value, bool))
                for t in wanted
                if t in _JSON_TYPES
            ):
                continue
            *parents, last = error.absolute_path
            target = config
            for key in parents:
                target = target[key]
            target[last] = value
            changed = True
        if not changed:
            return


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate ``config`` against the schema, fill defaults in place, check names; return it."""
    schema = load_schema()
    validator = _DefaultFillingValidator(schema)
    _coerce_command_line_strings(config, validator)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {_key_path(e)}: {e.message}" for e in errors[:10]]
        raise ConfigError(f"invalid configuration ({source}):\n" + "\n".join(lines))
    _check_names(config, source)
    return config


def _check_names(config: dict, source: str) -> None:
    from .model_names import check_model_name

    seen = set()
    for k, row in enumerate(config["rows"]):
        if row["dataset"] not in DATASETS:
            raise ConfigError(
                f"invalid configuration ({source}): rows[{k}].dataset: unknown dataset "
                f"{row['dataset']!r}; valid: {', '.join(DATASETS)}"
            )
        try:
            check_model_name(row["arch"])
        except ConfigError as err:
            raise ConfigError(f"invalid configuration ({source}): rows[{k}].arch: {err}") from None
        recipe = row.get("recipe")
        if recipe is not None and recipe not in all_recipes(config):
            raise ConfigError(
                f"invalid configuration ({source}): rows[{k}].recipe: unknown recipe {recipe!r}; "
                f"defined: {', '.join(sorted(all_recipes(config)))}"
            )
        key = (row["dataset"], row["arch"])
        if key in seen:
            raise ConfigError(
                f"invalid configuration ({source}): rows[{k}]: {key[0]}/{key[1]} appears twice"
            )
        seen.add(key)


def load_config(path: str | Path) -> dict:
    """Read a YAML config file and validate it (defaults filled in)."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read configuration {path}: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"configuration {path} is not a mapping")
    return validate_config(config, source=str(path))


def all_recipes(config: dict) -> dict:
    """Built-in recipes (the paper's and the CPU digits recipe) overridden by the config's."""
    from .recipes import RECIPES

    recipes = copy.deepcopy(RECIPES)
    for name, recipe in config.get("recipes", {}).items():
        recipes[name] = {**recipes.get(name, {}), **recipe}
    return recipes


def default_recipe_name(dataset: str, arch: str) -> str:
    from .recipes import arch_family

    return "digits" if dataset == "digits" else arch_family(arch)


def expand_schedule(schedule: list[dict]) -> list[dict]:
    """``[{repeat: 4, steps: 1000, lr: 0.1}, ...]`` -> one ``{steps, lr}`` entry per cycle."""
    cycles = []
    for item in schedule:
        cycles += [{"steps": item["steps"], "lr": item["lr"]}] * item.get("repeat", 1)
    return cycles


def resolve_row(config: dict, dataset: str, arch: str) -> dict:
    """Everything one Table B.1 row's jobs need, with every default made explicit."""
    from .autoneb_config import AutoNEBConfig
    from .recipes import validate_recipe

    rows = [r for r in config["rows"] if r["dataset"] == dataset and r["arch"] == arch]
    if not rows:
        raise ConfigError(f"no row {dataset}/{arch} in the configuration")
    row = rows[0]
    recipe_name = row.get("recipe") or default_recipe_name(dataset, arch)
    recipes = all_recipes(config)
    if recipe_name not in recipes:
        raise ConfigError(f"row {dataset}/{arch}: no recipe {recipe_name!r} (and no default)")
    recipe = validate_recipe(recipes[recipe_name], where=f"recipes.{recipe_name}")
    autoneb = {**config.get("autoneb", {}), **row.get("autoneb", {})}
    if "schedule" in autoneb:
        autoneb["schedule"] = expand_schedule(autoneb["schedule"])
    autoneb_full = AutoNEBConfig.from_dict(autoneb).to_dict()
    n = config["minima_per_arch"]
    return {
        "dataset": dataset,
        "arch": arch,
        "seeds": [config["seed_base"] + k for k in range(n)],
        "recipe_name": recipe_name,
        "recipe": recipe,
        "autoneb": autoneb_full,
        "evaluation": dict(config["evaluation"]),
        "exploration": dict(config["exploration"]),
        "overlap": dict(config["overlap"]),
    }


STAGE_KEYS = {
    "minima": ("dataset", "arch", "recipe"),
    "paths": ("dataset", "arch", "recipe", "autoneb"),
    "evaluation": ("dataset", "arch", "recipe", "autoneb", "evaluation"),
}


def stage_settings(resolved_row: dict, stage: str) -> dict:
    """The part of a resolved row that determines a stage's results (and nothing else)."""
    if stage not in STAGE_KEYS:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGE_KEYS)}")
    return {k: resolved_row[k] for k in STAGE_KEYS[stage]}


def stage_hash(resolved_row: dict, stage: str) -> str:
    """Hash of the settings that determine a stage's results (12 hex digits).

    ``minima``: dataset, architecture, recipe. ``paths``: + AutoNEB settings. ``evaluation``:
    + evaluation settings. The exploration budget is deliberately not part of any hash: raising
    it extends the AutoNEB loop without invalidating finished paths.
    """
    text = json.dumps(stage_settings(resolved_row, stage), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def selected_rows(config: dict) -> list[tuple[str, str]]:
    """(dataset, arch) of the rows selected by ``datasets`` / ``architectures``."""
    out = []
    for row in config["rows"]:
        if config.get("datasets") and row["dataset"] not in config["datasets"]:
            continue
        if config.get("architectures") and row["arch"] not in config["architectures"]:
            continue
        out.append((row["dataset"], row["arch"]))
    if not out:
        raise ConfigError(
            "the selection (datasets / architectures) matches no row of the configuration"
        )
    return out
