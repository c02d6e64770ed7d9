"""The workflow configuration: validation, the settings of each row, and config hashes.

The Snakefile builds a :class:`WorkflowConfig` before any job is planned, so an unknown key, a
wrong type, an unknown architecture or dataset, or a budget below one fails at start-up with the
key named. Each row's settings are layered, and the layer each value came from is kept:

1. the schema's defaults -- the paper's values (``config.schema.yaml``);
2. the row's base training recipe: the dataset's own (digits), else the model family's
   (:mod:`nobarriers.settings.recipes`; a user's network: the paper's He et al.);
3. the config's global sections (``recipes``, ``autoneb``, ...) and a user network's ``recipe``;
4. the row's own overrides (``rows[k].autoneb``, ``rows[k].recipe``).

A row is a dataset (built in, or one of the config's ``datasets``) times a model (a built-in
name, or one of the config's ``models``). What identifies a user's network or data -- its import
path and keyword arguments, its file's checksum -- and the checksums of minima imported from
elsewhere are part of the row's settings, and so of every config hash; built-in rows are
identified by their names alone.

Every result file records the hash of the settings it was computed from (:func:`stage_hash`);
Snakemake passes a stage's settings as a rule parameter, so a changed setting reruns exactly the
jobs it affects, and a file computed under other settings is refused instead of mixed into a
table.
"""

from __future__ import annotations

import copy
import difflib
import functools
import glob
import hashlib
import json
import math
from pathlib import Path

import yaml

from .. import datasets, models
from ..core.checksums import file_digest
from ..core.errors import ConfigError, NoBarriersError
from . import schema
from .autoneb_config import SPEED_OPTIONS as AUTONEB_SPEED
from .autoneb_config import split_autoneb
from .recipes import SPEED_OPTIONS as RECIPE_SPEED
from .recipes import USER_MODEL_RECIPE, built_in_recipes, validate_recipe
from .versions import versions_of

