"""The workflow's JSON files, one typed record each, with its reader and writer.

=================  =====================================================  =====================
record             file                                                   written by rule
=================  =====================================================  =====================
DatasetRecord      ``data/<dataset>.json``                                ``prepare_dataset``
RoundRecord        ``<row>/rounds/max<M>-per<P>/<r>.json``                ``select_pairs``
LandscapeRecord    ``<row>/rounds/max<M>-per<P>/landscape.json``          ``landscape``
MSTPathsRecord     ``<row>/rounds/max<M>-per<P>/mst_paths.json``          ``mst_paths``
IndependentEns...  ``<row>/ensembles/independent.json``                   ``independent_ensembles``
TableRow           ``<row>/table_row.json``                               ``table_row``
=================  =====================================================  =====================

Nothing else parses these files. Each carries a SHA-256 of its content (field ``sha256``),
verified on every read: a changed byte is refused naming the file, never turned into a table.
JSON has no infinity and only string keys: the records turn ``inf`` bounds into ``null`` and
integer ids into strings on writing, and back on reading. No record holds an absolute path: the
MST path list names its files relative to its own folder, so a results folder can be moved.
Torch-free: the Snakefile reads rounds and landscapes while it plans the jobs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..core.atomic import atomic_path
from ..core.errors import FileFormatError

#: the field holding a record's checksum: SHA-256 of the canonical JSON of every other field
CHECKSUM = "sha256"


def _canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def _write_json(path, payload: dict) -> None:
    """Write ``payload`` (sorted keys) and its checksum atomically: a killed job leaves the old
    file or none, and a changed byte is caught on reading."""
    payload = {**payload, CHECKSUM: hashlib.sha256(_canonical(payload)).hexdigest()}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _read_json(path, kind: str) -> dict:
    try:
        payload = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileFormatError(f"{kind} {path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FileFormatError(f"{kind} {path}: not readable JSON ({err})") from None
    if not isinstance(payload, dict):
        raise FileFormatError(f"{kind} {path}: not a JSON object")
    stored = payload.pop(CHECKSUM, None)
    if stored != hashlib.sha256(_canonical(payload)).hexdigest():
        reason = "has no checksum" if stored is None else "fails its checksum"
        raise FileFormatError(
            f"{kind} {path}: {reason} (changed or damaged after it was written, or written by "
            "an older nobarriers); delete it and rerun the workflow, which rebuilds it"
        )
    return payload


class _Record:
    """A dataclass stored as one JSON object: ``write(path)`` / ``read(path)``."""

    KIND = "record"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, payload: dict):
        return cls(**payload)

    def write(self, path) -> None:
        _write_json(path, self.to_json())

    @classmethod
    def read(cls, path):
        payload = _read_json(path, cls.KIND)
        names = {f.name for f in fields(cls)}
        required = {
            f.name
            for f in fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(payload))
        if missing:
            raise FileFormatError(f"{cls.KIND} {path}: missing field(s) {', '.join(missing)}")
        try:
            return cls.from_json({k: v for k, v in payload.items() if k in names})
        except (TypeError, ValueError, KeyError) as err:
            raise FileFormatError(f"{cls.KIND} {path}: malformed content ({err})") from None


@dataclass
class DatasetRecord(_Record):
    """What a prepared dataset holds, as evidence for the jobs that use it."""

    KIND = "dataset record"
    dataset: str
    num_classes: int
    input_shape: list[int]
    n_train: int
    n_test: int
    provenance: dict = field(default_factory=dict)


@dataclass
class RoundRecord(_Record):
    """The pairs Algorithm 3 chose in one round (an empty list ends the loop)."""

    KIND = "round record"
    round: int
    pairs: list[tuple[int, int]]
    computed_before: int
    max_paths: int
    pairs_per_round: int
    config_hash: str

    @classmethod
    def from_json(cls, payload: dict):
        payload = dict(payload)
        payload["pairs"] = [(int(a), int(b)) for a, b in payload["pairs"]]
        return cls(**payload)

    def to_json(self) -> dict:
        payload = dataclasses.asdict(self)
        payload["pairs"] = [[int(a), int(b)] for a, b in self.pairs]
        return payload


@dataclass
class LandscapeRecord(_Record):
    """The minimum spanning tree of the computed paths, the ultrametric bounds on every pair
    and the single-linkage merges (the disconnectivity graph)."""

    KIND = "landscape record"
    nodes: list[int]
    minimum_loss: dict[int, float]
    computed: dict[tuple[int, int], float]  # the MST weights (mst.weight_subset data)
    autoneb_saddle: dict[tuple[int, int], float]  # AutoNEB's own estimates, for the record
    mst: list[tuple[int, int, float]]
    bounds: list[list[float]]
    merges: list[tuple[int, int, float, int]]
    config_hash: str
    provenance: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "nodes": [int(n) for n in self.nodes],
            "minimum_loss": {str(k): float(v) for k, v in self.minimum_loss.items()},
            "computed": [[int(a), int(b), float(s)] for (a, b), s in sorted(self.computed.items())],
            "autoneb_saddle": [
                [int(a), int(b), float(s)] for (a, b), s in sorted(self.autoneb_saddle.items())
            ],
            "mst": [[int(a), int(b), float(s)] for a, b, s in self.mst],
            "bounds": [[float(x) if math.isfinite(x) else None for x in r] for r in self.bounds],
            "merges": [[int(a), int(b), float(h), int(n)] for a, b, h, n in self.merges],
            "config_hash": self.config_hash,
            **self.provenance,
        }

    @classmethod
    def from_json(cls, payload: dict):
        return cls(
            nodes=[int(n) for n in payload["nodes"]],
            minimum_loss={int(k): float(v) for k, v in payload["minimum_loss"].items()},
            computed={(int(a), int(b)): float(s) for a, b, s in payload["computed"]},
            autoneb_saddle={(int(a), int(b)): float(s) for a, b, s in payload["autoneb_saddle"]},
            mst=[(int(a), int(b), float(s)) for a, b, s in payload["mst"]],
            bounds=[[math.inf if x is None else float(x) for x in r] for r in payload["bounds"]],
            merges=[(int(a), int(b), float(h), int(n)) for a, b, h, n in payload["merges"]],
            config_hash=payload["config_hash"],
            provenance={
                k: payload[k] for k in ("version", "git_revision", "torch") if k in payload
            },
        )

    @classmethod
    def read(cls, path):
        payload = _read_json(path, cls.KIND)
        required = ("nodes", "minimum_loss", "computed", "autoneb_saddle", "mst", "bounds",
                    "merges", "config_hash")  # fmt: skip
        missing = [f for f in required if f not in payload]
        if missing:
            raise FileFormatError(f"{cls.KIND} {path}: missing field(s) {', '.join(missing)}")
        try:
            return cls.from_json(payload)
        except (TypeError, ValueError, KeyError) as err:
            raise FileFormatError(f"{cls.KIND} {path}: malformed content ({err})") from None

    @property
    def mst_pairs(self) -> list[tuple[int, int]]:
        """The MST's edges as ``(min, max)`` pairs, in the tree's order."""
        return [tuple(sorted((a, b))) for a, b, _ in self.mst]


@dataclass
class MSTPathsRecord(_Record):
    """The path files of the final MST and their dense evaluations, for the report jobs."""

    KIND = "MST path list"
    evaluated: list[str]
    paths: list[str]
    aligned: list[str] = field(default_factory=list)  # the aligned paths (alignment), or none
    curves: list[str] = field(default_factory=list)  # curve files (curves.families), or none
    curve_evaluations: list[str] = field(default_factory=list)
    repeats: list[str] = field(default_factory=list)  # comparisons.autoneb_repeats, or none

    _LISTS = ("evaluated", "paths", "aligned", "curves", "curve_evaluations", "repeats")

    def write(self, path) -> None:
        """Stored relative to the record's own folder (a moved results folder stays whole)."""
        folder = Path(path).parent
        _write_json(
            path, {k: [_relative(p, folder) for p in getattr(self, k)] for k in self._LISTS}
        )

    @classmethod
    def read(cls, path):
        payload = _read_json(path, cls.KIND)
        folder = Path(path).parent
        try:
            return cls(
                **{k: [os.path.normpath(folder / p) for p in payload[k]] for k in cls._LISTS}
            )
        except (KeyError, TypeError) as err:
            raise FileFormatError(f"{cls.KIND} {path}: malformed content ({err})") from None


