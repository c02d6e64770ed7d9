"""Mini-batches and augmentation of tensor-resident data, on the data's own device.

One seeded subset for the package (:func:`seeded_subset`) and batched augmentation
(:func:`augment_batch`): random draws come only from the generator passed in, so equal generator
states give equal batches.
"""

from __future__ import annotations

import torch

from ..core.errors import ConfigError
from ..datasets.base import AUGMENTATIONS


def seeded_subset(n: int, size: int | None, seed: int) -> torch.Tensor | None:
    """Sorted indices (CPU, int64) of ``size`` of ``n`` samples drawn with ``seed``; ``None``
    when ``size`` is ``None`` or covers them all. The one seeded subset of the package (the
    insertion evaluation, BatchNorm statistics on a subset)."""
    if size is None or size >= n:
        return None
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=generator)[:size].sort().values


def _random(generator: torch.Generator | None, device, kind: str, *args):
    """Random draws from ``generator`` (on its own device), moved to ``device``."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if kind == "randint":
        high, size = args
        out = torch.randint(0, high, size, generator=generator, device=gen_device)
    else:
        (n,) = args
        out = torch.randperm(n, generator=generator, device=gen_device)
    return out.to(device)


def augment_batch(
    x: torch.Tensor, kind: str, generator: torch.Generator | None = None, padding: int = 4
) -> torch.Tensor:
    """Augment a whole batch ``x`` [N, C, H, W] at once on its device.

    ``"crop_flip"``: zero-pad ``padding`` pixels on each side, take a random H×W crop per sample
    (offsets uniform in 0..2*padding) and flip it horizontally with probability 1/2. Zero in the
    normalised space is the training-set mean colour (He et al. pad mean-subtracted images with
    zeros). Random numbers come from ``generator`` only, so equal generator states give equal
    batches. ``"none"``: returns ``x`` unchanged.
    """
    if kind == "none":
        return x
    if kind != "crop_flip":
        raise ConfigError(f"unknown augmentation {kind!r}; valid: {', '.join(AUGMENTATIONS)}")
    if x.dim() != 4:
        raise ConfigError(
            f"augmentation 'crop_flip' needs images [N, C, H, W], got {tuple(x.shape)}"
        )
    n, c, h, w = x.shape
    p = int(padding)
    offsets = _random(generator, x.device, "randint", 2 * p + 1, (2, n))
    dy, dx = offsets[0], offsets[1]
    flip = _random(generator, x.device, "randint", 2, (n,)).bool()
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = dy[:, None] + ar_h[None, :]  # [N, H]
    cols_src = torch.where(flip[:, None], (w - 1 - ar_w)[None, :], ar_w[None, :])
    cols = dx[:, None] + cols_src  # [N, W]
    idx_n = torch.arange(n, device=x.device)[:, None, None, None]
    idx_c = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[idx_n, idx_c, rows[:, None, :, None], cols[:, None, None, :]]
