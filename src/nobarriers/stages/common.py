"""What the stages share: a row's minima and its MST's files, each checked against the row's
settings. Torch-free unless a minimum's tensors are asked for."""

from __future__ import annotations

import csv
from pathlib import Path

from ..core.errors import FileFormatError
from ..formats.minimum import Minimum, load_minimum
from ..formats.pathfile import EvaluationRecord, read_evaluation, read_path
from ..formats.records import LandscapeRecord
from ..settings.config import stage_hash


def load_row_minima(
    paths, row: dict, tensors: bool = True, expected_hash: str | None = None
) -> list[Minimum]:
    """The minimum files of a row, each checked against the row's training settings (or
    ``expected_hash``; ``tensors=False``: their numbers and identity only, without torch)."""
    expected = expected_hash or stage_hash(row, "minima")
    return [load_minimum(p, expect_config_hash=expected, tensors=tensors) for p in paths]


def evaluations_of(evaluated_files, row: dict) -> dict[tuple, EvaluationRecord]:
    """The dense evaluations of a row's MST paths, keyed by the pair each file stores."""
    expected = stage_hash(row, "evaluation")
    out = {}
    for f in evaluated_files:
        record = read_evaluation(f, expect_config_hash=expected)
        out[tuple(sorted(map(int, record.endpoints)))] = record
    return out


def highest_mst_path(landscape: LandscapeRecord, path_files, row: dict):
    """The MST edge with the highest saddle (the path that decides the row's barrier) and its
    path file, read with pivots; the pair is the one the file stores."""
    a, b, _ = max(landscape.mst, key=lambda e: e[2])
    expected = stage_hash(row, "paths")
    for p in path_files:
        if tuple(sorted(map(int, read_path(p, load_pivots=False).endpoints))) == (a, b):
            return (a, b), read_path(p, load_pivots=True, expect_config_hash=expected)
    raise FileFormatError(f"no path file of the MST edge {a}-{b} among {list(path_files)}")


def longest_cycle(cycle_files) -> tuple[float, str] | None:
    """The longest AutoNEB cycle (seconds) among a row's ``*.cycles.tsv`` files and the file
    that recorded it; ``None`` before any path job finished a cycle."""
    longest = None
    for f in cycle_files:
        with open(f, newline="") as handle:
            for line in csv.DictReader(handle, delimiter="\t"):
                if longest is None or float(line["wall_s"]) > longest[0]:
                    longest = (float(line["wall_s"]), str(f))
    return longest


def files_of_other_minima(row_dir, seeds) -> list[Path]:
    """Files in a row's folder that belong to a minimum the configuration no longer has (after
    ``minima_per_arch`` or ``seed_base`` changed): minima whose seed is not among ``seeds``, and
    the paths, evaluations and aligned paths that end at one. The workflow never reads them;
    the start-up log names them, so that they are not mistaken for results."""
    wanted = {int(s) for s in seeds}
    row_dir = Path(row_dir)
    out = [p for p in sorted((row_dir / "minima").glob("*.safetensors"))
           if p.stem.isdigit() and int(p.stem) not in wanted]  # fmt: skip
    for folder in ("paths", "evaluated", "aligned"):
        for p in sorted((row_dir / folder).glob("*.h5")):
            ends = p.stem.split("-")
            if len(ends) == 2 and all(e.isdigit() for e in ends):
                if not {int(e) for e in ends} <= wanted:
                    out.append(p)
    return out
