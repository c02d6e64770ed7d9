"""HDF5 files for computed paths (one per AutoNEB job) and their dense exact-BN evaluation.

The layout of both kinds is documented dataset by dataset in ``docs/pathfile.md``. Files are
written atomically (a killed job never leaves a torn file) and every reader refuses, with a
``FileFormatError`` naming the file and the problem, anything that is not HDF5, is truncated, lacks
a dataset, carries another format marker, was written under another configuration hash, or no
longer matches its checksums (``content_sha256`` over every attribute and dataset but the pivot
arrays, verified on every read; ``pivots_sha256`` verified whenever the pivots are read).
Identical results give identical bytes: the files hold no time stamps or wall times (those go to
the job's log and benchmark files). Torch-free: pivots come back as numpy arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..core.atomic import atomic_path
from ..core.errors import FileFormatError
from ..core.provenance import provenance

PATH_FORMAT = "path/2"
EVALUATION_FORMAT = "path-evaluation/2"
CYCLE_ARRAYS = ("t", "loss", "pivot_loss", "inserted")
CYCLE_ATTRS = ("cycle", "steps", "lr", "n_pivots", "saddle_loss")
#: datasets whose bytes are covered by their own digest, not by ``content_sha256``
_PIVOT_ARRAYS = "pivots"
_CHUNK_MAX = 1 << 20  # elements per chunk along a pivot row (4 MiB of float32)

# root attributes set by the writers; ``extra_attrs`` may not use these names
_RESERVED = frozenset(
    {
        "nobarriers_format",
        "endpoint_a",
        "endpoint_b",
        "config",
        "config_hash",
        "seed",
        "dataset",
        "arch",
        "version",
        "git_revision",
        "torch",
        "saddle_loss",
        "autoneb_saddle_loss",
        "weight_subset",
        "n_cycles",
        "n_pivots",
        "dim",
        "pivots_sha256",
        "content_sha256",
    }
)

__all__ = [
    "PATH_FORMAT",
    "EVALUATION_FORMAT",
    "PathCycle",
    "PathRecord",
    "EvaluationRecord",
    "write_path",
    "read_path",
    "write_evaluation",
    "read_evaluation",
]


@dataclass
class PathCycle:
    """One stored AutoNEB cycle; same fields as ``autoneb.CycleRecord``."""

    cycle: int
    steps: int
    lr: float
    n_pivots: int
    t: np.ndarray
    loss: np.ndarray
    pivot_loss: np.ndarray
    saddle_loss: float
    inserted: list[float]
    pivots: np.ndarray | None = None
    climbing: int | None = None  # interior index of the climbing pivot (climbing_cycles)
    no_climb: str = ""  # a climbing cycle without a climber: why


@dataclass
class PathRecord:
    """A path file read back: the ``AutoNEBResult`` fields plus identity and provenance."""

    filename: str
    endpoints: tuple
    pivots: np.ndarray | None  # [N+2, D] float32, None when read with load_pivots=False
    target_weights: np.ndarray  # [N+1] float64
    history: list[PathCycle]
    saddle_loss: float  # the MST weight: max of saddle["train_loss"]
    autoneb_saddle_loss: float  # AutoNEB's own estimate (last cycle, insertion subset)
    saddle: dict[str, np.ndarray]  # "t", "train_loss": the path on the row's weighting data
    weight_subset: int | None  # training samples of that data (None: the full training set)
    cycle_saddle_loss: np.ndarray  # [n_cycles] float64
    config: dict
    config_hash: str
    seed: int
    dataset: str
    arch: str
    attrs: dict = field(default_factory=dict)  # every root attribute, decoded


@dataclass
class EvaluationRecord:
    """A dense-evaluation file read back."""

    filename: str
    endpoints: tuple
    dense: dict[str, np.ndarray]  # "t" + metric curves along the path
    line: dict[str, np.ndarray]  # same for the straight segment ({} if not stored)
    saddles: dict[str, float]  # max of each dense metric
    line_saddles: dict[str, float]
    ensembles: dict[str, np.ndarray] | None  # sizes, test_error, endpoint_test_error (or None)
    config: dict
    config_hash: str
    seed: int
    dataset: str
    arch: str
    attrs: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- writing helpers


def _json_default(obj: Any):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _to_numpy(x, dtype) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor (this module needs no torch itself)
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _pivot_dataset(group: h5py.Group, name: str, data: np.ndarray, compression):
    rows, dim = data.shape
    kwargs = {}
    if compression is not None and data.size:
        kwargs = dict(
            chunks=(1, min(dim, _CHUNK_MAX)),
            compression=compression,
            compression_opts=4 if compression == "gzip" else None,
            shuffle=True,
        )
    return group.create_dataset(name, data=data, **kwargs)


def _write_root_attrs(
    f: h5py.File,
    marker: str,
    *,
    endpoints,
    config,
    seed,
    dataset,
    arch,
    config_hash,
    extra_attrs,
    filename,
):
    try:
        a, b = endpoints
    except (TypeError, ValueError):
        raise ValueError(f"{filename}: endpoints must be a pair of minimum ids") from None
    try:
        config_json = json.dumps(dict(config), sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{filename}: config is not JSON serialisable: {exc}") from None
    attrs = {
        "nobarriers_format": marker,
        "endpoint_a": a,
        "endpoint_b": b,
        "config": config_json,
        "config_hash": str(config_hash),
        "seed": int(seed),
        "dataset": str(dataset),
        "arch": str(arch),
    }
    attrs.update({k: str(v) for k, v in provenance().items()})
    for key, value in (extra_attrs or {}).items():
        if key in _RESERVED or key in attrs:
            raise ValueError(f"{filename}: extra attribute {key!r} clashes with a reserved name")
        attrs[key] = value
    for key, value in attrs.items():
        try:
            f.attrs[key] = value
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{filename}: cannot store attribute {key!r}={value!r}: {exc}"
            ) from None


def _sha256(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _content_digest(f: h5py.File) -> str:
    """SHA-256 of every attribute (but ``content_sha256``) and every dataset (but the pivot
    arrays, which carry digests of their own), in sorted order, as read back from the file."""
    digest = hashlib.sha256()
    names = [""]
    f.visit(names.append)
    for name in sorted(names):
        obj = f[name] if name else f
        for key in sorted(obj.attrs):
            if name == "" and key == "content_sha256":
                continue
            value = _decode(obj.attrs[key])
            digest.update(f"{name}@{key}={json.dumps(value, default=str)}".encode())
        if isinstance(obj, h5py.Dataset) and obj.name.rsplit("/", 1)[-1] != _PIVOT_ARRAYS:
            digest.update(name.encode())
            digest.update(_sha256(obj[()]).encode())
    return digest.hexdigest()


def _seal(f: h5py.File) -> None:
    f.attrs["content_sha256"] = _content_digest(f)


def _check_seal(path: Path, f: h5py.File) -> None:
    stored = _decode(f.attrs.get("content_sha256"))
    if stored is None or stored != _content_digest(f):
        raise FileFormatError(
            f"{path}: content checksum mismatch (the file was changed or damaged after it was "
            "written); delete it and rerun the workflow, which recomputes it"
        )


def _check_pivots(path: Path, name: str, array: np.ndarray, stored) -> None:
    if stored is None or _sha256(array) != stored:
        raise FileFormatError(
            f"{path}: checksum mismatch of {name} (the file was changed or damaged after it was "
            "written); delete it and rerun the workflow, which recomputes it"
        )


def write_path(
    filename: str | os.PathLike,
    result,
    *,
    saddle: Mapping[str, Any],
    weight_subset: int | None,
    endpoints: tuple,
    config: Mapping,
    seed: int,
    dataset: str,
    arch: str,
    config_hash: str,
    extra_attrs: Mapping | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write an ``AutoNEBResult`` (duck-typed) to ``filename`` atomically; returns the path.

    ``saddle`` = ``{"t", "train_loss"}``: the training loss along the final path on the row's
    weighting data (``weight_subset`` samples, ``None`` = the full training set) with exact
    BatchNorm statistics; its maximum is the path's saddle, the weight of Algorithm 3 and the
    MST. ``endpoints`` = ``(id_a, id_b)``: ``result.pivots[0]`` is minimum ``id_a``, the last row
    ``id_b``. Pivots are stored as float32 (bitwise round trip for float32 input), compressed
    (gzip level 4 + shuffle filter) in chunks of one pivot row; ``compression`` may be "gzip",
    "lzf" or None.
    Cycle pivots (``CycleRecord.pivots``) are stored only for cycles that carry them.
    """
    filename = Path(filename)
    pivots = _to_numpy(result.pivots, np.float32)
    if pivots.ndim != 2 or pivots.shape[0] < 2 or pivots.shape[1] < 1:
        raise ValueError(f"{filename}: pivots must be [N+2, D] with N >= 0, got {pivots.shape}")
    weights = _to_numpy(result.target_weights, np.float64)
    if weights.shape != (pivots.shape[0] - 1,):
        raise ValueError(
            f"{filename}: target_weights must have {pivots.shape[0] - 1} entries for "
            f"{pivots.shape[0]} pivots, got shape {weights.shape}"
        )
    history = list(result.history)
    autoneb_saddle = getattr(result, "saddle_loss", None)
    if autoneb_saddle is None:
        autoneb_saddle = history[-1].saddle_loss if history else math.nan
    curve = {k: _to_numpy(saddle[k], np.float64).reshape(-1) for k in ("t", "train_loss")}
    if curve["t"].shape != curve["train_loss"].shape or not curve["t"].size:
        raise ValueError(f"{filename}: the saddle curve needs matching, non-empty t and train_loss")
    with atomic_path(filename) as tmp, h5py.File(tmp, "w") as f:
        _write_root_attrs(
            f,
            PATH_FORMAT,
            endpoints=endpoints,
            config=config,
            seed=seed,
            dataset=dataset,
            arch=arch,
            config_hash=config_hash,
            extra_attrs=extra_attrs,
            filename=filename,
        )
        f.attrs["saddle_loss"] = float(curve["train_loss"].max())
        f.attrs["autoneb_saddle_loss"] = float(autoneb_saddle)
        f.attrs["weight_subset"] = -1 if weight_subset is None else int(weight_subset)
        f.attrs["pivots_sha256"] = _sha256(pivots)
        f.attrs["n_cycles"] = len(history)
        f.attrs["n_pivots"] = pivots.shape[0] - 2
        f.attrs["dim"] = pivots.shape[1]
        _pivot_dataset(f, "pivots", pivots, compression)
        f.create_dataset("target_weights", data=weights)
        g = f.create_group("saddle")
        for k, v in curve.items():
            g.create_dataset(k, data=v)
        f.create_dataset(
            "cycle_saddle_loss",
            data=np.array([float(r.saddle_loss) for r in history], dtype=np.float64),
        )
        cycles = f.create_group("cycles")
        for k, rec in enumerate(history):
            g = cycles.create_group(f"{k:03d}")
            g.attrs["cycle"] = int(rec.cycle)
            g.attrs["steps"] = int(rec.steps)
            g.attrs["lr"] = float(rec.lr)
            g.attrs["n_pivots"] = int(rec.n_pivots)
            g.attrs["saddle_loss"] = float(rec.saddle_loss)
            climbing = getattr(rec, "climbing", None)
            g.attrs["climbing_pivot"] = -1 if climbing is None else int(climbing)
            if getattr(rec, "no_climb", ""):
                g.attrs["no_climb"] = str(rec.no_climb)
            for name in CYCLE_ARRAYS:
                g.create_dataset(name, data=_to_numpy(getattr(rec, name), np.float64).reshape(-1))
            cyc_pivots = getattr(rec, "pivots", None)
            if cyc_pivots is not None:
                cp = _to_numpy(cyc_pivots, np.float32)
                if cp.ndim != 2:
                    raise ValueError(f"{filename}: cycle {rec.cycle} pivots must be 2-D")
                g.attrs["pivots_sha256"] = _sha256(cp)
                _pivot_dataset(g, "pivots", cp, compression)
        _seal(f)
    return filename


