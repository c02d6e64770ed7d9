"""Training throughput: tensor-resident data + batched augmentation vs a torchvision DataLoader.

* **tensors** (what ``engine.train`` does): the whole training set is one float tensor on the
  device; a mini-batch is ``index_select`` of a random permutation slice, augmented in one batched
  call (:func:`nobarriers.nn.batches.augment_batch`: 4-px pad + random crop + flip for CIFAR).
* **DataLoader**: the usual torchvision pipeline, uint8 HWC images turned into PIL images and
  transformed sample by sample (``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``,
  ``ToTensor``, ``Normalize``; digits: ``ToTensor`` + ``Normalize``), collated by a
  ``DataLoader`` (``--workers``, default 0: on 2 cores workers only compete with the model).

Both are timed for data only (producing batches) and for full training steps (forward, backward,
SGD step), interleaved, as samples per second. Digits: ``mlp-64`` and the digits CNN on the real
digits set; CIFAR: ResNet-20 on CIFAR-shaped random images (``--cifar-batches`` batches per round
on the CPU).

    .venv/bin/python benchmarks/bench_training.py [--cifar-batches 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, job_runtime, machine, table  # noqa: E402

from nobarriers.datasets import load_dataset
from nobarriers.models import build_model  # noqa: E402
from nobarriers.nn.batches import augment_batch  # noqa: E402


class ImageDataset(torch.utils.data.Dataset):
    """uint8 HWC images + labels, transformed per sample (the torchvision way)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = self.images[i]
        img = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        return self.transform(img), int(self.labels[i])


def setups(args):
    """(name, arch, x float NCHW normalised, y, uint8 HWC images, transform, augment kind, batch)"""
    out = []
    digits = load_dataset("digits", None)
    x = digits.x_train
    u8 = ((x - x.amin()) / (x.amax() - x.amin()) * 255).round().byte()
    u8 = u8.permute(0, 2, 3, 1).numpy()
    norm = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.25,))])
    for arch in ("mlp-64", "cnn-12"):
        out.append((f"digits {arch}", arch, x, digits.y_train, u8, norm, "none", 64, None))
    g = torch.Generator().manual_seed(0)
    n = args.cifar_batches * 128
    u8c = torch.randint(0, 256, (n, 32, 32, 3), generator=g, dtype=torch.uint8).numpy()
    xc = (torch.from_numpy(u8c).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    yc = torch.randint(0, 10, (n,), generator=g)
    aug = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize((0.5,) * 3, (0.25,) * 3),
        ]
    )
    out.append(("cifar resnet-20", "resnet-20", xc, yc, u8c, aug, "crop_flip", 128, None))
    return out


def measure(args, name, arch, x, y, u8, tf, aug_kind, bs) -> dict:
    torch.manual_seed(0)
    model = build_model(arch, 10, tuple(x.shape[1:]))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    n = x.shape[0]
    loader = DataLoader(
        ImageDataset(u8, y.numpy(), tf), batch_size=bs, shuffle=True, num_workers=args.workers
    )
    gen = torch.Generator().manual_seed(0)

    def tensor_batches():
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, bs):
            idx = order[s : s + bs]
            xb = x.index_select(0, idx)
            yield augment_batch(xb, aug_kind, gen), y.index_select(0, idx)

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()

    def data_tensor():
        for _ in tensor_batches():
            pass

    def data_loader():
        for _ in loader:
            pass

    def train_tensor():
        for xb, yb in tensor_batches():
            step(xb, yb)

    def train_loader():
        for xb, yb in loader:
            step(xb, yb)

    t = interleaved(
        {
            "data tensor": data_tensor,
            "data loader": data_loader,
            "train tensor": train_tensor,
            "train loader": train_loader,
        },
        args.rounds,
        warmup=1,
    )
    return {
        "setup": name,
        "samples": n,
        "batch": bs,
        "data only: tensors/s": n / t["data tensor"],
        "data only: DataLoader/s": n / t["data loader"],
        "data speed-up": t["data loader"] / t["data tensor"],
        "train: tensors/s": n / t["train tensor"],
        "train: DataLoader/s": n / t["train loader"],
        "train speed-up": t["train loader"] / t["train tensor"],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cifar-batches", type=int, default=4, help="ResNet-20 batches per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    job_runtime(args.threads, "cpu")
    print(f"# training throughput\nmachine: {machine()}\n")
    rows = []
    for name, arch, x, y, u8, tf, aug_kind, bs, _ in setups(args):
        rows.append(measure(args, name, arch, x, y, u8, tf, aug_kind, bs))
        print(table(rows[-1:]), flush=True)
    print("\n## summary (samples per second, medians of interleaved rounds)\n")
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
