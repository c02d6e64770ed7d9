"""Your own data and minima trained elsewhere, for the example config my.yaml:

* blobs.npz -- three Gaussian blobs in 6 dimensions (240 training, 60 test samples);
* pretrained/run{0,1,2}.* -- three TinyNets trained with a plain loop of your own and saved the
  three ways the workflow reads: a safetensors state dict, a torch.save state dict and a
  checkpoint holding one under "state_dict".
"""

import os

import numpy as np
import torch
from mylab.nets import build_tiny
from safetensors.torch import save_file


def blobs(seed=0, n_train=240, n_test=60, features=6):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.0, size=(3, features))

    def draw(n):
        y = rng.integers(0, 3, size=n)
        return (centres[y] + rng.normal(0, 1.0, size=(n, features))).astype(np.float32), y

    (x_train, y_train), (x_test, y_test) = draw(n_train), draw(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def train_outside(data, seed):
    x = torch.from_numpy(data["x_train"])
    x = (x - x.mean(0)) / x.std(0, unbiased=False)
    y = torch.from_numpy(data["y_train"])
    torch.manual_seed(seed)
    net = build_tiny(3, (6,), width=8)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


if __name__ == "__main__":
    data = blobs()
    np.savez("blobs.npz", **data)
    states = [train_outside(data, seed) for seed in (100, 101, 102)]
    os.makedirs("pretrained", exist_ok=True)
    save_file(states[0], "pretrained/run0.safetensors")
    torch.save(states[1], "pretrained/run1.pt")
    torch.save({"epoch": 60, "state_dict": states[2]}, "pretrained/run2.ckpt")