def write_evaluation(
    filename: str | os.PathLike,
    dense: Mapping[str, Any],
    line: Mapping[str, Any] | None,
    *,
    endpoints: tuple,
    config: Mapping,
    seed: int,
    dataset: str,
    arch: str,
    config_hash: str,
    extra_attrs: Mapping | None = None,
    ensembles: Mapping[str, Any] | None = None,
) -> Path:
    """Write the dense evaluation of a path (and of the straight segment) atomically.

    ``dense`` / ``line``: ``{"t": [M], metric: [M], ...}`` as returned by
    ``evaluate.evaluate_path`` / ``evaluate_line`` (usually
    :data:`nobarriers.core.metrics.METRICS`);
    ``line`` may be None. Each curve is stored float64; the maximum of every metric is stored as
    the group attribute ``saddle_<metric>``. ``ensembles``: ``evaluate.path_ensembles``'s
    arrays (``sizes``, ``test_error``, ``endpoint_test_error``), stored in the group
    ``/ensembles`` (absent when not measured).
    """
    filename = Path(filename)
    groups = {"dense": dense, "line": line}
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for gname, curves in groups.items():
        if curves is None:
            continue
        if "t" not in curves:
            raise ValueError(f"{filename}: the {gname} curves have no 't'")
        arrays[gname] = {k: _to_numpy(v, np.float64).reshape(-1) for k, v in curves.items()}
        n = arrays[gname]["t"].shape[0]
        for k, v in arrays[gname].items():
            if v.shape[0] != n:
                raise ValueError(
                    f"{filename}: {gname} curve {k!r} has {v.shape[0]} points, 't' has {n}"
                )
    if "dense" not in arrays:
        raise ValueError(f"{filename}: dense curves are required")
    with atomic_path(filename) as tmp, h5py.File(tmp, "w") as f:
        _write_root_attrs(
            f,
            EVALUATION_FORMAT,
            endpoints=endpoints,
            config=config,
            seed=seed,
            dataset=dataset,
            arch=arch,
            config_hash=config_hash,
            extra_attrs=extra_attrs,
            filename=filename,
        )
        for gname, curves in arrays.items():
            g = f.create_group(gname)
            for k, v in curves.items():
                g.create_dataset(k, data=v)
                if k != "t":
                    g.attrs[f"saddle_{k}"] = float(np.max(v)) if v.size else math.nan
        if ensembles is not None:
            g = f.create_group("ensembles")
            g.create_dataset("sizes", data=np.asarray(ensembles["sizes"], dtype=np.int64))
            for k in ("test_error", "endpoint_test_error"):
                g.create_dataset(k, data=_to_numpy(ensembles[k], np.float64).reshape(-1))
        _seal(f)
    return filename


