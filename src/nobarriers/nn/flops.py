"""Floating-point operations of a network, counted from its layers on torch's meta device (no
memory, no compute): what ``nobarriers plan`` scales a run's cost by."""

from __future__ import annotations

import math

import torch
from torch import nn

#: a training step (forward, backward for activations and for weights) costs about three
#: forward passes; one multiply-accumulate is two floating-point operations
TRAIN_FORWARDS = 3
FLOPS_PER_MAC = 2


def forward_macs(model: nn.Module, input_shape) -> int:
    """Multiply-accumulates of one sample's forward pass through the model's convolutions and
    linear layers (the rest -- BatchNorm, activations, pooling -- is a few percent of them and
    not counted). The model is copied to the meta device; the caller's is left alone."""
    macs = 0

    def conv(module, inputs, output):
        nonlocal macs
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        macs += output[0].numel() * per_output

    def linear(module, inputs, output):
        nonlocal macs
        macs += output[0].numel() * module.in_features

    meta = model if _on_meta(model) else _meta_copy(model)
    handles = []
    for module in meta.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            handles.append(module.register_forward_hook(conv))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear))
    meta.eval()
    try:
        with torch.no_grad():
            meta(torch.empty((1, *input_shape), device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return int(macs)


def _on_meta(model: nn.Module) -> bool:
    return any(p.is_meta for p in model.parameters())


def _meta_copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).to("meta")
