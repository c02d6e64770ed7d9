"""Workflow configuration: schema validation with defaults, names, hashes, row selection."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from nobarriers.core.errors import ConfigError
from nobarriers.settings.config import STAGE_KEYS, WorkflowConfig, stage_hash

ROOT = Path(__file__).resolve().parents[1]


def minimal():
    return {"rows": [{"dataset": "digits", "arch": "mlp-16"}]}


def test_defaults_are_filled_in():
    config = WorkflowConfig(minimal()).values
    assert config["minima_per_arch"] == 10
    assert config["overlap"] == {"threshold": 0.7, "metric": "smaller"}
    assert config["exploration"]["max_paths"] == 45
    assert config["evaluation"]["n_between"] == 9


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c.update(unknown_key=1), "unknown_key"),
        (lambda c: c.update(minima_per_arch="ten"), "minima_per_arch"),
        (lambda c: c.update(exploration={"max_paths": 0}), "exploration.max_paths"),
        (lambda c: c["rows"][0].update(arch="resnet-banana"), "rows[0].arch"),
        (lambda c: c["rows"][0].update(dataset="svhn"), "rows[0].dataset"),
        (lambda c: c.update(autoneb={"schedule": []}), "autoneb.schedule"),
        (lambda c: c.update(autoneb={"eval_subset": 1}), "autoneb.eval_subset"),
        (lambda c: c.update(recipes={"digits": {"momentum": 1.0}}), "recipes.digits.momentum"),
        (lambda c: c.update(recipes={"x": {"epochs": 3}}), "recipes.x"),
        (lambda c: c.update(autoneb={"insert_treshold": 0.2}), "insert_treshold"),
        (lambda c: c.update(autoneb={"endpoint_losses": "sometimes"}), "autoneb.endpoint_losses"),
        (lambda c: c["rows"][0].update(recipe="nope"), "rows[0].recipe"),
    ],
)
def test_invalid_config_names_the_key(mutate, key):
    config = minimal()
    mutate(config)
    with pytest.raises(ConfigError) as err:
        WorkflowConfig(config)
    assert key in str(err.value)


def test_an_overlay_given_alone_is_told_to_follow_a_config_with_rows():
    overlay = yaml.safe_load((ROOT / "config/comparisons.yaml").read_text())
    with pytest.raises(ConfigError) as err:
        WorkflowConfig(overlay)
    assert "rows: missing" in str(err.value)
    assert "--configfile config/config.yaml config/comparisons.yaml" in str(err.value)
    WorkflowConfig({**yaml.safe_load((ROOT / "config/config.yaml").read_text()), **overlay})


def test_duplicate_rows_are_refused():
    config = minimal()
    config["rows"].append(dict(config["rows"][0]))
    with pytest.raises(ConfigError, match="twice"):
        WorkflowConfig(config)


@pytest.mark.parametrize(
    "name", ["config/config.yaml", "config/paper.yaml", "tests/configs/tiny.yaml"]
)
def test_shipped_configs_are_valid(name):
    config = WorkflowConfig.load(ROOT / name)
    for dataset, arch in config.selected_rows():
        row = config.row(dataset, arch)
        assert row["autoneb"]["schedule"], name


def test_paper_config_has_all_28_rows_with_paper_values():
    config = WorkflowConfig.load(ROOT / "config/paper.yaml")
    assert len(config.values["rows"]) == 28
    row = config.row("cifar10", "resnet-20")
    schedule = row["autoneb"]["schedule"]
    assert len(schedule) == 14 and sum(c["steps"] for c in schedule) == 16000
    assert [c["lr"] for c in schedule] == [0.1] * 6 + [0.01] * 4 + [0.001] * 4
    assert row["autoneb"]["insert_threshold"] == 0.2
    assert row["autoneb"]["batch_size"] == 512
    assert row["autoneb"]["endpoint_losses"] == "per_step"  # as the authors' code
    assert config.row("cifar100", "resnet-56")["autoneb"]["batch_size"] == 256
    assert row["recipe"]["epochs"] == 136 and row["recipe"]["batch_size"] == 128
    dense = config.row("cifar10", "densenet-40-12")["recipe"]
    assert dense["epochs"] == 266 and dense["batch_size"] == 64 and dense["nesterov"]


def test_row_overrides_layer_over_the_global_section_key_by_key():
    config = minimal()
    config["autoneb"] = {"batch_size": 64, "autocast_bf16": True}
    config["rows"][0]["autoneb"] = {"batch_size": 32}
    settings = WorkflowConfig(config)
    row = settings.row("digits", "mlp-16")
    # the row changes only what it names; the global section and the defaults stay
    assert row["autoneb"]["batch_size"] == 32 and row["autoneb"]["autocast_bf16"] is True
    assert row["autoneb"]["insert_threshold"] == 0.2
    sources = settings.sources("digits", "mlp-16")
    assert sources["autoneb.batch_size"] == "config: rows[0].autoneb"
    assert sources["autoneb.autocast_bf16"] == "config: autoneb"
    assert sources["autoneb.insert_threshold"] == "paper default"


def test_the_start_up_line_names_the_config_file_once_and_each_source_short(tmp_path):
    folder = tmp_path / "a rather long folder name" / "of my experiments"
    folder.mkdir(parents=True)
    path = folder / "my.yaml"
    path.write_text(
        "autoneb: {batch_size: 64}\n"
        "exploration: {max_paths: 7}\n"
        "recipes: {mlp: {epochs: 5}}\n"
        "rows:\n"
        "  - {dataset: cifar10, arch: mlp-16, autoneb: {eval_subset: 512}}\n"
        "  - {dataset: digits, arch: mlp-4}\n"
    )
    settings = WorkflowConfig.load(path)
    line = settings.summary("cifar10", "mlp-16")
    assert line.count(str(path)) == 1, line
    assert line.startswith(f"cifar10/mlp-16 (config {path}; [paper] = the paper's value): ")
    for part in ("5 epochs [recipes.mlp]", "batch 128 [paper]", "batch 64 [autoneb]",
                 "eval_subset 512 [rows[0].autoneb]", "budget 7 paths [exploration]",
                 "early stop 0.1 [paper]"):  # fmt: skip
        assert part in line, line
    assert "paper default" not in line and "paper recipe" not in line
    digits = settings.summary("digits", "mlp-4")
    assert digits.count(str(path)) == 1 and "40 epochs [recipe digits]" in digits, digits
    # the sources themselves keep their full form (the file, the section)
    assert settings.sources("cifar10", "mlp-16")["autoneb.batch_size"] == f"{path}: autoneb"


def test_schedule_repeat_is_expanded():
    config = minimal()
    config["autoneb"] = {
        "schedule": [{"repeat": 2, "steps": 5, "lr": 0.1}, {"steps": 3, "lr": 0.01}]
    }
    row = WorkflowConfig(config).row("digits", "mlp-16")
    assert row["autoneb"]["schedule"] == [
        {"steps": 5, "lr": 0.1},
        {"steps": 5, "lr": 0.1},
        {"steps": 3, "lr": 0.01},
    ]


def test_stage_hashes_follow_the_settings_they_depend_on():
    base = WorkflowConfig(minimal()).row("digits", "mlp-16")
    changed_neb = minimal()
    changed_neb["autoneb"] = {"insert_threshold": 0.1}
    neb = WorkflowConfig(changed_neb).row("digits", "mlp-16")
    assert stage_hash(neb, "minima") == stage_hash(base, "minima")
    assert stage_hash(neb, "paths") != stage_hash(base, "paths")
    # The budget extends the loop: it must not invalidate finished paths.
    bigger = minimal()
    bigger["exploration"] = {"max_paths": 3}
    budget = WorkflowConfig(bigger).row("digits", "mlp-16")
    assert stage_hash(budget, "evaluation") == stage_hash(base, "evaluation")


def test_selection_by_dataset_and_architecture(tmp_path):
    config = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    config["select"] = {"datasets": ["cifar100"], "architectures": ["resnet-20", "cnn-12"]}
    assert WorkflowConfig(config).selected_rows() == [
        ("cifar100", "cnn-12"),
        ("cifar100", "resnet-20"),
    ]
    config["select"]["architectures"] = ["cnn-13"]
    with pytest.raises(ConfigError, match="matches no row"):
        WorkflowConfig(config)
    # the old top-level keys now mean something else: a list is refused, naming the key
    config = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    config["architectures"] = ["resnet-20"]
    with pytest.raises(ConfigError, match="architectures: unknown key"):
        WorkflowConfig(config)


def test_every_float_spelling_is_a_number_and_non_numbers_are_refused(tmp_path):
    """YAML 1.1 (PyYAML) reads ``1e-2`` and ``5E-4`` as strings; they are numbers wherever the
    schema wants one, in a config file as in ``--config``. A word stays an error naming the key."""
    text = (
        "recipes:\n  digits: {lr: 1e-2, weight_decay: 5E-4, momentum: .9}\n"
        "autoneb:\n  insert_threshold: 2.e-1\n  schedule: [{repeat: 1, steps: 1e3, lr: +1.0e-1}]\n"
        "rows:\n  - {dataset: digits, arch: mlp-4}\n"
    )
    assert yaml.safe_load(text)["recipes"]["digits"]["lr"] == "1e-2"  # what the user is up against
    path = tmp_path / "floats.yaml"
    path.write_text(text)
    row = WorkflowConfig.load(path).row("digits", "mlp-4")
    assert row["recipe"]["lr"] == 0.01 and row["recipe"]["weight_decay"] == 5e-4
    assert row["recipe"]["momentum"] == 0.9 and row["autoneb"]["insert_threshold"] == 0.2
    assert row["autoneb"]["schedule"] == [{"steps": 1000, "lr": 0.1}]
    assert isinstance(row["autoneb"]["schedule"][0]["steps"], int)
    steps = "autoneb.schedule[0].steps"
    for key, bad in (("recipes.digits.lr", "recipes: {digits: {lr: fast}}"),
                     (steps, "autoneb: {schedule: [{steps: 1.5e2x, lr: 0.1}]}"),
                     (steps, "autoneb: {schedule: [{steps: 1.5, lr: 0.1}]}")):  # fmt: skip
        path.write_text(bad + "\nrows:\n  - {dataset: digits, arch: mlp-4}\n")
        with pytest.raises(ConfigError, match=re.escape(key)):
            WorkflowConfig.load(path).row("digits", "mlp-4")
    # the same through Snakemake's --config (parsed as YAML, too)
    from workflow_runs import TINY, snakemake

    proc = snakemake("-n", "--cores", "1", "--configfile", str(TINY), "--config",
                     f"results_dir={tmp_path / 'results'}", "recipes={digits: {lr: 1e-2}}",
                     "autoneb={weight_decay: 1E-4}", "exploration={similar_saddles_rtol: null}",
                     check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # `null` delivered as a string where the schema allows null is null, not "not converted"
    given = {"exploration": {"similar_saddles_rtol": "null"}, "mst": {"weight_subset": "~"},
             "rows": [{"dataset": "digits", "arch": "mlp-4"}]}  # fmt: skip
    row = WorkflowConfig(given).row("digits", "mlp-4")
    assert row["exploration"]["similar_saddles_rtol"] is None
    assert row["mst"]["weight_subset"] is None


def test_a_climbing_option_on_a_too_short_schedule_is_refused_naming_the_key():
    climbing = {"dataset": "digits", "arch": "mlp-8", "autoneb": {"climbing_cycles": 3}}
    config = {"autoneb": {"schedule": [{"repeat": 3, "steps": 10, "lr": 0.1}]},
              "rows": [{"dataset": "digits", "arch": "mlp-4"}, climbing]}  # fmt: skip
    settings = WorkflowConfig(config)
    assert settings.row("digits", "mlp-4")["autoneb"]["climbing_cycles"] == 0
    with pytest.raises(
        ConfigError, match=r"rows\[1\] \(digits/mlp-8\) autoneb: .*climbing_cycles=3"
    ):
        settings.row("digits", "mlp-8")


# ---- every setting that changes a result is in a hash ----------------------------------------

BASE = {
    "minima_per_arch": 3,
    "rows": [{"dataset": "digits", "arch": "mlp-4"}],
}


def _leaves(schema_part: dict, root: dict, path=()):
    """Key paths of every option of the schema (through $ref), with the option's schema."""
    from nobarriers.settings.schema import _resolve

    sub = _resolve(schema_part, root)
    for name, prop in sub.get("properties", {}).items():
        resolved = _resolve(prop, root)
        if resolved.get("type") == "object" and resolved.get("properties"):
            yield from _leaves(resolved, root, (*path, name))
        else:
            yield (*path, name), resolved


