"""Minimum files: ``minima/<seed>.safetensors`` (format ``minimum/2``).

Tensors: the model's state dict (parameters and BatchNorm buffers with exact statistics) and
``test_predictions`` (int64). Metadata: one key, ``nobarriers``, holding a JSON object (sorted
keys, so identical minima give identical bytes): ``format``, ``arch``, ``dataset``, ``seed``,
``recipe``, ``metrics`` (train/test loss and error with exact BatchNorm), ``history`` (the
per-epoch learning curve, measured the same way), ``config_hash``, ``num_classes``,
``input_shape``, ``tensors_sha256`` (a checksum of every tensor, verified whenever the tensors
are read) and the writer's ``version``, ``git_revision`` and ``torch``. Where they apply: ``model``
(a user's network: import path and kwargs, so the file rebuilds its network without the
config), ``data`` (a user dataset's identity) and ``imported_from`` (a minimum trained elsewhere:
its source file's name and SHA-256; ``history`` is then empty).

Reading a minimum's numbers alone (``load_minimum(path, tensors=False)``: metrics, learning curve,
identity) needs no torch, so the workflow's bookkeeping jobs never import it; the functions that
handle tensors import it themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..core.atomic import atomic_path
from ..core.checksums import tensors_sha256
from ..core.errors import ConfigError, FileFormatError
from ..core.provenance import provenance

MINIMUM_FORMAT = "minimum/2"
PREDICTIONS_KEY = "test_predictions"
METADATA_KEY = "nobarriers"
_REQUIRED = ("format", "arch", "dataset", "seed", "recipe", "metrics", "history", "config_hash",
             "tensors_sha256")  # fmt: skip


def write_minimum(
    path,
    state_dict: dict,
    predictions,
    *,
    arch: str,
    dataset: str,
    seed: int,
    recipe: dict,
    metrics: dict,
    history: list[dict],
    config_hash: str = "",
    num_classes: int | None = None,
    input_shape: tuple | None = None,
    identity: dict | None = None,
) -> None:
    """Write a ``minimum/2`` safetensors file atomically. ``identity``: what identifies a row
    beyond its names (a user network's ``model`` import path and kwargs, a user dataset's
    ``data``, an imported minimum's ``imported_from``), stored only where it applies."""
    import torch
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    if PREDICTIONS_KEY in tensors:
        raise ConfigError(f"state dict of {arch} has a tensor named {PREDICTIONS_KEY!r}")
    tensors[PREDICTIONS_KEY] = torch.as_tensor(predictions).detach().cpu().to(torch.int64)
    record = {
        "format": MINIMUM_FORMAT,
        "arch": str(arch),
        "dataset": str(dataset),
        "seed": int(seed),
        "recipe": recipe,
        "metrics": metrics,
        "history": history,
        "config_hash": str(config_hash),
        "num_classes": None if num_classes is None else int(num_classes),
        "input_shape": None if input_shape is None else [int(s) for s in input_shape],
        "tensors_sha256": tensors_sha256(tensors),
        **(identity or {}),
        **provenance(),
    }
    metadata = {METADATA_KEY: json.dumps(record, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


@dataclass
class Minimum:
    """A trained minimum read from its ``minimum/2`` file."""

    state_dict: dict  # {} when read with tensors=False
    predictions: object  # int64 torch tensor of the test predictions (None: tensors=False)
    arch: str
    dataset: str
    seed: int
    metrics: dict
    history: list = field(default_factory=list)
    recipe: dict = field(default_factory=dict)
    config_hash: str = ""
    num_classes: int | None = None
    input_shape: tuple | None = None
    provenance: dict = field(default_factory=dict)
    path: str = ""
    model: dict | None = None  # a user network: {"build": import path, "kwargs": {...}}
    data: dict | None = None  # a user dataset's identity
    imported_from: dict | None = None  # a minimum trained elsewhere: {"file", "sha256"}

    def network(self, num_classes: int, input_shape: tuple):
        """A freshly built network of this minimum's architecture (no weights loaded)."""
        from ..models import build_model

        return build_model(self.arch, int(num_classes), tuple(input_shape), spec=self.model)

    def build(self, num_classes: int | None = None, input_shape: tuple | None = None):
        """The model with these weights (and BatchNorm statistics) loaded, in eval mode."""

        num_classes = self.num_classes if num_classes is None else num_classes
        input_shape = self.input_shape if input_shape is None else input_shape
        if num_classes is None or input_shape is None:
            raise ConfigError(f"minimum {self.path}: pass num_classes and input_shape (not stored)")
        model = self.network(num_classes, input_shape)
        self._check_fits(model)
        model.load_state_dict(self.state_dict)
        model.eval()
        return model

    def check_structure(self) -> None:
        """Refuse, naming the file, weights that do not fit the architecture -- BatchNorm
        buffers missing for an architecture with BatchNorm above all (a file not written by this
        package's training, whose evaluation would silently use default statistics). Nothing to
        check, and no torch imported, where the tensors were not read."""
        if self.num_classes is None or self.input_shape is None or not self.state_dict:
            return
        import torch

        try:
            with torch.device("meta"):  # shapes without memory
                model = self.network(self.num_classes, self.input_shape)
        except (RuntimeError, NotImplementedError):  # a user's builder that needs real tensors
            model = self.network(self.num_classes, self.input_shape)
        self._check_fits(model)

    def _check_fits(self, model) -> None:
        expected = model.state_dict()
        missing = [k for k in expected if k not in self.state_dict]
        unexpected = [k for k in self.state_dict if k not in expected]
        buffers = [k for k in missing if k.rsplit(".", 1)[-1] in (
            "running_mean", "running_var", "num_batches_tracked")]  # fmt: skip
        if buffers:
            raise FileFormatError(
                f"minimum {self.path}: {self.arch} has BatchNorm but the file holds no BatchNorm "
                f"statistics ({', '.join(buffers[:3])}{', ...' if len(buffers) > 3 else ''}); it "
                "was not written by this package's training; delete it to retrain the minimum"
            )
        shapes = [k for k in expected if k in self.state_dict
                  and tuple(self.state_dict[k].shape) != tuple(expected[k].shape)]  # fmt: skip
        if missing or unexpected or shapes:
            raise FileFormatError(
                f"minimum {self.path}: weights do not fit {self.arch} with {self.num_classes} "
                f"classes and input {self.input_shape} (missing {missing[:3]}, unexpected "
                f"{unexpected[:3]}, other shapes {shapes[:3]}); delete it to retrain the minimum"
            )


def load_minimum(
    path,
    expect_arch: str | None = None,
    expect_dataset: str | None = None,
    expect_config_hash: str | None = None,
    tensors: bool = True,
) -> Minimum:
    """Read a minimum file; refuse anything that is not a complete, unchanged ``minimum/2`` file
    of the expected arch / dataset / config hash with :class:`FileFormatError` naming the file.
    ``tensors=False`` reads the numbers and the identity only (torch-free, no checksum of the
    tensors, which are not read)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"minimum {path}: file not found")
    want_tensors = tensors
    try:
        tensors = {}
        with safe_open(str(path), framework="pt" if want_tensors else "numpy") as f:
            raw = dict(f.metadata() or {})
            keys = list(f.keys())
            for key in keys if want_tensors else []:
                tensors[key] = f.get_tensor(key)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds
        raise FileFormatError(
            f"minimum {path}: not a readable safetensors file (corrupt or truncated?): {exc}"
        ) from exc
    try:
        record = json.loads(raw[METADATA_KEY])
    except (KeyError, json.JSONDecodeError):
        found = raw.get("nobarriers_format") or "no nobarriers metadata"
        raise FileFormatError(
            f"minimum {path}: not a {MINIMUM_FORMAT} file ({found}); written by another "
            "program or an older nobarriers: delete it to retrain the minimum"
        ) from None
    if record.get("format") != MINIMUM_FORMAT:
        raise FileFormatError(
            f"minimum {path}: format {record.get('format')!r}, expected {MINIMUM_FORMAT!r}"
        )
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise FileFormatError(f"minimum {path}: metadata field(s) {', '.join(missing)} missing")
    if PREDICTIONS_KEY not in keys:
        raise FileFormatError(f"minimum {path}: tensor {PREDICTIONS_KEY!r} is missing")
    if want_tensors and tensors_sha256(tensors) != record["tensors_sha256"]:
        raise FileFormatError(
            f"minimum {path}: checksum mismatch of the stored tensors (the file was changed or "
            "damaged after it was written); delete it and rerun the workflow, which retrains it"
        )
    for name, want in (
        ("arch", expect_arch),
        ("dataset", expect_dataset),
        ("config_hash", expect_config_hash),
    ):
        if want is not None and str(record[name]) != str(want):
            raise FileFormatError(
                f"minimum {path}: {name} is {record[name]!r}, expected {str(want)!r}"
            )
    predictions = tensors.pop(PREDICTIONS_KEY, None)
    minimum = Minimum(
        state_dict=tensors,
        predictions=predictions,
        arch=record["arch"],
        dataset=record["dataset"],
        seed=int(record["seed"]),
        metrics=record["metrics"],
        history=record["history"],
        recipe=record["recipe"],
        config_hash=record["config_hash"],
        num_classes=record.get("num_classes"),
        input_shape=None if record.get("input_shape") is None else tuple(record["input_shape"]),
        provenance={k: record[k] for k in ("version", "git_revision", "torch") if k in record},
        path=str(path),
        model=record.get("model"),
        data=record.get("data"),
        imported_from=record.get("imported_from"),
    )
    minimum.check_structure()
    return minimum
