"""Checksums of files and of tensors, one implementation each."""

from __future__ import annotations

import hashlib


def file_digest(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``md5`` for torchvision's published checksums)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensors_sha256(tensors: dict) -> str:
    """SHA-256 of torch tensors: name, dtype, shape and bytes of each, in sorted name order."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