def _other_value(key, spec, current):
    """A valid value other than ``current``."""
    explicit = {
        "autoneb.schedule": [{"steps": 7, "lr": 0.1}, {"steps": 7, "lr": 0.01}],
        "autoneb.optimizer_kwargs": {"momentum": 0.5},
        "autoneb.optimizer": "Adam",
        "evaluation.ensemble_sizes": [3],
        "curves.families": ["bezier"],
        "figures.cycles": [1],
        "recipes": {"digits": {"epochs": 3}},
        "datasets": {"blobs": {"npz": "b.npz"}},
        "models": {"tiny": {"build": "x.y:z"}},
        "dataset_checksums": {"cifar10": {"a": "0" * 32}},
        "local_copies": {"mnist": "/x"},
        "select": {"datasets": ["digits"]},
        "resources.families": {"mlp": {"autoneb_path": {"runtime": 5}}},
        "rows": None,
        "gpu_model": None,  # needs gpu_jobs; checked with it below
        "results_dir": "elsewhere",
        "data_dir": "elsewhere",
        "device": "cpu" if current != "cpu" else "cuda",
    }
    if key in explicit:
        return explicit[key]
    if "enum" in spec:
        return next(v for v in spec["enum"] if v != current)
    kind = spec.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "boolean" in kinds:
        return not current
    if "integer" in kinds:
        return (current or spec.get("minimum", 1)) + 1
    if "number" in kinds:
        return (current or 0.5) * 0.5 if (current or 0.5) * 0.5 > spec.get("minimum", -1) else 1.0
    if "object" in kinds:
        return {}
    raise AssertionError(f"no alternative value for {key} ({spec})")