# --------------------------------------------------------------------------- reading helpers


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


@contextlib.contextmanager
def _open_checked(filename, marker: str, expect_config_hash: str | None):
    path = Path(filename)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise FileFormatError(f"{path}: not an HDF5 file (expected a nobarriers {marker} file)")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(
            f"{path}: cannot open the HDF5 file (truncated or corrupt): {exc}"
        ) from None
    with f:
        try:
            found = _decode(f.attrs.get("nobarriers_format"))
        except OSError as exc:
            raise FileFormatError(f"{path}: unreadable attributes (corrupt file): {exc}") from None
        if found is None:
            raise FileFormatError(
                f"{path}: no 'nobarriers_format' attribute: not a nobarriers file "
                f"(expected {marker!r})"
            )
        if found != marker:
            raise FileFormatError(
                f"{path}: format {found!r}, expected {marker!r} (another kind of file, or one "
                "written by another nobarriers version; delete it to recompute it)"
            )
        stored_hash = _decode(f.attrs.get("config_hash"))
        if expect_config_hash is not None and stored_hash != expect_config_hash:
            raise FileFormatError(
                f"{path}: written with config_hash {stored_hash!r}, expected "
                f"{expect_config_hash!r} (the configuration changed since; recompute the file)"
            )
        try:
            yield path, f
        except FileFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise FileFormatError(f"{path}: unreadable or corrupt content: {exc}") from None