#: what identifies a row beyond its names, present only where it applies: a user's network
#: (``model``: import path and kwargs), a user's dataset (``data``: its identity) and minima
#: trained elsewhere (``imported_minima``: the checksums of their files)
IDENTITY_KEYS = ("model", "data", "imported_minima")
_MINIMA = ("dataset", "arch", *IDENTITY_KEYS, "recipe")
#: what each stage's results depend on (and nothing else; identity keys where a row has them)
STAGE_KEYS = {
    "minima": _MINIMA,
    "paths": (*_MINIMA, "autoneb", "mst"),
    "evaluation": (*_MINIMA, "autoneb", "mst", "evaluation"),
    # the aligned MST paths and what reports them (alignment)
    "aligned": (*_MINIMA, "autoneb", "mst", "alignment"),
    # parametric curves between the same minima (curves.families)
    "curves": (*_MINIMA, "curves"),
    # the table: which minima, how many paths (Algorithm 3's budget and early stop), the overlap
    "report": (
        *_MINIMA,
        "seeds",
        "autoneb",
        "mst",
        "evaluation",
        "alignment",
        "exploration",
        "overlap",
        "comparisons",
        "curves",
    ),
}
#: settings that cannot change a result -- where and how jobs run -- so they are in no hash and
#: no rule's params (changing them reruns nothing); ``figures`` change the figures only, through
#: their rules' params. tests/test_config.py checks that every other key changes a hash.
RUNTIME_KEYS = (
    "results_dir", "results_dir_adopt", "data_dir", "dataset_checksums", "local_copies",
    "device", "select", "gpu_jobs", "gpu_request", "gpu_model", "partitions",
    "hdf5_file_locking", "resources", "threads",
)  # fmt: skip


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
        self._check_definitions()
        self._check_rows()

    @classmethod
    def load(cls, path: str | Path) -> WorkflowConfig:
        """Read a YAML config file and validate it."""
        path = Path(path)
        try:
            config = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read configuration {path}: {err}") from None
        return cls(config, source=str(path))

    def _error(self, text: str) -> ConfigError:
        return ConfigError(f"invalid configuration ({self.source}):\n  {text}")

    def _check_definitions(self) -> None:
        """The config's own datasets and networks: no built-in name taken, one data source."""
        for name, spec in self.values["datasets"].items():
            if name in datasets.builtin():
                raise self._error(f"datasets.{name}: {name!r} is a built-in dataset; rename yours")
            kinds = [k for k in ("npz", "load", "subset_of") if k in spec]
            if len(kinds) != 1:
                raise self._error(
                    f"datasets.{name}: give exactly one of npz (a file), load (a function) and "
                    "subset_of (another dataset)"
                )
            if "load" not in spec and spec.get("kwargs"):
                raise self._error(f"datasets.{name}.kwargs: only a load function takes kwargs")
            if ("subset_of" in spec) != ("n_train" in spec):
                raise self._error(f"datasets.{name}: subset_of and n_train go together")
            if "subset_of" not in spec:
                for key in ("n_test", "seed"):
                    if spec.get(key) not in (None, 0):
                        raise self._error(f"datasets.{name}.{key}: only a subset_of has it")
        for name, spec in self.values["models"].items():
            try:
                models.describe(name)
            except ConfigError:
                pass
            else:
                raise self._error(
                    f"models.{name}: {name!r} is a built-in model name; rename your network"
                )
            if "recipe" in spec:
                where = f"configuration ({self.source}): models.{name}.recipe"
                validate_recipe({**USER_MODEL_RECIPE, **spec["recipe"]}, where=where)

    def _check_rows(self) -> None:
        seen = set()
        recipes = self.recipes()
        for k, row in enumerate(self.values["rows"]):
            try:
                self.dataset_source(row["dataset"])
            except ConfigError as err:
                raise self._error(f"rows[{k}].dataset: {err}") from None
            if row["arch"] not in self.values["models"]:
                try:
                    models.check_model_name(row["arch"])
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
            if "minima" in row:
                self._imported_files(k, row)
        for name, recipe in recipes.items():
            validate_recipe(recipe, where=f"configuration ({self.source}): recipes.{name}")
        families = set(models.families()) | set(self.values["models"])
        for family in self.values["resources"]["families"]:
            if family not in families:
                raise self._error(
                    f"resources.families.{family}: no model family or network of the config "
                    f"is called {family!r}; known: {', '.join(sorted(families))}"
                )
        folder = self.values["results_dir"]
        if not folder.strip():
            raise self._error(f"results_dir: {folder!r} is empty; name a folder, e.g. results")
        if Path(folder).resolve() == Path("/"):
            raise self._error(
                f"results_dir: {folder!r} is the file system's root; name a folder, e.g. results"
            )
        sample = self.values["comparisons"]["sample_pairs"]
        for k, row in enumerate(self.values["rows"] if sample else []):
            n = self.values["minima_per_arch"]
            if "minima" in row:
                n = len(self._imported_files(k, row))
            if sample > (n - 1) * (n - 2) // 2:
                raise self._error(
                    f"comparisons.sample_pairs: {sample} pairs off the MST asked for, but "
                    f"{row['dataset']}/{row['arch']}'s {n} minima have only "
                    f"{(n - 1) * (n - 2) // 2} (all {n * (n - 1) // 2} pairs minus the "
                    f"{n - 1} MST edges)"
                )
        self.selected_rows()  # a selection that matches nothing fails at start-up, too
        if self.values["gpu_model"] is not None and not self.values["gpu_jobs"]:
            raise self._error(
                f"gpu_model: {self.values['gpu_model']!r} names a GPU type, but gpu_jobs is "
                "false: the GPU jobs request no GPU; drop gpu_model or set gpu_jobs: true"
            )

    # ---- the catalogue ------------------------------------------------------------------------
    def dataset_source(self, name: str):
        """The dataset a row names: built in, or defined in the config's ``datasets``."""
        return datasets.dataset_source(name, self.values["datasets"])

    def model_spec(self, arch: str) -> dict | None:
        """``{"build", "kwargs"}`` of a user's network, ``None`` for a built-in model."""
        spec = self.values["models"].get(arch)
        return None if spec is None else {"build": spec["build"], "kwargs": spec["kwargs"]}

    def dataset_identity(self, name: str) -> dict:
        """What identifies one of the config's datasets (``{"dataset": name, ...}``: its file's
        checksum, its loader, its options); ``{}`` for a built-in dataset, named by its name."""
        if name not in self.values["datasets"]:
            return {}
        try:
            return {"dataset": name, **self.dataset_source(name).identity()}
        except NoBarriersError as err:
            raise self._error(str(err)) from None

    def family(self, arch: str) -> str:
        """What a row's resources and figures are grouped by: the built-in family's name, or a
        user network's own name."""
        return arch if arch in self.values["models"] else models.describe(arch)["family"]

    def _imported_files(self, k: int, row: dict) -> list[str]:
        pattern = row["minima"]["files"]
        files = sorted(glob.glob(pattern))
        if len(files) < 2:
            raise self._error(
                f"rows[{k}].minima.files: {pattern!r} matches {len(files)} file(s) (from the "
                f"working directory {Path.cwd()}); a landscape needs at least two minima"
            )
        return files

    def imported_files(self, dataset: str, arch: str) -> list[str] | None:
        """The files of a row whose minima were trained elsewhere (sorted; minimum k has seed
        ``seed_base + k``), ``None`` for a row that trains its minima."""
        k, row = self._given_row(dataset, arch)
        return self._imported_files(k, row) if "minima" in row else None

    # ---- rows ---------------------------------------------------------------------------------
    def recipes(self) -> dict[str, dict]:
        """Built-in recipes overlaid, key by key, with the config's ``recipes``."""
        recipes = built_in_recipes()
        for name, recipe in self.given.get("recipes", {}).items():
            recipes[name] = {**recipes.get(name, {}), **recipe}
        return recipes

    def selected_rows(self) -> list[tuple[str, str]]:
        """(dataset, arch) of the rows selected by ``select.datasets`` / ``.architectures``."""
        wanted = self.values["select"]
        out = []
        for row in self.values["rows"]:
            if wanted["datasets"] and row["dataset"] not in wanted["datasets"]:
                continue
            if wanted["architectures"] and row["arch"] not in wanted["architectures"]:
                continue
            out.append((row["dataset"], row["arch"]))
        if not out:
            raise self._error(
                "select.datasets / select.architectures: the selection matches no row of the "
                "configuration"
            )
        return out

    def job_resources(self, dataset: str, arch: str, rule: str) -> dict:
        """``{"runtime", "mem_mb"}`` of a heavy rule's jobs of a row: the schema's defaults,
        then ``resources.<rule>``, ``resources.families.<family>.<rule>`` and
        ``rows[k].resources.<rule>``, key by key."""
        section = self.values["resources"]
        _, row = self._given_row(dataset, arch)
        out = schema.node("properties", "resources", "properties", rule, "default")
        out.update(section[rule])
        out.update(section["families"].get(self.family(arch), {}).get(rule, {}))
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

    def rows_of_rule(self, rule: str) -> list[tuple[str, str]]:
        """The selected rows that have jobs of a heavy rule: training or import by the row, the
        extensions' rules where the row has them on."""
        has = {
            "train_minimum": lambda d, a, row: self.imported_files(d, a) is None,
            "import_minimum": lambda d, a, row: self.imported_files(d, a) is not None,
            "aligned_path": lambda d, a, row: row["alignment"] != "none",
            "repeat_path": lambda d, a, row: row["comparisons"]["autoneb_repeats"] > 1,
            "curve": lambda d, a, row: bool(row["curves"]["families"]),
            "independent_ensembles": lambda d, a, row: bool(row["evaluation"]["ensemble_sizes"]),
        }.get(rule, lambda d, a, row: True)
        return [(d, a) for d, a in self.selected_rows() if has(d, a, self.row(d, a))]

    def rule_limits(self, rule: str, dataset: str, arch: str, attempt: int = 1,
                    arrays: bool = False) -> dict:  # fmt: skip
        """``{"runtime", "mem_mb"}`` of one job of a heavy rule (:data:`RESOURCES_OF_RULE`:
        which ``resources`` section each comes from). ``arrays``: the rule's jobs go to SLURM as
        job arrays, and an array runs every task with the time and memory of its first job, so
        each job asks for the most that any selected row's job of the rule asks for."""
        runtime_of, memory_of = RESOURCES_OF_RULE[rule]
        rows = (self.rows_of_rule(rule) or [(dataset, arch)]) if arrays else [(dataset, arch)]
        return {
            "runtime": max(self.runtime_minutes(*row, runtime_of, attempt) for row in rows),
            "mem_mb": max(int(self.job_resources(*row, memory_of)["mem_mb"]) for row in rows),
        }

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
        """``rounds/max<M>-per<P|all>[-similar<r>|-barriers<r>]``: the folder of Algorithm 3's
        rounds, named after the budget and the early stop, so that changing either replays the
        (cheap) selection rounds while every finished path is kept (files are keyed by pair)."""
        budget = self.values["exploration"]
        per = budget["pairs_per_round"] or "all"
        name = f"rounds/max{budget['max_paths']}-per{per}"
        rtol = budget["similar_saddles_rtol"]
        if rtol is None:
            return name
        scale = "similar" if budget["similar_saddles_scale"] == "loss" else "barriers"
        return f"{name}-{scale}{rtol:g}"

    def _given_row(self, dataset: str, arch: str) -> tuple[int, dict]:
        for k, row in enumerate(self.given["rows"]):
            if row["dataset"] == dataset and row["arch"] == arch:
                return k, row
        raise ConfigError(f"no row {dataset}/{arch} in the configuration ({self.source})")

    @functools.cache  # noqa: B019 - one object per configuration; rows are asked for often
    def row(self, dataset: str, arch: str) -> dict:
        """Everything one Table B.1 row's jobs need, with every default made explicit."""
        resolved = dict(self._resolve(dataset, arch)[0])
        resolved.update(self._identity(dataset, arch))
        return resolved

    def sources(self, dataset: str, arch: str) -> dict[str, str]:
        """Where each of the row's settings came from (for the start-up log)."""
        return self._resolve(dataset, arch)[1]

    def speed(self, dataset: str, arch: str) -> dict:
        """The row's speed options (:func:`speed_options`), without reading any file."""
        return speed_options(self._resolve(dataset, arch)[0])

    def default_recipe_name(self, dataset: str, arch: str) -> str:
        """The recipe a row uses unless it names one: the dataset's own (digits), else the model
        family's; a user's network: its own (the paper's, with its ``recipe`` overrides)."""
        source = self.dataset_source(dataset)
        if arch in self.values["models"]:
            if "recipe" in self.values["models"][arch] or source.recipe is None:
                return arch
        if source.recipe is not None:
            return source.name
        return models.describe(arch)["family"]

    def _base_recipe(self, name: str, dataset: str) -> tuple[dict, str]:
        """A recipe by name and where it came from: a built-in or ``recipes.<name>`` of the
        config, or a user network's (its base -- the dataset's own recipe or the paper's --
        with the network's ``recipe`` overrides)."""
        recipes = self.recipes()
        if name in self.values["models"] and name not in recipes:
            source = self.dataset_source(dataset)
            base = dict(source.recipe) if source.recipe is not None else dict(USER_MODEL_RECIPE)
            return {**base, **self.values["models"][name].get("recipe", {})}, "models"
        return recipes[name], "recipes"

    def _resolve(self, dataset: str, arch: str) -> tuple[dict, dict]:
        k, row = self._given_row(dataset, arch)
        sources: dict[str, str] = {}
        recipe_name = row.get("recipe") or self.default_recipe_name(dataset, arch)
        recipe, kind = self._base_recipe(recipe_name, dataset)
        recipe = validate_recipe(recipe, where=f"configuration ({self.source}): {recipe_name}")
        built_in = (
            "paper recipe" if recipe_name in built_in_recipes() else f"{self.source}: recipes"
        )
        if recipe_name in datasets.builtin():
            built_in = f"{recipe_name} recipe, not in the paper"
        given_recipe = self.given.get("recipes", {}).get(recipe_name, {})
        model_recipe = self.values["models"].get(recipe_name, {}).get("recipe", {})
        for key in recipe:
            if key in given_recipe:
                sources[f"recipe.{key}"] = f"{self.source}: recipes.{recipe_name}"
            elif kind == "models" and key in model_recipe:
                sources[f"recipe.{key}"] = f"{self.source}: models.{recipe_name}.recipe"
            else:
                sources[f"recipe.{key}"] = "paper recipe" if kind == "models" else built_in
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
        n_minima = self.values["minima_per_arch"]
        if "minima" in row:
            n_minima = len(self._imported_files(k, row))
        resolved = {
            "dataset": dataset,
            "arch": arch,
            "seeds": [self.values["seed_base"] + i for i in range(n_minima)],
            "recipe_name": recipe_name,
            "recipe": recipe,
            "autoneb": {**algorithm.to_dict(), **energy.to_dict()},
            "mst": dict(self.values["mst"]),
            "alignment": row.get("alignment", self.values["alignment"]),
            "evaluation": dict(self.values["evaluation"]),
            "exploration": dict(self.values["exploration"]),
            "comparisons": dict(self.values["comparisons"]),
            "curves": dict(self.values["curves"]),
            "overlap": dict(self.values["overlap"]),
        }
        for section in ("mst", "exploration", "evaluation", "overlap", "comparisons", "curves"):
            given = self.given.get(section, {})
            for key in resolved[section]:
                where = f"{self.source}: {section}"
                sources[f"{section}.{key}"] = where if key in given else "paper default"
        return resolved, sources

    @functools.cache  # noqa: B019 - reads the user's files once per process
    def _identity(self, dataset: str, arch: str) -> dict:
        """The row's identity keys (:data:`IDENTITY_KEYS`) that apply to it."""
        out: dict = {}
        if (spec := self.model_spec(arch)) is not None:
            out["model"] = spec
        if dataset in self.values["datasets"]:
            out["data"] = self.dataset_identity(dataset)
        files = self.imported_files(dataset, arch)
        if files is not None:
            out["imported_minima"] = [file_digest(f) for f in files]
        return out

    def _short_source(self, source: str) -> str:
        """A value's source as the start-up line writes it: ``paper`` (the schema's default or
        the paper's recipe), ``recipe digits`` (a built-in recipe that is not the paper's), or
        the section of the config (its file named once, at the start of the line)."""
        if source in ("paper default", "paper recipe"):
            return "paper"
        if source.endswith(" recipe, not in the paper"):
            return "recipe " + source.removesuffix(" recipe, not in the paper")
        return source.removeprefix(f"{self.source}: ")

    def summary(self, dataset: str, arch: str) -> str:
        """One line per row for the start-up log: the settings that matter most, and where
        each came from -- ``[paper]``, a built-in recipe (``[recipe digits]``) or the section
        of the config (``[autoneb]``, ``[rows[3].autoneb]``), the config's file named once."""
        row = self.row(dataset, arch)
        src = {key: self._short_source(s) for key, s in self.sources(dataset, arch).items()}
        recipe, autoneb, budget = row["recipe"], row["autoneb"], row["exploration"]
        steps = sum(c["steps"] for c in autoneb["schedule"])
        if "imported_minima" in row:
            pattern = self._given_row(dataset, arch)[1]["minima"]["files"]
            minima = f"{len(row['seeds'])} minima imported from {pattern}"
        else:
            minima = (
                f"recipe {row['recipe_name']}: {recipe['epochs']} epochs "
                f"[{src['recipe.epochs']}], batch {recipe['batch_size']} "
                f"[{src['recipe.batch_size']}]"
            )
        parts = [
            minima,
            f"AutoNEB {len(autoneb['schedule'])} cycles / {steps} steps "
            f"[{src['autoneb.schedule']}], batch {autoneb['batch_size']} "
            f"[{src['autoneb.batch_size']}], eval_subset {autoneb['eval_subset']} "
            f"[{src['autoneb.eval_subset']}]",
            f"budget {budget['max_paths']} paths [{src['exploration.max_paths']}], "
            f"{budget['pairs_per_round'] or 'all'} per round "
            f"[{src['exploration.pairs_per_round']}], "
            f"early stop {budget['similar_saddles_rtol']} "
            f"[{src['exploration.similar_saddles_rtol']}]",
        ]
        if "model" in row:
            parts.insert(0, f"model {row['model']['build']}({row['model']['kwargs'] or ''})")
        extensions = [  # the options beyond the paper, named when they are on
            f"climbing_cycles {autoneb['climbing_cycles']}" if autoneb["climbing_cycles"] else "",
            f"alignment {row['alignment']}" if row["alignment"] != "none" else "",
            f"ensembles {row['evaluation']['ensemble_sizes']}"
            if row["evaluation"]["ensemble_sizes"]
            else "",
            f"curves {row['curves']['families']}" if row["curves"]["families"] else "",
            f"{row['comparisons']['autoneb_repeats']} AutoNEB runs per MST edge"
            if row["comparisons"]["autoneb_repeats"] > 1
            else "",
            f"{row['comparisons']['sample_pairs']} off-MST pairs"
            if row["comparisons"]["sample_pairs"]
            else "",
            "Hessian at the saddles" if row["evaluation"]["hessian_subset"] else "",
        ]
        if any(extensions):
            parts.append("beyond the paper: " + ", ".join(e for e in extensions if e))
        header = f"{dataset}/{arch} (config {self.source}; [paper] = the paper's value)"
        return f"{header}: " + "; ".join(parts)