def _fingerprint(config: dict) -> dict:
    """Everything a result depends on: every stage's hash, Algorithm 3's folder, the figures."""
    settings = WorkflowConfig(copy.deepcopy(config))
    row = settings.row("digits", "mlp-4")
    out = {stage: stage_hash(row, stage) for stage in STAGE_KEYS}
    out["rounds"] = settings.rounds_folder()
    out["figures"] = settings.values["figures"]
    return out


def test_every_setting_that_changes_a_result_changes_a_hash():
    """The audit: each option of the schema either changes a stage's hash (or Algorithm 3's
    rounds folder, or the figures' params) or is listed in RUNTIME_KEYS as one that cannot
    change a result -- a new option that is neither fails here, naming it. (minima_per_arch
    once changed no hash, so a table of 3 minima passed for one of 4.)"""
    from nobarriers.settings import schema as schema_module
    from nobarriers.settings.autoneb_config import SPEED_OPTIONS as AUTONEB_SPEED
    from nobarriers.settings.config import RUNTIME_KEYS
    from nobarriers.settings.recipes import SPEED_OPTIONS as RECIPE_SPEED

    whole = schema_module.schema()
    base = _fingerprint(BASE)
    speed = {f"autoneb.{k}" for k in AUTONEB_SPEED}
    missing = []
    for path, spec in _leaves(whole, whole):
        key = ".".join(path)
        if path[0] in RUNTIME_KEYS or key in speed or key == "rows":
            continue
        config = copy.deepcopy(BASE)
        current = WorkflowConfig(copy.deepcopy(BASE)).values
        for part in path:
            current = current.get(part) if isinstance(current, dict) else None
        value = _other_value(key, spec, current)
        target = config
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
        if key in ("datasets", "models"):
            continue  # identities of rows that use them: tests/test_open_world.py
        if _fingerprint(config) == base:
            missing.append(key)
    assert not missing, f"options that change no hash and are not RUNTIME_KEYS: {missing}"
    for name in RECIPE_SPEED:  # a recipe's speed option changes nothing
        changed = {**BASE, "recipes": {"digits": {name: True}}}
        assert _fingerprint(changed) == base, name
    # and the runtime keys really change nothing
    for changed in ({"data_dir": "x"}, {"device": "cpu"}, {"threads": {"train": 3}},
                    {"results_dir": "r"}, {"gpu_jobs": False}, {"hdf5_file_locking": False},
                    {"local_copies": {"mnist": "/x"}}):  # fmt: skip
        assert _fingerprint({**BASE, **changed}) == base, changed
