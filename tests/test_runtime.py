"""Process runtime: threads and device from the job's settings, glibc keeping freed memory."""

import subprocess
import sys

import pytest
import torch

from nobarriers.nn.runtime import configure_runtime

# twenty NEB steps of a batched MLP (multi-MB activations each step): the page faults they cost
FAULTS = """
import resource, sys, torch
from torch import nn
from nobarriers.engine.model_energy import ModelEnergy
from nobarriers.engine.neb import NEBStep
from nobarriers.nn.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 10))
energy = ModelEnergy(net, torch.randn(512, 64), torch.randint(0, 10, (512,)), 256, mode="vmap")
path = torch.stack([energy.point_of(net) + 0.01 * k for k in range(18)])
neb = NEBStep(energy, path, [1.0] * 17, lr=0.1)
g = torch.Generator().manual_seed(0)
for _ in range(3):
    neb.step(g)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    neb.step(g)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_keeping_freed_memory_removes_the_page_faults_of_repeated_allocations():
    def faults(setting):
        out = subprocess.run(
            [sys.executable, "-c", FAULTS, setting], capture_output=True, text=True, check=True
        )
        applied, count = out.stdout.split()
        return applied, int(count)

    default_applied, default_faults = faults("default")
    kept_applied, kept_faults = faults("keep")
    assert kept_applied == "True" and default_applied == "None"
    # by default glibc hands the freed activations back and faults them in again every step
    assert kept_faults * 2 < default_faults


def test_configure_runtime_sets_threads_and_device():
    before = torch.get_num_threads()
    try:
        assert configure_runtime(1, "cpu") == torch.device("cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
