"""scikit-learn's bundled 8×8 digits (1,797 images, 10 classes): no download, the demo's data.

A fixed stratified split, 1,437 training / 360 test images (``random_state=0``), each of the 64
pixels standardised with training-set statistics (constant pixels: std 1), shaped 1×8×8 (MLPs
flatten it). :meth:`DigitsSource.prepare` caches the split as ``<root>/digits/digits-split.npz``
so that jobs need not import scikit-learn. Its own recipe (not in the paper): >= 95 % test
accuracy in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

from ...core.errors import FileFormatError
from ..base import Dataset, DatasetSource

TEST_SIZE = 360  # 1797 samples -> 1437 train / 360 test
SPLIT_SEED = 0
CACHE = Path("digits") / "digits-split.npz"
_ARRAYS = ("x_train", "x_test", "y_train", "y_test")

#: short CPU recipe for the digits (not in the paper)
DIGITS_RECIPE: dict = {
    "epochs": 40,
    "batch_size": 64,
    "lr": 0.05,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 1e-4,
    "lr_milestones": [0.5, 0.75],
    "lr_gamma": 0.1,
    "augment": False,
    "eval_batch_size": 512,
}


def _split() -> dict:
    """The fixed stratified split of scikit-learn's digits (raw pixel values 0..16)."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float64)
    y = digits.target.astype(np.int64)
    parts = train_test_split(x, y, test_size=TEST_SIZE, stratify=y, random_state=SPLIT_SEED)
    return dict(zip(("x_train", "x_test", "y_train", "y_test"), parts, strict=True))


def _read_cache(path: Path) -> dict:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in _ARRAYS}
    except (OSError, KeyError, ValueError) as exc:
        raise FileFormatError(
            f"digits cache {path}: unreadable or incomplete ({exc}); delete it to rebuild"
        ) from exc
    if arrays["x_train"].shape != (1797 - TEST_SIZE, 64):
        raise FileFormatError(f"digits cache {path}: unexpected shape {arrays['x_train'].shape}")
    return arrays


class DigitsSource(DatasetSource):
    name = "digits"
    label = "Digits"
    augment = "none"
    recipe = DIGITS_RECIPE
    num_classes = 10
    input_shape = (1, 8, 8)
    sizes = (1797 - TEST_SIZE, TEST_SIZE)

    def prepare(self, root, checksums=None, local_copy=None) -> None:
        import numpy as np

        from ...core.atomic import atomic_path

        if root is not None:
            with atomic_path(Path(root) / CACHE) as tmp, open(tmp, "wb") as f:
                np.savez(f, **_split())

    def load(self, root, device="cpu", checksums=None, verify: bool = True) -> Dataset:
        import torch

        cache = Path(root) / CACHE if root is not None else None
        split = _read_cache(cache) if cache and cache.exists() else _split()
        x_tr, x_te, y_tr, y_te = (split[k] for k in ("x_train", "x_test", "y_train", "y_test"))
        mean = x_tr.mean(axis=0)
        std = x_tr.std(axis=0)
        std[std == 0] = 1.0  # constant (always blank) pixels stay 0 after centring

        def prep(a):
            a = ((a - mean) / std).astype("float32").reshape(-1, 1, 8, 8)
            return torch.from_numpy(a).to(device)

        return Dataset(
            name="digits",
            num_classes=10,
            input_shape=(1, 8, 8),
            x_train=prep(x_tr),
            y_train=torch.from_numpy(y_tr).to(device),
            x_test=prep(x_te),
            y_test=torch.from_numpy(y_te).to(device),
            augment="none",
            mean=tuple(mean.tolist()),
            std=tuple(std.tolist()),
        )


SOURCES = [DigitsSource()]
