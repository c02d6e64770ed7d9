"""The workflow configuration: validation, the settings of each row, and config hashes.

The Snakefile builds a :class:`WorkflowConfig` before any job is planned, so an unknown key, a
wrong type, an unknown architecture or dataset, or a budget below one fails at start-up with the
key named. Each row's settings are layered, and the layer each value came from is kept:

1. the schema's defaults -- the paper's values (``config.schema.yaml``);
2. the built-in training recipe of the row's family (:mod:`nobarriers.recipes`);
3. the config's global sections (``recipes``, ``autoneb``, ...);
4. the row's own overrides (``rows[k].autoneb``, ``rows[k].recipe``).

Every result file records the hash of the settings it was computed from (:func:`stage_hash`);
Snakemake passes a stage's settings as a rule parameter, so a changed setting reruns exactly the
jobs it affects, and a file computed under other settings is refused instead of mixed into a
table.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from pathlib import Path

import yaml

from . import schema
from .autoneb_config import split_autoneb
from .errors import ConfigError
from .model_names import check_model_name
from .recipes import RECIPES, arch_family, validate_recipe

DATASETS = tuple(schema.schema()["properties"]["rows"]["items"]["properties"]["dataset"]["enum"])

#: what each stage's results depend on (and nothing else)
STAGE_KEYS = {
    "minima": ("dataset", "arch", "recipe"),
    "paths": ("dataset", "arch", "recipe", "autoneb", "mst"),
    "evaluation": ("dataset", "arch", "recipe", "autoneb", "mst", "evaluation"),
}


class WorkflowConfig:
    """A validated workflow configuration.

    ``values`` holds every option with the defaults filled in (the Snakefile's ``config`` is
    filled in place, too); ``given`` holds what the configuration itself says, from which
    :meth:`row` layers each row's settings."""

    def __init__(self, config: dict, source: str = "config"):
        if not isinstance(config, dict):
            raise ConfigError(f"configuration {source} is not a mapping")
        self.source = source
        whole = schema.schema()
        schema.validate(config, whole, f"configuration ({source})", fill_defaults=False)
        self.given = copy.deepcopy(config)
        schema.validate(config, whole, f"configuration ({source})")
        self.values = config
        self._check_rows()

    @classmethod
    def load(cls, path: str | Path) -> WorkflowConfig:
        """Read a YAML config file and validate it."""
        path = Path(path)
        try:
            config = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read configuration {path}: {err}") from None
        return cls(config, source=str(path))

    def _error(self, text: str) -> ConfigError:
        return ConfigError(f"invalid configuration ({self.source}):\n  {text}")

    def _check_rows(self) -> None:
        seen = set()
        recipes = self.recipes()
        for k, row in enumerate(self.values["rows"]):
            try:
                check_model_name(row["arch"])
            except ConfigError as err:
                raise self._error(f"rows[{k}].arch: {err}") from None
            name = row.get("recipe")
            if name is not None and name not in recipes:
                raise self._error(
                    f"rows[{k}].recipe: unknown recipe {name!r}; defined: "
                    f"{', '.join(sorted(recipes))}"
                )
            key = (row["dataset"], row["arch"])
            if key in seen:
                raise self._error(f"rows[{k}]: {key[0]}/{key[1]} appears twice")
            seen.add(key)
        for name, recipe in recipes.items():
            validate_recipe(recipe, where=f"configuration ({self.source}): recipes.{name}")
        self.selected_rows()  # a selection that matches nothing fails at start-up, too

    # ---- rows ---------------------------------------------------------------------------------
    def recipes(self) -> dict[str, dict]:
        """Built-in recipes overlaid, key by key, with the config's ``recipes``."""
        recipes = copy.deepcopy(RECIPES)
        for name, recipe in self.given.get("recipes", {}).items():
            recipes[name] = {**recipes.get(name, {}), **recipe}
        return recipes

    def selected_rows(self) -> list[tuple[str, str]]:
        """(dataset, arch) of the rows selected by ``datasets`` / ``architectures``."""
        out = []
        for row in self.values["rows"]:
            if self.values.get("datasets") and row["dataset"] not in self.values["datasets"]:
                continue
            wanted = self.values.get("architectures")
            if wanted and row["arch"] not in wanted:
                continue
            out.append((row["dataset"], row["arch"]))
        if not out:
            raise self._error(
                "datasets / architectures: the selection matches no row of the configuration"
            )
        return out

    def rounds_folder(self) -> str:
        """``rounds/max<M>-per<P>[-similar<r>]``: the folder of Algorithm 3's rounds, named
        after the budget and the early stop, so that changing either replays the (cheap)
        selection rounds while every finished path is kept (files are keyed by pair)."""
        budget = self.values["exploration"]
        name = f"rounds/max{budget['max_paths']}-per{budget['pairs_per_round']}"
        rtol = budget["similar_saddles_rtol"]
        return name if rtol is None else f"{name}-similar{rtol:g}"

    def _given_row(self, dataset: str, arch: str) -> tuple[int, dict]:
        for k, row in enumerate(self.given["rows"]):
            if row["dataset"] == dataset and row["arch"] == arch:
                return k, row
        raise ConfigError(f"no row {dataset}/{arch} in the configuration ({self.source})")

    @functools.cache  # noqa: B019 - one object per configuration; rows are asked for often
    def row(self, dataset: str, arch: str) -> dict:
        """Everything one Table B.1 row's jobs need, with every default made explicit."""
        return self._resolve(dataset, arch)[0]

    def sources(self, dataset: str, arch: str) -> dict[str, str]:
        """Where each of the row's settings came from (for the start-up log)."""
        return self._resolve(dataset, arch)[1]

    def _resolve(self, dataset: str, arch: str) -> tuple[dict, dict]:
        k, row = self._given_row(dataset, arch)
        sources: dict[str, str] = {}
        recipe_name = row.get("recipe") or default_recipe_name(dataset, arch)
        recipe = validate_recipe(
            self.recipes()[recipe_name], where=f"configuration ({self.source}): {recipe_name}"
        )
        built_in = "the paper's recipe" if recipe_name in RECIPES else "a recipe of the config"
        if recipe_name == "digits":
            built_in = "the digits recipe (not in the paper)"
        for key in recipe:
            given = key in self.given.get("recipes", {}).get(recipe_name, {})
            sources[f"recipe.{key}"] = f"recipes.{recipe_name}" if given else built_in
        autoneb = schema.defaults("autoneb")
        for key in autoneb:
            sources[f"autoneb.{key}"] = "paper default"
        for where, layer in (("autoneb", self.given.get("autoneb", {})),
                             (f"rows[{k}].autoneb", row.get("autoneb", {}))):  # fmt: skip
            autoneb.update(layer)
            sources.update({f"autoneb.{key}": where for key in layer})
        algorithm, energy = split_autoneb(autoneb)
        resolved = {
            "dataset": dataset,
            "arch": arch,
            "seeds": [self.values["seed_base"] + i for i in range(self.values["minima_per_arch"])],
            "recipe_name": recipe_name,
            "recipe": recipe,
            "autoneb": {**algorithm.to_dict(), **energy.to_dict()},
            "mst": dict(self.values["mst"]),
            "evaluation": dict(self.values["evaluation"]),
            "exploration": dict(self.values["exploration"]),
            "overlap": dict(self.values["overlap"]),
        }
        for section in ("mst", "exploration", "evaluation", "overlap"):
            given = self.given.get(section, {})
            for key in resolved[section]:
                sources[f"{section}.{key}"] = section if key in given else "paper default"
        return resolved, sources

    def summary(self, dataset: str, arch: str) -> str:
        """One line per row for the start-up log: the settings that matter most, and where
        each came from."""
        row, src = self.row(dataset, arch), self.sources(dataset, arch)
        recipe, autoneb, budget = row["recipe"], row["autoneb"], row["exploration"]
        steps = sum(c["steps"] for c in autoneb["schedule"])
        parts = [
            f"recipe {row['recipe_name']} ({recipe['epochs']} epochs "
            f"[{src['recipe.epochs']}], batch {recipe['batch_size']} [{src['recipe.batch_size']}])",
            f"AutoNEB {len(autoneb['schedule'])} cycles / {steps} steps "
            f"[{src['autoneb.schedule']}], batch {autoneb['batch_size']} "
            f"[{src['autoneb.batch_size']}], eval_subset {autoneb['eval_subset']} "
            f"[{src['autoneb.eval_subset']}]",
            f"budget {budget['max_paths']} paths [{src['exploration.max_paths']}], "
            f"{budget['pairs_per_round']} per round [{src['exploration.pairs_per_round']}]",
        ]
        return f"{dataset}/{arch}: " + "; ".join(parts)


def default_recipe_name(dataset: str, arch: str) -> str:
    """The built-in recipe a row uses unless it names one: its family's, digits for digits."""
    return "digits" if dataset == "digits" else arch_family(arch)


def stage_settings(resolved_row: dict, stage: str) -> dict:
    """The part of a resolved row that determines a stage's results (and nothing else)."""
    if stage not in STAGE_KEYS:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGE_KEYS)}")
    return {k: resolved_row[k] for k in STAGE_KEYS[stage]}


def stage_hash(settings: dict, stage: str) -> str:
    """Hash (12 hex digits) of the settings that determine a stage's results, from a resolved
    row or from a stage's settings.

    ``minima``: dataset, architecture, recipe. ``paths``: + AutoNEB settings and the data of the
    MST weights. ``evaluation``: + evaluation settings. The exploration budget is deliberately not
    part of any hash: raising it extends the AutoNEB loop without invalidating finished paths.
    """
    text = json.dumps(stage_settings(settings, stage), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
