"""Minimum files: ``minima/<seed>.safetensors`` (format ``minimum/1``).

Tensors: the model's state dict (parameters and BatchNorm buffers with exact statistics) and
``test_predictions`` (int64). Metadata (strings): ``nobarriers_format``, ``arch``, ``dataset``,
``seed``, ``recipe`` (JSON), ``metrics`` (JSON: train/test loss and error with exact BatchNorm),
``history`` (JSON: the per-epoch learning curve), ``config_hash``, ``num_classes``,
``input_shape`` (JSON) and the writer's ``version``, ``git_revision`` and ``torch``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..atomic import atomic_path
from ..errors import ConfigError, FileFormatError
from ..runtime import provenance

MINIMUM_FORMAT = "minimum/1"
PREDICTIONS_KEY = "test_predictions"


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
) -> None:
    """Write a ``minimum/1`` safetensors file atomically (see ``docs/design.md``)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    if PREDICTIONS_KEY in tensors:
        raise ConfigError(f"state dict of {arch} has a tensor named {PREDICTIONS_KEY!r}")
    tensors[PREDICTIONS_KEY] = torch.as_tensor(predictions).detach().cpu().to(torch.int64)
    prov = provenance()
    metadata = {
        "nobarriers_format": MINIMUM_FORMAT,
        "arch": str(arch),
        "dataset": str(dataset),
        "seed": str(int(seed)),
        "recipe": json.dumps(recipe, sort_keys=True),
        "metrics": json.dumps(metrics, sort_keys=True),
        "history": json.dumps(history),
        "config_hash": str(config_hash),
        "version": str(prov["version"]),
        "git_revision": str(prov["git_revision"]),
        "torch": str(prov["torch"]),
    }
    if num_classes is not None:
        metadata["num_classes"] = str(int(num_classes))
    if input_shape is not None:
        metadata["input_shape"] = json.dumps([int(s) for s in input_shape])
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


_JSON_FIELDS = ("recipe", "metrics", "history", "input_shape")


@dataclass
class Minimum:
    """A trained minimum read from its ``minimum/1`` file."""

    state_dict: dict
    metadata: dict  # strings, with the JSON fields (recipe, metrics, history, ...) decoded
    predictions: torch.Tensor  # int64 test-set predictions (exact BatchNorm)
    arch: str
    dataset: str
    seed: int
    metrics: dict
    history: list = field(default_factory=list)
    path: str = ""

    @property
    def config_hash(self) -> str:
        return self.metadata.get("config_hash", "")

    def build(self, num_classes: int | None = None, input_shape: tuple | None = None):
        """The model with these weights (and BatchNorm statistics) loaded, in eval mode."""
        from ..models import build_model

        if num_classes is None:
            if "num_classes" not in self.metadata:
                raise ConfigError(f"minimum {self.path}: pass num_classes (not stored)")
            num_classes = int(self.metadata["num_classes"])
        if input_shape is None:
            if "input_shape" not in self.metadata:
                raise ConfigError(f"minimum {self.path}: pass input_shape (not stored)")
            input_shape = tuple(self.metadata["input_shape"])
        model = build_model(self.arch, int(num_classes), tuple(input_shape))
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise FileFormatError(
                f"minimum {self.path}: weights do not fit {self.arch} with {num_classes} classes "
                f"and input {tuple(input_shape)}: {exc}"
            ) from exc
        model.eval()
        return model


def load_minimum(
    path,
    expect_arch: str | None = None,
    expect_dataset: str | None = None,
    expect_config_hash: str | None = None,
) -> Minimum:
    """Read a minimum file; refuse anything that is not a complete ``minimum/1`` file of the
    expected arch / dataset / config hash with :class:`FileFormatError` naming the file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"minimum {path}: file not found")
    try:
        tensors = {}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = dict(f.metadata() or {})
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds
        raise FileFormatError(
            f"minimum {path}: not a readable safetensors file (corrupt or truncated?): {exc}"
        ) from exc
    fmt = raw.get("nobarriers_format")
    if fmt != MINIMUM_FORMAT:
        raise FileFormatError(
            f"minimum {path}: format marker nobarriers_format={fmt!r}, expected {MINIMUM_FORMAT!r}"
        )
    for key in ("arch", "dataset", "seed", "metrics", "history"):
        if key not in raw:
            raise FileFormatError(f"minimum {path}: metadata field {key!r} is missing")
    if PREDICTIONS_KEY not in tensors:
        raise FileFormatError(f"minimum {path}: tensor {PREDICTIONS_KEY!r} is missing")
    for name, want in (
        ("arch", expect_arch),
        ("dataset", expect_dataset),
        ("config_hash", expect_config_hash),
    ):
        if want is not None and raw.get(name, "") != str(want):
            raise FileFormatError(
                f"minimum {path}: {name} is {raw.get(name, '')!r}, expected {str(want)!r}"
            )
    metadata: dict = dict(raw)
    for key in _JSON_FIELDS:
        if key in raw:
            try:
                metadata[key] = json.loads(raw[key])
            except json.JSONDecodeError as exc:
                raise FileFormatError(
                    f"minimum {path}: metadata {key!r} is not JSON: {exc}"
                ) from exc
    try:
        seed = int(raw["seed"])
    except ValueError as exc:
        raise FileFormatError(f"minimum {path}: seed {raw['seed']!r} is not an integer") from exc
    predictions = tensors.pop(PREDICTIONS_KEY)
    return Minimum(
        state_dict=tensors,
        metadata=metadata,
        predictions=predictions,
        arch=raw["arch"],
        dataset=raw["dataset"],
        seed=seed,
        metrics=metadata["metrics"],
        history=metadata["history"],
        path=str(path),
    )