#: resources through which a job requests GPUs from SLURM
GPU_RESOURCES = ("gpu", "gpu_model", "gres")
HEAVY_RULES = ("train_minimum", "import_minimum", "autoneb_path", "aligned_path", "repeat_path",
               "curve", "evaluate_path", "independent_ensembles", "slice_figure")  # fmt: skip
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


#: where a heavy rule's jobs take their time and memory from (rules/*.smk: job_runtime,
#: job_memory): (runtime's resources section, mem_mb's resources section)
RESOURCES_OF_RULE = {
    "train_minimum": ("train_minimum", "train_minimum"),
    "import_minimum": ("evaluate_path", "train_minimum"),
    "autoneb_path": ("autoneb_path", "autoneb_path"),
    "aligned_path": ("autoneb_path", "autoneb_path"),
    "repeat_path": ("autoneb_path", "autoneb_path"),
    "curve": ("autoneb_path", "autoneb_path"),
    "evaluate_path": ("evaluate_path", "evaluate_path"),
    "independent_ensembles": ("evaluate_path", "evaluate_path"),
    "slice_figure": ("slice_figure", "slice_figure"),
}
#: the issue of snakemake-executor-plugin-slurm that check_array_jobs guards against
ARRAY_ISSUE = "github.com/snakemake/snakemake-executor-plugin-slurm/issues/473"


