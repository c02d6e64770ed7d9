"""Architecture names, parsed without importing torch (the workflow validates its config with
these at start-up). ``nobarriers.models`` builds the networks.
"""

from __future__ import annotations

import re

from .errors import ConfigError

__all__ = ["MODEL_NAMES", "PATTERNS", "describe"]

MODEL_NAMES: tuple[str, ...] = (
    "cnn-12",
    "cnn-24",
    "cnn-36",
    "cnn-48",
    "cnn-96",
    "cnn-48x2",
    "cnn-48x3",
    "resnet-8",
    "resnet-20",
    "resnet-32",
    "resnet-44",
    "resnet-56",
    "densenet-40-12",
    "densenet-bc-100-12",
)

PATTERNS: tuple[str, ...] = (
    "cnn-{W}",
    "cnn-{W}x{D}",
    "resnet-{6n+2}",
    "resnet-{6n+2}-proj",
    "densenet-{3n+4}-{k}",
    "densenet-bc-{6n+4}-{k}",
    "mlp-{W}",
    "mlp-{W}x{D}",
)

_CNN = re.compile(r"cnn-(\d+)(?:x(\d+))?")
_MLP = re.compile(r"mlp-(\d+)(?:x(\d+))?")
_RESNET = re.compile(r"resnet-(\d+)(-proj)?")
_DENSENET = re.compile(r"densenet-(bc-)?(\d+)-(\d+)")


def _unknown(name) -> ConfigError:
    return ConfigError(
        f"unknown model {name!r}; paper architectures: {', '.join(MODEL_NAMES)}; "
        f"general patterns: {', '.join(PATTERNS)}"
    )


def describe(name: str) -> dict:
    """Parse a model name: ``family`` (cnn/resnet/densenet/mlp), its hyper-parameters, a display
    ``label`` as the paper writes it (e.g. ``CNN-48×2``, ``DenseNet-100-12-BC``) and ``summary``.

    Raises :class:`~nobarriers.errors.ConfigError` for names matching no pattern (the depth rules
    of ResNets/DenseNets are checked by :func:`build_model`).
    """
    if not isinstance(name, str):
        raise _unknown(name)
    key = name.strip().lower()
    if m := _CNN.fullmatch(key):
        w, d = int(m[1]), int(m[2] or 1)
        return {
            "name": key,
            "family": "cnn",
            "width": w,
            "depth": d,
            "label": f"CNN-{w}" if d == 1 else f"CNN-{w}×{d}",
            "summary": f"{d} x (5x5 conv {w}, 2x2 max-pool, BN, ReLU), FC 256, BN, ReLU, linear",
        }
    if m := _MLP.fullmatch(key):
        w, d = int(m[1]), int(m[2] or 1)
        return {
            "name": key,
            "family": "mlp",
            "width": w,
            "depth": d,
            "label": f"MLP-{w}" if d == 1 else f"MLP-{w}×{d}",
            "summary": f"{d} hidden ReLU layer(s) of width {w}, linear",
        }
    if m := _RESNET.fullmatch(key):
        depth = int(m[1])
        shortcut = "projection" if m[2] else "A"
        return {
            "name": key,
            "family": "resnet",
            "depth": depth,
            "shortcut": shortcut,
            "label": f"ResNet-{depth}" + (" (proj.)" if m[2] else ""),
            "summary": f"CIFAR ResNet-{depth} (He et al. 2016), "
            + ("1x1 conv+BN projection shortcuts" if m[2] else "option-A zero-padding shortcuts"),
        }
    if m := _DENSENET.fullmatch(key):
        bc, depth, growth = bool(m[1]), int(m[2]), int(m[3])
        return {
            "name": key,
            "family": "densenet",
            "depth": depth,
            "growth": growth,
            "bc": bc,
            "label": f"DenseNet-{depth}-{growth}" + ("-BC" if bc else ""),
            "summary": f"CIFAR DenseNet{'-BC' if bc else ''} (Huang et al. 2017), depth {depth}, "
            f"growth {growth}",
        }
    raise _unknown(name)


def check_model_name(name: str) -> dict:
    """:func:`describe` plus the depth rules of ResNets (6n+2) and DenseNets (3n+4; BC 6n+4)."""
    info = describe(name)
    if info["family"] == "resnet" and (info["depth"] < 8 or (info["depth"] - 2) % 6):
        raise ConfigError(f"model {info['name']!r}: ResNet depth must be 6n+2 >= 8")
    if info["family"] == "densenet":
        step = 6 if info["bc"] else 3
        if info["depth"] < 4 + step or (info["depth"] - 4) % step:
            raise ConfigError(
                f"model {info['name']!r}: DenseNet{'-BC' if info['bc'] else ''} depth must be "
                f"{step}n+4 >= {4 + step}"
            )
    if info.get("width", 1) < 1 or info.get("depth", 1) < 1 or info.get("growth", 1) < 1:
        raise ConfigError(f"model {info['name']!r}: widths, depths and growth rates must be >= 1")
    return info
