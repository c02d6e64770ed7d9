"""Start-up checks that need torch: a user's networks against their datasets.

Called by the Snakefile before any job is planned, and by the jobs that first build such a
network (training, import), where a dataset's shape is known only once it is prepared. Rows of
built-in models need none of this, so planning them never imports torch.
"""

from __future__ import annotations

from ..core.errors import AlignmentError, ConfigError
from ..models.user import user_builder


def check_network(spec: dict, name: str, num_classes: int, input_shape, alignment: str) -> None:
    """A user's network ``models.<name>`` (``spec``: import path and kwargs) on data of
    ``num_classes`` classes and ``input_shape``: it builds, its output is ``[batch,
    num_classes]``, and with ``alignment: weight_matching`` torch.fx can trace it. Refused with
    :class:`ConfigError` naming the network and its module. Built on torch's meta device where
    the builder allows (shapes without memory or compute), else on the CPU."""
    import torch

    where = f"models.{name} ({spec['build']})"
    shape = tuple(int(s) for s in input_shape)
    try:
        _check(spec, name, num_classes, shape, alignment, where, torch.device("meta"))
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - a builder or layer that needs real tensors
        _check(spec, name, num_classes, shape, alignment, where, torch.device("cpu"))


def _check(spec, name, num_classes, shape, alignment, where, device) -> None:
    import torch

    from ..engine.alignment import permutation_spec
    from ..models import build_model

    with device:
        model = build_model(name, num_classes, shape, spec=spec)
        x = torch.zeros((2, *shape))
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except (RuntimeError, ValueError, TypeError) as exc:
        if device.type == "meta":
            raise
        raise ConfigError(
            f"{where}: a batch of inputs of shape {shape} fails in forward "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        found = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"{where}: returns {found} for a batch of 2 inputs of shape {shape}; the dataset has "
            f"{num_classes} classes, so the output must be (2, {num_classes}) logits"
        )
    if alignment == "weight_matching":
        try:
            permutation_spec(model, x)
        except AlignmentError as exc:
            raise ConfigError(
                f"alignment: weight_matching: {where} cannot be aligned ({exc}); set "
                "alignment: none for its rows"
            ) from None


def check_user_models(settings, rows) -> None:
    """Every selected row with a user's network: its import path and signature always; its
    output and (under alignment) its traceability where the dataset's classes and shape are
    known before it is prepared (built-in datasets, .npz files)."""
    for dataset, arch in rows:
        spec = settings.model_spec(arch)
        if spec is None:
            continue
        user_builder(spec, f"models.{arch}")
        source = settings.dataset_source(dataset)
        if source.num_classes is None or source.input_shape is None:
            continue  # a loader function: checked by the first job that builds the network
        alignment = settings.row(dataset, arch)["alignment"]
        check_network(spec, arch, source.num_classes, source.input_shape, alignment)