def array_rules(setting: str | None) -> list[str]:
    """The heavy rules that ``--slurm-array-jobs`` (``slurm-array-jobs:``) submits as SLURM job
    arrays: its comma- or semicolon-separated rule names, ``all`` for every rule."""
    names = {n.strip() for n in (setting or "").replace(";", ",").split(",") if n.strip()}
    return [r for r in HEAVY_RULES if r in names or "all" in names]


def jobs_bound(settings: WorkflowConfig) -> int:
    """An upper bound on the jobs of a run, so on those ready or running at once: per row every
    minimum; for every pair of minima its path, evaluation, aligned path, repeats and curves and
    a selection round; a slice, the independent ensembles and ten bookkeeping jobs; ten more
    for the whole run (datasets, Table B.1, Figure 5)."""
    total = 10
    for dataset, arch in settings.selected_rows():
        row = settings.row(dataset, arch)
        m = len(row["seeds"])
        per_pair = 3 + (row["alignment"] != "none") + row["comparisons"]["autoneb_repeats"] - 1
        per_pair += len(row["curves"]["families"])
        total += m + m * (m - 1) // 2 * per_pair + 13
    return total


def check_array_jobs(
    settings: WorkflowConfig, setting: str | None, jobs: int | None, max_jobs_per_timespan=None
) -> list[str]:
    """At the start of a run with SLURM job arrays (``--slurm-array-jobs``): what the SLURM
    executor plugin (2.8) needs to submit them. Snakemake must hand the plugin *every* ready job
    of an array rule at once: the plugin waits for the rest of a partial batch, never submits
    it, and the run hangs (:data:`ARRAY_ISSUE`). So neither ``--jobs`` nor
    ``--max-jobs-per-timespan`` may cut a wave: both at least :func:`jobs_bound`
    (``--jobs unlimited`` and ``10000/1s`` in profiles/slurm), else refused naming the setting.

    Returns the lines to log: the array rules whose rows ask for different time or memory,
    with what each job of the rule asks for instead (:meth:`WorkflowConfig.rule_limits`)."""
    rules = array_rules(setting)
    if not rules:
        return []
    named = f"slurm-array-jobs ({', '.join(rules)})"
    bound = jobs_bound(settings)
    if jobs is not None and jobs < bound:
        raise ConfigError(
            f"{named} with --jobs {jobs} (below {bound}, the most jobs this configuration can "
            "have at once): the SLURM plugin never submits the jobs of a rule when Snakemake "
            "hands it only part of the rule's ready jobs, and the run waits forever "
            f"({ARRAY_ISSUE}). Run with --jobs unlimited (as profiles/slurm does; the cluster's "
            "own limits still apply), or without arrays: --slurm-array-jobs none"
        )
    rate = getattr(max_jobs_per_timespan, "max_jobs", max_jobs_per_timespan)
    if rate is not None and rate < bound:
        raise ConfigError(
            f"{named} with --max-jobs-per-timespan {rate}/...: up to {bound} jobs of this "
            "configuration can be ready at once, and a wave the rate limit cuts is never "
            f"submitted ({ARRAY_ISSUE}). Give at least '{bound}/1s' (profiles/slurm: "
            "'10000/1s'), or run without arrays: --slurm-array-jobs none"
        )
    lines = []
    for rule in rules:
        rows = settings.rows_of_rule(rule)
        own = {row: settings.rule_limits(rule, *row) for row in rows}
        if len({tuple(limits.values()) for limits in own.values()}) < 2:
            continue
        shared = settings.rule_limits(rule, *rows[0], arrays=True)
        least = min(own, key=lambda row: tuple(own[row].values()))
        lines.append(
            f"nobarriers: slurm-array-jobs: every {rule} job asks for {shared['runtime']} min and "
            f"{shared['mem_mb']} MB, the most of the selected rows (one array gets the time and "
            f"memory of its first job; {'/'.join(least)} alone would ask for "
            f"{own[least]['runtime']} min and {own[least]['mem_mb']} MB). Run rows with "
            "different resources separately (select) to keep their own, or run without arrays"
        )
    return lines