def _relative(path, folder: Path) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(folder))


@dataclass
class IndependentEnsembles(_Record):
    """Ensembles of K independently trained minima of a row (``evaluation.ensemble_sizes``):
    the test error (mean over ``draws`` seeded draws of K minima; ``None`` where the row has
    fewer than K minima), beside which the ensembles along the paths are reported."""

    KIND = "independent ensembles"
    sizes: list[int]
    test_error: list[float | None]
    draws: list[int]
    config_hash: str


@dataclass
class TableRow(_Record):
    """One row of Table B.1 (definitions: :mod:`nobarriers.report.table`). Errors are
    fractions, ``delta`` is in percentage points."""

    KIND = "table row"
    dataset: str
    architecture: str
    train_min: float
    train_sadd: float
    factor: float
    epoch: int | None
    epoch_fraction: float | None
    epoch_in_last_phase: bool | None
    epochs_total: int
    test_min: float
    test_sadd: float
    test_error_min: float
    test_error_sadd: float
    delta: float
    train_error_min: float
    train_error_sadd: float
    train_min_std: float
    train_sadd_std: float
    test_min_std: float
    test_sadd_std: float
    test_error_min_std: float
    test_error_sadd_std: float
    max_rel_std: float
    n_minima: int
    n_edges: int
    n_paths: int
    n_edges_sadd_below_min: int
    n_overlap_flagged: int
    config_hash: str | None
    # ensembles along the MST paths (evaluation.ensemble_sizes; CSV only, None when off): the
    # largest K, and the mean over MST edges of its test error and of the endpoints' (K = 2)
    ensemble_size: int | None = None
    ensemble_path_test_error: float | None = None
    ensemble_endpoints_test_error: float | None = None
    # raw vs aligned MST paths (alignment; CSV only, None when off): means over the MST edges of
    # the paths' saddle training loss (the MST weight) and of the straight-line barrier
    alignment_raw_saddle: float | None = None
    alignment_aligned_saddle: float | None = None
    alignment_raw_line: float | None = None
    alignment_aligned_line: float | None = None
    # the test metrics at the point where each MST path's training loss peaks, mean over edges
    # (CSV only): Sadd above takes each metric's own maximum over ~N points, which noise inflates
    test_sadd_at_saddle: float | None = None
    test_error_sadd_at_saddle: float | None = None
    # the Hessian at the MST saddles (evaluation.hessian_subset; CSV only): edges measured, and
    # how many of them have exactly one negative eigenvalue (a saddle of index 1)
    hessian_edges: int | None = None
    hessian_index_1_edges: int | None = None
    # raw vs aligned on the off-MST sample (comparisons.sample_pairs with alignment; CSV only)
    n_sample: int | None = None
    alignment_sample_raw_saddle: float | None = None
    alignment_sample_aligned_saddle: float | None = None
    alignment_sample_raw_line: float | None = None
    alignment_sample_aligned_line: float | None = None
    # AutoNEB's run-to-run spread (comparisons.autoneb_repeats; CSV only): runs per MST edge,
    # the mean and largest spread (max - min) of an edge's saddles, and the mean saddle of the
    # first run (the paper's, what the MST and Sadd use) and of the lowest run
    repeats: int | None = None
    repeat_spread_mean: float | None = None
    repeat_spread_max: float | None = None
    repeat_saddle_first_mean: float | None = None
    repeat_saddle_min_mean: float | None = None
    # ensembles of K independently trained minima (the largest K; CSV only)
    ensemble_independent_test_error: float | None = None
    # the curves' maximum training loss along the MST edges, mean (curves.families; CSV only)
    bezier_sadd: float | None = None
    polychain_sadd: float | None = None
    # the barrier above the higher endpoint, mean over the MST edges, along the densely evaluated
    # paths and along the straight lines between the same minima (CSV only; the trends figure)
    barrier_mean: float | None = None
    line_barrier_mean: float | None = None


#: the columns of Table B.1, in the table's order
TABLE_B1_COLUMNS = [f.name for f in fields(TableRow)]
