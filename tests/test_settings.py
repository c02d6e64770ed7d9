"""The schema states every default and limit once; the typed views cannot drift from it."""

from __future__ import annotations

import dataclasses

import pytest

from nobarriers.core.errors import ConfigError
from nobarriers.datasets.builtin.digits import DIGITS_RECIPE
from nobarriers.settings import schema
from nobarriers.settings.autoneb_config import (
    AutoNEBConfig,
    EnergySettings,
    NEBSettings,
    parse_schedule,
)
from nobarriers.settings.config import WorkflowConfig
from nobarriers.settings.recipes import RECIPE_KEYS, validate_recipe

AUTONEB = schema.definition("autoneb")["properties"]
RECIPE = schema.definition("recipe")["properties"]


def field_defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        out[f.name] = f.default_factory() if f.default is dataclasses.MISSING else f.default
    return out


def test_views_cover_the_autoneb_section_exactly():
    algorithm = {f.name for f in dataclasses.fields(AutoNEBConfig)}
    energy = {f.name for f in dataclasses.fields(EnergySettings)}
    step = {f.name for f in dataclasses.fields(NEBSettings)}
    assert algorithm | energy == set(AUTONEB) and not algorithm & energy
    assert step <= algorithm


@pytest.mark.parametrize("cls", [AutoNEBConfig, NEBSettings, EnergySettings])
def test_view_defaults_are_the_schema_defaults(cls):
    for name, value in field_defaults(cls).items():
        wanted = AUTONEB[name]["default"]
        if name == "schedule":
            wanted = parse_schedule(wanted)
        assert value == wanted, name


def test_recipe_keys_are_the_schema_properties():
    assert list(RECIPE_KEYS) == list(RECIPE)


def violations(sub: dict):
    """Values just outside a property's limits (and of a wrong type)."""
    if "enum" in sub:
        yield "not-a-choice"
        return
    kind = sub.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "minimum" in sub:
        yield sub["minimum"] - (1 if "integer" in kinds else 1e-9)
    if "exclusiveMinimum" in sub:
        yield sub["exclusiveMinimum"]
    if "maximum" in sub:
        yield sub["maximum"] + (1 if "integer" in kinds else 1e-9)
    if "exclusiveMaximum" in sub:
        yield sub["exclusiveMaximum"]
    if "boolean" in kinds:
        yield "maybe"
    if "integer" in kinds:
        yield 2.5


AUTONEB_CASES = [
    (name, bad) for name, sub in AUTONEB.items() if name != "schedule" for bad in violations(sub)
]
RECIPE_CASES = [(name, bad) for name, sub in RECIPE.items() for bad in violations(sub)]


def test_every_limited_key_has_cases():
    limited = {n for n, s in AUTONEB.items() if set(s) & {"minimum", "enum", "exclusiveMinimum"}}
    assert limited <= {name for name, _ in AUTONEB_CASES}
    assert {"momentum", "lr_gamma", "epochs", "lr"} <= {name for name, _ in RECIPE_CASES}


@pytest.mark.parametrize("name, bad", AUTONEB_CASES)
def test_autoneb_limit_is_the_same_for_dataclasses_and_workflow(name, bad):
    view = (
        EnergySettings
        if name in {f.name for f in dataclasses.fields(EnergySettings)}
        else (AutoNEBConfig)
    )
    with pytest.raises(ConfigError) as err:
        view(**{name: bad})
    assert f"{name}:" in str(err.value)
    config = {"rows": [{"dataset": "digits", "arch": "mlp-4"}], "autoneb": {name: bad}}
    with pytest.raises(ConfigError) as err:
        WorkflowConfig(config)
    assert f"autoneb.{name}:" in str(err.value)


@pytest.mark.parametrize("name, bad", RECIPE_CASES)
def test_recipe_limit_is_the_same_for_python_and_workflow(name, bad):
    with pytest.raises(ConfigError) as err:
        validate_recipe({**DIGITS_RECIPE, name: bad})
    assert f"{name}:" in str(err.value) or f"{name}[" in str(err.value)
    config = {"rows": [{"dataset": "digits", "arch": "mlp-4"}], "recipes": {"digits": {name: bad}}}
    with pytest.raises(ConfigError) as err:
        WorkflowConfig(config)
    assert f"recipes.digits.{name}" in str(err.value)


def test_values_at_the_limits_are_accepted_by_both():
    # the edges of the ranges that used to disagree between schema and code
    AutoNEBConfig(insert_threshold=0.0, eval_subset=2, max_pivots=3)
    validate_recipe({**DIGITS_RECIPE, "lr_milestones": [1.0], "momentum": 0.0})
    config = {
        "rows": [{"dataset": "digits", "arch": "mlp-4"}],
        "autoneb": {"insert_threshold": 0.0, "eval_subset": 2},
        "recipes": {"digits": {"lr_milestones": [1.0], "momentum": 0.0}},
    }
    row = WorkflowConfig(config).row("digits", "mlp-4")
    assert row["autoneb"]["insert_threshold"] == 0.0 and row["recipe"]["lr_milestones"] == [1.0]