def stage_settings(resolved_row: dict, stage: str) -> dict:
    """The part of a resolved row that determines a stage's results (and nothing else): the
    speed options (:func:`speed_options`) are left out; the algorithm versions of the stages it
    builds on (:mod:`nobarriers.settings.versions`) are added."""
    if stage not in STAGE_KEYS:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGE_KEYS)}")
    out = {k: resolved_row[k] for k in STAGE_KEYS[stage] if k in resolved_row}
    for section, names in (("recipe", RECIPE_SPEED), ("autoneb", AUTONEB_SPEED)):
        if section in out:
            out[section] = {k: v for k, v in out[section].items() if k not in names}
    out["algorithm"] = versions_of(stage)  # a bumped version reruns the stage and what follows
    return out


def row_identity(settings: dict) -> dict:
    """The identity keys (:data:`IDENTITY_KEYS`) a row's (or a stage's) settings have: what
    minimum and path files record beside the names, so that they rebuild their network (a user's
    ``model``) without the config."""
    return {k: settings[k] for k in ("model", "data") if k in settings}


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

    ``minima``: dataset, architecture (and a user's network, data, imported minima), recipe.
    ``paths``: + AutoNEB settings and the data of the MST weights. ``evaluation``: + evaluation
    settings. ``report`` (Table B.1): + the minima of the row (``seeds``), the exploration budget
    and early stop, the overlap threshold. A path depends on its two minima, not on how many
    others there are, and not on the budget: raising either extends the AutoNEB loop without
    invalidating finished paths, while the table's hash changes.
    """
    text = json.dumps(stage_settings(settings, stage), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