def _require(path: Path, group: h5py.Group, names, what: str = "dataset"):
    missing = [n for n in names if n not in group]
    if missing:
        where = group.name.rstrip("/")
        raise FileFormatError(
            f"{path}: missing {what}(s) " + ", ".join(f"{where}/{n}" for n in missing)
        )


def _require_attrs(path: Path, obj, names):
    missing = [n for n in names if n not in obj.attrs]
    if missing:
        raise FileFormatError(
            f"{path}: {obj.name} lacks attribute(s) " + ", ".join(repr(n) for n in missing)
        )


def _common(path: Path, f: h5py.File, expect_endpoints) -> dict:
    _require_attrs(
        path, f, ("endpoint_a", "endpoint_b", "config", "config_hash", "seed", "dataset", "arch")
    )
    attrs = {k: _decode(v) for k, v in f.attrs.items()}
    endpoints = (attrs["endpoint_a"], attrs["endpoint_b"])
    if expect_endpoints is not None and tuple(expect_endpoints) != endpoints:
        raise FileFormatError(
            f"{path}: holds the path {endpoints[0]}-{endpoints[1]}, expected "
            f"{expect_endpoints[0]}-{expect_endpoints[1]}"
        )
    try:
        config = json.loads(attrs["config"])
    except (TypeError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"{path}: attribute 'config' is not valid JSON: {exc}") from None
    return dict(
        filename=str(path),
        endpoints=endpoints,
        config=config,
        config_hash=attrs["config_hash"],
        seed=attrs["seed"],
        dataset=attrs["dataset"],
        arch=attrs["arch"],
        attrs=attrs,
    )


