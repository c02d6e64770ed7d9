"""Typed CSV tables: ``table_b1.csv``, ``pairs.csv`` and the overlap tables.

Cells are written as Python writes them: floats at full precision (``repr``), booleans as
``true``/``false``, missing values empty, lines ended by CRLF (RFC 4180). Readers give typed pandas
frames (nullable integers and booleans) and refuse, with the file named, a missing file, a
missing column or a malformed cell.

Every CSV has its SHA-256 beside it, ``<name>.csv.sha256`` in ``sha256sum``'s format (so
``sha256sum -c pairs.csv.sha256`` checks it by hand), verified on every read: a table the
workflow reads again (the overlap table for the table row, the rows' pair tables for the merged
one) is refused when a byte changed, naming the file, instead of becoming a wrong table. The
CSV itself stays plain for any reader.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.atomic import atomic_path
from ..core.errors import FileFormatError


def records(rows: Sequence) -> list[dict]:
    """Rows given as dataclass records or mappings, as dicts."""
    return [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else dict(r) for r in rows]


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)


def write_csv(rows: Sequence, columns: Sequence[str], path) -> None:
    """Rows (records or dicts) as a CSV with typed cells: floats at full precision, booleans
    ``true``/``false``, missing values empty (written atomically)."""
    frame = pd.DataFrame(records(rows), columns=list(columns), dtype=object)
    data = frame.map(_csv_cell).to_csv(index=False, lineterminator="\r\n").encode()
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    with atomic_path(checksum_path(path)) as tmp:
        tmp.write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")


def checksum_path(path) -> Path:
    """Where the SHA-256 of a CSV of :func:`write_csv` lives: ``<name>.csv.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _verified_bytes(path: Path, what: str) -> bytes:
    """The CSV's bytes, checked against its ``.sha256`` file."""
    data = path.read_bytes()
    sidecar = checksum_path(path)
    advice = "delete it and rerun the workflow, which rebuilds it"
    try:
        stored = sidecar.read_text().split()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        raise FileFormatError(
            f"{path}: {what} file without a readable checksum ({sidecar.name} missing or "
            f"damaged; written by an older nobarriers?): {advice}"
        ) from None
    if stored != hashlib.sha256(data).hexdigest():
        raise FileFormatError(
            f"{path}: {what} file fails its checksum ({sidecar.name}): changed or damaged "
            f"after it was written; {advice}"
        )
    return data


def read_csv(path, columns: Sequence[str], types: Mapping[str, str], what: str) -> pd.DataFrame:
    """A CSV of :func:`write_csv` as a typed DataFrame (nullable integers and booleans, missing
    values as ``<NA>``); a missing file, a failed checksum, missing columns or a malformed cell
    are refused with the file named."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: {what} file not found")
    data = _verified_bytes(path, what)
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise FileFormatError(f"{path}: not a {what} CSV ({err})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FileFormatError(f"{path}: not a {what} file, missing columns {missing}")
    for column in frame.columns:
        kind = types.get(column, "float")
        text = frame[column]
        try:
            if kind == "str":
                frame[column] = text.replace("", pd.NA).astype("string")
            elif kind == "bool":
                bad = ~text.isin(["true", "false", ""])
                if bad.any():
                    raise ValueError(f"not a boolean: {text[bad].iloc[0]!r}")
                frame[column] = text.map({"true": True, "false": False, "": pd.NA}).astype(
                    "boolean"
                )
            elif kind == "int":
                frame[column] = pd.to_numeric(text.replace("", pd.NA)).astype("Int64")
            else:
                frame[column] = pd.to_numeric(text.replace("", pd.NA)).astype("Float64")
        except (ValueError, TypeError) as err:
            raise FileFormatError(f"{path}, column {column}: {err}") from None
    return frame


def _python(value):
    if value is pd.NA or value is None:
        return None
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def frame_records(frame: pd.DataFrame) -> list[dict]:
    """A typed DataFrame as plain dicts (``None`` for missing values)."""
    return [{k: _python(v) for k, v in row.items()} for row in frame.to_dict("records")]
