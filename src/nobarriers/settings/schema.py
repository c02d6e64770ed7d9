"""The configuration schema (``config.schema.yaml``): loading, defaults, validation.

The schema is the one statement of every option's default, limits and meaning. The workflow
config, the AutoNEB settings (:mod:`nobarriers.settings.autoneb_config`) and the training recipes
(:mod:`nobarriers.settings.recipes`) are all checked here, by one validator, so a limit cannot
differ between a YAML file and a Python call. Torch-free: the Snakefile validates at start-up.

Why not ``snakemake.utils.validate``: it stops at the first error, it cannot coerce the strings
that ``snakemake --config key='{a: 1}'`` delivers for nested values, and the package must validate
identically outside Snakemake (the command line, library calls). Both use ``jsonschema``.
"""

from __future__ import annotations

import copy
import difflib
import functools
import math
from importlib import resources

import jsonschema
import yaml

from ..core.errors import ConfigError

__all__ = ["schema", "node", "definition", "defaults", "fill_defaults", "validate", "key_path"]


@functools.cache
def _schema() -> dict:
    text = resources.files("nobarriers.settings").joinpath("config.schema.yaml").read_text()
    return yaml.safe_load(text)


def schema() -> dict:
    """A copy of the whole schema."""
    return copy.deepcopy(_schema())


def node(*keys: str) -> dict:
    """A copy of the schema's node at ``keys`` (``node("properties", "resources")``): what is
    read per job copies only itself, not the whole schema (1,200 copies made a dry run of the
    paper config 4 s slower)."""
    out = _schema()
    for key in keys:
        out = out[key]
    return copy.deepcopy(out)


def definition(name: str) -> dict:
    """``definitions/<name>`` of the schema, with ``$ref`` resolvable (a copy)."""
    whole = schema()
    if name not in whole["definitions"]:
        raise KeyError(f"the schema has no definition {name!r}")
    return {**whole["definitions"][name], "definitions": whole["definitions"]}


def defaults(name: str) -> dict:
    """``{property: default}`` of ``definitions/<name>`` (properties without one are absent)."""
    props = _schema()["definitions"][name]["properties"]
    return {key: copy.deepcopy(sub["default"]) for key, sub in props.items() if "default" in sub}


def _resolve(sub: dict, root: dict) -> dict:
    ref = sub.get("$ref")
    if ref is None:
        return sub
    node = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return _resolve(node, root)


def fill_defaults(instance, schema_part: dict, root: dict | None = None):
    """Fill in the ``default`` of every missing property, in place, through nested objects
    (``properties``, ``$ref``, and the named entries of a mapping whose values are a ``$ref``,
    e.g. ``models.<name>``) -- but not into the items of arrays: a row's overrides
    (``rows[k].autoneb``) keep exactly what the config says, so they change only what they name
    when layered over the global sections."""
    root = schema_part if root is None else root
    sub = _resolve(schema_part, root)
    if not isinstance(instance, dict):
        return instance
    for name, prop in sub.get("properties", {}).items():
        resolved = _resolve(prop, root)
        holder = prop if "default" in prop else resolved  # a default beside a $ref counts
        if name not in instance and "default" in holder:
            instance[name] = copy.deepcopy(holder["default"])
        if isinstance(instance.get(name), dict):
            fill_defaults(instance[name], resolved, root)
    extra = sub.get("additionalProperties")
    if isinstance(extra, dict) and "$ref" in extra:  # named entries: models.<name>, datasets.<name>
        for name, value in instance.items():
            if name not in sub.get("properties", {}) and isinstance(value, dict):
                fill_defaults(value, extra, root)
    return instance


def key_path(parts) -> str:
    """``["rows", 0, "arch"]`` -> ``"rows[0].arch"``."""
    text = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in parts)
    return text.replace(".[", "[") or "<top level>"


#: what :func:`_number` returns for a string that is none of the wanted types (None is a value)
_NOT_CONVERTED = object()


def _number(text: str, wanted: list[str]):
    """A string as the number/boolean/null the schema wants, or ``_NOT_CONVERTED``.

    YAML 1.1 reads ``1e-2`` (no dot) as a string, and ``snakemake --config`` delivers nested
    values as strings: every spelling Python's ``float`` accepts counts as a number, and an
    integral one as an integer; non-finite values do not."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if isinstance(value, str) and ("number" in wanted or "integer" in wanted):
        try:
            number = float(value.strip())
        except ValueError:
            return _NOT_CONVERTED
        if number != number or number in (float("inf"), float("-inf")):
            return _NOT_CONVERTED
        value = int(number) if ("integer" in wanted and number.is_integer()) else number
    checks = {
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if any(checks[t](value) for t in wanted if t in checks):
        return value
    return _NOT_CONVERTED


def _coerce_strings(instance, validator) -> None:
    """Replace, in place, strings where the schema wants a number, boolean or null."""
    for _ in range(1000):  # each pass fixes every reported string; nested ones appear later
        changed = False
        for error in validator.iter_errors(instance):
            if error.validator != "type" or not isinstance(error.instance, str):
                continue
            wanted = error.validator_value
            wanted = wanted if isinstance(wanted, list) else [wanted]
            value = _number(error.instance, wanted)
            if value is _NOT_CONVERTED or not error.absolute_path:
                continue
            *parents, last = error.absolute_path
            target = instance
            for key in parents:
                target = target[key]
            target[last] = value
            changed = True
        if not changed:
            return


def _message(error: jsonschema.ValidationError) -> str:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in known]
        lines = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
            lines.append(f"{key_path([*path, key])}: unknown key{hint}")
        return "\n  ".join(lines)
    no_rows = error.validator == "required" and not path and "rows" not in error.instance
    if no_rows and "rows" in error.validator_value:  # the workflow config's rows, not a recipe's
        # an overlay (config/comparisons.yaml) given alone: say how it is meant to be used
        return (
            "rows: missing; a config names the rows (dataset x architecture) it runs. A file "
            "that only adds settings goes after one that has them, e.g. --configfile "
            "config/config.yaml config/comparisons.yaml"
        )
    return f"{key_path(path)}: {error.message}"


def _non_finite(instance, path=()):
    """``(key path, value)`` of every NaN or infinite number: YAML's ``.nan`` and ``.inf`` are
    floats, and every comparison with NaN is false, so no ``minimum`` of the schema stops one."""
    if isinstance(instance, float) and not math.isfinite(instance):
        yield list(path), instance
    elif isinstance(instance, dict):
        for key, value in instance.items():
            yield from _non_finite(value, (*path, key))
    elif isinstance(instance, list):
        for k, value in enumerate(instance):
            yield from _non_finite(value, (*path, k))


def validate(instance, schema_part: dict, where: str, defaults: bool = True):
    """Check ``instance`` against ``schema_part``; coerce numeric strings and (with
    ``defaults``) fill in defaults (:func:`fill_defaults`), in place. Raises
    :class:`ConfigError` listing up to ten problems, each with its key path. Returns
    ``instance``."""
    validator = jsonschema.Draft7Validator(schema_part)
    _coerce_strings(instance, validator)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    lines = [_message(e) for e in errors[:10]]
    lines += [f"{key_path(p)}: {v!r} is not a finite number" for p, v in _non_finite(instance)]
    if lines:
        raise ConfigError(f"invalid {where}:\n  " + "\n  ".join(lines[:10]))
    if defaults:
        fill_defaults(instance, schema_part)
    return instance