def read_path(
    filename: str | os.PathLike,
    load_pivots: bool = True,
    *,
    expect_config_hash: str | None = None,
    expect_endpoints: tuple | None = None,
) -> PathRecord:
    """Read a path file written by ``write_path``.

    ``load_pivots=False`` skips the (large) pivot arrays: ``pivots`` and every cycle's ``pivots``
    are None. A mismatching ``expect_config_hash`` / ``expect_endpoints`` is a FileFormatError.
    """
    with _open_checked(filename, PATH_FORMAT, expect_config_hash) as (path, f):
        _require(path, f, ("pivots", "target_weights", "cycle_saddle_loss", "cycles", "saddle"))
        common = _common(path, f, expect_endpoints)
        _require_attrs(path, f, ("saddle_loss", "autoneb_saddle_loss", "weight_subset"))
        shape = f["pivots"].shape
        if len(shape) != 2 or shape[0] < 2:
            raise FileFormatError(f"{path}: /pivots has shape {shape}, expected [N+2, D]")
        weights = f["target_weights"][()]
        if weights.shape != (shape[0] - 1,):
            raise FileFormatError(
                f"{path}: /target_weights has shape {weights.shape} for {shape[0]} pivots"
            )
        pivots = None
        if load_pivots:
            array = f["pivots"][()]
            _check_pivots(path, "/pivots", array, _decode(f.attrs.get("pivots_sha256")))
            pivots = array
        history = []
        names = sorted(f["cycles"], key=int)
        for name in names:
            g = f["cycles"][name]
            _require(path, g, CYCLE_ARRAYS)
            _require_attrs(path, g, CYCLE_ATTRS)
            climbing = int(g.attrs.get("climbing_pivot", -1))  # interior index, -1: none
            cycle_pivots = None
            if load_pivots and "pivots" in g:
                cycle_pivots = g["pivots"][()]
                _check_pivots(path, f"{g.name}/pivots", cycle_pivots, _decode(
                    g.attrs.get("pivots_sha256")))  # fmt: skip
            history.append(
                PathCycle(
                    cycle=int(g.attrs["cycle"]),
                    steps=int(g.attrs["steps"]),
                    lr=float(g.attrs["lr"]),
                    n_pivots=int(g.attrs["n_pivots"]),
                    t=g["t"][()],
                    loss=g["loss"][()],
                    pivot_loss=g["pivot_loss"][()],
                    saddle_loss=float(g.attrs["saddle_loss"]),
                    inserted=[float(x) for x in g["inserted"][()]],
                    pivots=cycle_pivots,
                    climbing=None if climbing < 0 else climbing,
                    no_climb=_decode(g.attrs.get("no_climb", "")) or "",
                )
            )
        cycle_saddle = f["cycle_saddle_loss"][()]
        if cycle_saddle.shape != (len(history),):
            raise FileFormatError(
                f"{path}: /cycle_saddle_loss has {cycle_saddle.shape} entries for "
                f"{len(history)} cycles under /cycles"
            )
        saddle, _ = _read_curves(path, f["saddle"])
        subset = int(f.attrs["weight_subset"])
        _check_seal(path, f)
        return PathRecord(
            pivots=pivots,
            target_weights=weights,
            history=history,
            saddle_loss=float(f.attrs["saddle_loss"]),
            autoneb_saddle_loss=float(f.attrs["autoneb_saddle_loss"]),
            saddle=saddle,
            weight_subset=None if subset < 0 else subset,
            cycle_saddle_loss=cycle_saddle,
            **common,
        )


