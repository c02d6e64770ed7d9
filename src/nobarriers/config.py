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
import difflib
import functools
import hashlib
import json
import math
from pathlib import Path

import yaml

from . import schema
from .autoneb_config import SPEED_OPTIONS as AUTONEB_SPEED
from .autoneb_config import split_autoneb
from .errors import ConfigError
from .model_names import check_model_name
from .recipes import RECIPES, arch_family, validate_recipe
from .recipes import SPEED_OPTIONS as RECIPE_SPEED

DATASETS = tuple(schema.schema()["properties"]["rows"]["items"]["properties"]["dataset"]["enum"])

#: what each stage's results depend on (and nothing else)
STAGE_KEYS = {
    "minima": ("dataset", "arch", "recipe"),
    "paths": ("dataset", "arch", "recipe", "autoneb", "mst"),
    "evaluation": ("dataset", "arch", "recipe", "autoneb", "mst", "evaluation"),
    # the aligned MST paths and what reports them (alignment)
    "aligned": ("dataset", "arch", "recipe", "autoneb", "mst", "alignment"),
    "report": ("dataset", "arch", "recipe", "autoneb", "mst", "evaluation", "alignment"),
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
        schema.validate(config, whole, f"configuration ({source})", defaults=False)
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
        if self.values["gpu_model"] is not None and not self.values["gpu_jobs"]:
            raise self._error(
                f"gpu_model: {self.values['gpu_model']!r} names a GPU type, but gpu_jobs is "
                "false: the GPU jobs request no GPU; drop gpu_model or set gpu_jobs: true"
            )

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

    def job_resources(self, dataset: str, arch: str, rule: str) -> dict:
        """``{"runtime", "mem_mb"}`` of a heavy rule's jobs of a row: the schema's defaults,
        then ``resources.<rule>``, ``resources.families.<family>.<rule>`` and
        ``rows[k].resources.<rule>``, key by key."""
        from .model_names import describe

        section = self.values["resources"]
        family = describe(arch)["family"]
        _, row = self._given_row(dataset, arch)
        out = dict(schema.schema()["properties"]["resources"]["properties"][rule]["default"])
        out.update(section[rule])
        out.update(section["families"].get(family, {}).get(rule, {}))
        out.update(row.get("resources", {}).get(rule, {}))
        return out

    def runtime_minutes(self, dataset: str, arch: str, rule: str, attempt: int) -> int:
        """The time limit of an attempt: the base runtime times ``retry_growth`` per retry,
        never above ``resources.max_runtime``."""
        section = self.values["resources"]
        base = self.job_resources(dataset, arch, rule)["runtime"]
        minutes = math.ceil(base * section["retry_growth"] ** (int(attempt) - 1))
        cap = section["max_runtime"]
        return minutes if cap is None else min(minutes, int(cap))

    def check_runtime_fits(self, dataset: str, arch: str, longest_cycle_s: float, source) -> None:
        """A runtime no AutoNEB job can finish in is refused at start-up: a job resumes after
        its last finished cycle, so its limit must hold at least the longest cycle measured so
        far for the row (``source``: the file that recorded it)."""
        minutes = self.runtime_minutes(dataset, arch, "autoneb_path", attempt=1)
        if 60 * minutes < longest_cycle_s:
            cap = self.values["resources"]["max_runtime"]
            key = (
                "resources.max_runtime"
                if cap is not None and cap <= minutes
                else ("resources.autoneb_path.runtime (or its families./rows[k]. override)")
            )
            raise self._error(
                f"{key}: AutoNEB jobs of {dataset}/{arch} get {minutes} minutes, but one cycle "
                f"took {longest_cycle_s / 60:.1f} minutes ({source}); a job resumes only after "
                "a finished cycle, so it could never progress. Raise the limit"
            )

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
        built_in = "paper recipe" if recipe_name in RECIPES else f"{self.source}: recipes"
        if recipe_name == "digits":
            built_in = "digits recipe, not in the paper"
        for key in recipe:
            given = key in self.given.get("recipes", {}).get(recipe_name, {})
            sources[f"recipe.{key}"] = (
                f"{self.source}: recipes.{recipe_name}" if given else built_in
            )
        autoneb = schema.defaults("autoneb")
        for key in autoneb:
            sources[f"autoneb.{key}"] = "paper default"
        layers = [
            (f"{self.source}: autoneb", self.given.get("autoneb", {})),
            (f"{self.source}: rows[{k}].autoneb", row.get("autoneb", {})),
        ]
        for where, layer in layers:
            autoneb.update(layer)
            sources.update({f"autoneb.{key}": where for key in layer})
        try:
            algorithm, energy = split_autoneb(autoneb)
        except ConfigError as err:
            raise self._error(f"rows[{k}] ({dataset}/{arch}) autoneb: {err}") from None
        resolved = {
            "dataset": dataset,
            "arch": arch,
            "seeds": [self.values["seed_base"] + i for i in range(self.values["minima_per_arch"])],
            "recipe_name": recipe_name,
            "recipe": recipe,
            "autoneb": {**algorithm.to_dict(), **energy.to_dict()},
            "mst": dict(self.values["mst"]),
            "alignment": row.get("alignment", self.values["alignment"]),
            "evaluation": dict(self.values["evaluation"]),
            "exploration": dict(self.values["exploration"]),
            "overlap": dict(self.values["overlap"]),
        }
        for section in ("mst", "exploration", "evaluation", "overlap"):
            given = self.given.get(section, {})
            for key in resolved[section]:
                where = f"{self.source}: {section}"
                sources[f"{section}.{key}"] = where if key in given else "paper default"
        return resolved, sources

    def summary(self, dataset: str, arch: str) -> str:
        """One line per row for the start-up log: the settings that matter most, and where
        each came from (``paper default``, a recipe, or a section of the config)."""
        row, src = self.row(dataset, arch), self.sources(dataset, arch)
        recipe, autoneb, budget = row["recipe"], row["autoneb"], row["exploration"]
        steps = sum(c["steps"] for c in autoneb["schedule"])
        parts = [
            f"recipe {row['recipe_name']}: {recipe['epochs']} epochs [{src['recipe.epochs']}], "
            f"batch {recipe['batch_size']} [{src['recipe.batch_size']}]",
            f"AutoNEB {len(autoneb['schedule'])} cycles / {steps} steps "
            f"[{src['autoneb.schedule']}], batch {autoneb['batch_size']} "
            f"[{src['autoneb.batch_size']}], eval_subset {autoneb['eval_subset']} "
            f"[{src['autoneb.eval_subset']}]",
            f"budget {budget['max_paths']} paths [{src['exploration.max_paths']}], "
            f"{budget['pairs_per_round']} per round [{src['exploration.pairs_per_round']}], "
            f"early stop {budget['similar_saddles_rtol']} "
            f"[{src['exploration.similar_saddles_rtol']}]",
        ]
        extensions = [  # the options beyond the paper, named when they are on
            f"climbing_cycles {autoneb['climbing_cycles']}" if autoneb["climbing_cycles"] else "",
            f"alignment {row['alignment']}" if row["alignment"] != "none" else "",
            f"ensembles {row['evaluation']['ensemble_sizes']}"
            if row["evaluation"]["ensemble_sizes"]
            else "",
        ]
        if any(extensions):
            parts.append("beyond the paper: " + ", ".join(e for e in extensions if e))
        return f"{dataset}/{arch}: " + "; ".join(parts)


#: resources through which a job requests GPUs from SLURM
GPU_RESOURCES = ("gpu", "gpu_model", "gres")
HEAVY_RULES = ("train_minimum", "autoneb_path", "aligned_path", "evaluate_path", "slice_figure")
#: the resources a profile may set: Snakemake's standard ones and those the SLURM executor
#: plugin (2.x) reads; anything else would be ignored without a word
KNOWN_RESOURCES = frozenset(
    {"runtime", "walltime", "mem", "mem_mb", "mem_mib", "mem_gb", "disk", "disk_mb", "disk_mib"}
    | {"tmpdir", "threads", "_cores", "_nodes"}
    | {"slurm_partition", "slurm_account", "slurm_extra", "slurm_cluster", "clusters", "cluster"}
    | {"constraint", "qos", "nodes", "tasks", "tasks_per_node", "tasks_per_gpu", "mpi"}
    | {"cpus_per_task", "cpus_per_gpu", "mem_mb_per_cpu", *GPU_RESOURCES}
)


def _resource_items(resources) -> dict:
    """``{name: value as given}`` of Snakemake's resource settings (or of a plain dict)."""
    if resources is None:
        return {}
    parsed = getattr(resources, "parsed", resources)
    try:
        items = dict(parsed)
    except (TypeError, ValueError):
        return {}
    return {name: getattr(value, "raw", value) for name, value in items.items()}


def check_cluster_settings(
    config: dict, overwrite_resources=None, default_resources=None, rules=None
) -> None:
    """At start-up, the profile's resources (``default-resources``, ``set-resources``):

    * a resource name neither Snakemake nor the SLURM plugin knows (``slurm_partiton``) or a
      rule name the workflow does not have is refused, naming it, instead of being ignored;
    * a GPU requested through the profile is refused: with ``gpu_jobs: false`` the SLURM plugin
      would still send ``--gpus=<model>:1`` for a ``gpu_model``, and beside the workflow's own
      request both ``--gres`` and ``--gpus`` could reach sbatch.
    """
    sources = {"default-resources": _resource_items(default_resources)}
    for rule, resources in dict(overwrite_resources or {}).items():
        if rules is not None and rule not in rules:
            near = difflib.get_close_matches(rule, rules, n=1)
            raise ConfigError(
                f"set-resources (profile or command line): no rule {rule!r} in this workflow"
                + (f" (did you mean {near[0]!r}?)" if near else "")
            )
        sources[f"set-resources: {rule}"] = _resource_items(resources)
    for where, resources in sources.items():
        for key in resources:
            if key not in KNOWN_RESOURCES:
                near = difflib.get_close_matches(key, KNOWN_RESOURCES, n=1)
                raise ConfigError(
                    f"{where} (profile or command line): unknown resource {key!r}; neither "
                    "Snakemake nor the SLURM executor plugin reads it"
                    + (f" (did you mean {near[0]!r}?)" if near else "")
                )
        rule = where.split(": ", 1)[-1]
        if rule != "default-resources" and rule not in HEAVY_RULES:
            continue
        for key in GPU_RESOURCES:
            value = resources.get(key)
            if value in (None, "", 0, "0"):
                continue
            if not config["gpu_jobs"]:
                raise ConfigError(
                    f"profile {where}: {key}={value!r} requests a GPU while the workflow's "
                    "gpu_jobs is false; remove it from the profile"
                )
            raise ConfigError(
                f"profile {where}: {key}={value!r}: the workflow requests the GPU of its jobs "
                "itself (gpu_jobs, gpu_request, gpu_model in the config); remove it from the "
                "profile, or both --gpus and --gres may reach sbatch"
            )


def default_recipe_name(dataset: str, arch: str) -> str:
    """The built-in recipe a row uses unless it names one: its family's, digits for digits."""
    return "digits" if dataset == "digits" else arch_family(arch)


def stage_settings(resolved_row: dict, stage: str) -> dict:
    """The part of a resolved row that determines a stage's results (and nothing else): the
    speed options (:func:`speed_options`) are left out."""
    if stage not in STAGE_KEYS:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGE_KEYS)}")
    out = {k: resolved_row[k] for k in STAGE_KEYS[stage]}
    for section, names in (("recipe", RECIPE_SPEED), ("autoneb", AUTONEB_SPEED)):
        if section in out:
            out[section] = {k: v for k, v in out[section].items() if k not in names}
    return out


def speed_options(resolved_row: dict) -> dict:
    """``{"recipe": {...}, "autoneb": {...}}``: the row's settings that change how fast a job
    runs but not what it computes; jobs take them from the config, never from rule params."""
    return {
        "recipe": {k: resolved_row["recipe"][k] for k in RECIPE_SPEED},
        "autoneb": {k: resolved_row["autoneb"][k] for k in AUTONEB_SPEED},
    }


def stage_hash(settings: dict, stage: str) -> str:
    """Hash (12 hex digits) of the settings that determine a stage's results, from a resolved
    row or from a stage's settings.

    ``minima``: dataset, architecture, recipe. ``paths``: + AutoNEB settings and the data of the
    MST weights. ``evaluation``: + evaluation settings. The exploration budget is deliberately not
    part of any hash: raising it extends the AutoNEB loop without invalidating finished paths.
    """
    text = json.dumps(stage_settings(settings, stage), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
