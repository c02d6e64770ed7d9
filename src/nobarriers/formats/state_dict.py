"""State dicts written by other programs: the minima a user trained elsewhere.

Two kinds of file, never unpickled:

* safetensors (``.safetensors``): tensors by name (a ``minimum/2`` file of this package is one,
  its ``test_predictions`` left out);
* ``torch.save`` files (``.pt``, ``.pth``, ``.ckpt``, ...), read with ``weights_only=True``: a
  state dict, or a checkpoint that holds one under ``state_dict``, ``model`` or
  ``model_state_dict``. A file that needs arbitrary Python objects (a pickled ``nn.Module``, a
  class instance) is refused with the way to save it as a state dict.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import FileFormatError

#: where checkpoints written by common training scripts keep the model's state dict
NESTED_KEYS = ("state_dict", "model_state_dict", "model")
SAFETENSORS_MAGIC_LIMIT = 100_000_000  # a safetensors header is 8 bytes of length, then JSON


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(9)
    return (
        len(head) == 9
        and int.from_bytes(head[:8], "little") < SAFETENSORS_MAGIC_LIMIT
        and (head[8:9] == b"{")
    )


def read_state_dict(path) -> dict:
    """``{name: tensor}`` of a state-dict file (see the module doc); :class:`FileFormatError`
    naming the file for anything else."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: file not found")
    if _is_safetensors(path):
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds
            raise FileFormatError(f"{path}: not a readable safetensors file ({exc})") from None
        tensors.pop("test_predictions", None)  # a minimum/2 file of this package
        return tensors
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a pickle or a damaged file: refused either way
        text = str(exc)
        if "weights_only" in text or "Weights only load failed" in text:
            raise FileFormatError(
                f"{path}: holds Python objects other than tensors (a pickle: a saved nn.Module "
                "or class instance), which are never unpickled; save the weights with "
                "torch.save(model.state_dict(), path) or safetensors"
            ) from None
        reason = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise FileFormatError(
            f"{path}: neither safetensors nor a torch.save file ({reason})"
        ) from None
    if isinstance(payload, dict):
        for key in NESTED_KEYS:
            if isinstance(payload.get(key), dict):
                payload = payload[key]
                break
    if (
        not isinstance(payload, dict)
        or not payload
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items())
    ):
        raise FileFormatError(
            f"{path}: not a state dict (name -> tensor), nor a checkpoint holding one under "
            f"{', '.join(NESTED_KEYS)}"
        )
    return dict(payload)


#: buffers that the import recomputes (BatchNorm statistics) or that carry no information
_RECOMPUTED = ("running_mean", "running_var", "num_batches_tracked")


def fit_state_dict(model, state: dict, where: str) -> dict:
    """The entries of ``state`` for ``model``, every parameter and non-BatchNorm buffer of the
    model present with its shape; BatchNorm statistics may be absent (they are recomputed).
    :class:`FileFormatError` names the first mismatch. A ``module.`` prefix (DataParallel) is
    dropped."""
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = model.state_dict()
    for key, value in expected.items():
        if key not in state:
            if key.rsplit(".", 1)[-1] in _RECOMPUTED:
                continue
            raise FileFormatError(
                f"{where}: has no {key!r} (shape {tuple(value.shape)}), which the model needs; "
                f"first keys of the file: {', '.join(list(state)[:5])}"
            )
        if tuple(state[key].shape) != tuple(value.shape):
            raise FileFormatError(
                f"{where}: {key!r} has shape {tuple(state[key].shape)}, the model's is "
                f"{tuple(value.shape)}"
            )
    for key in state:
        if key not in expected:
            raise FileFormatError(f"{where}: holds {key!r}, which the model does not have")
    return {k: v for k, v in state.items() if k in expected}