def _read_curves(path: Path, g: h5py.Group) -> tuple[dict, dict]:
    _require(path, g, ("t",))
    curves = {k: g[k][()] for k in g}
    n = curves["t"].shape
    for k, v in curves.items():
        if v.ndim != 1 or v.shape != n:
            raise FileFormatError(f"{path}: {g.name}/{k} has shape {v.shape}, 't' has {n}")
    saddles = {k: float(np.max(v)) if v.size else math.nan for k, v in curves.items() if k != "t"}
    return curves, saddles


def read_evaluation(
    filename: str | os.PathLike,
    *,
    expect_config_hash: str | None = None,
    expect_endpoints: tuple | None = None,
) -> EvaluationRecord:
    """Read a dense-evaluation file written by ``write_evaluation``."""
    with _open_checked(filename, EVALUATION_FORMAT, expect_config_hash) as (path, f):
        _require(path, f, ("dense",), what="group")
        common = _common(path, f, expect_endpoints)
        dense, saddles = _read_curves(path, f["dense"])
        line, line_saddles = _read_curves(path, f["line"]) if "line" in f else ({}, {})
        ensembles = None
        if "ensembles" in f:
            _require(path, f["ensembles"], ("sizes", "test_error", "endpoint_test_error"))
            ensembles = {k: v[()] for k, v in f["ensembles"].items()}
            if ensembles["sizes"].shape != ensembles["test_error"].shape:
                raise FileFormatError(f"{path}: /ensembles sizes and test_error differ in length")
        _check_seal(path, f)
        return EvaluationRecord(
            dense=dense,
            line=line,
            saddles=saddles,
            line_saddles=line_saddles,
            ensembles=ensembles,
            **common,
        )
