"""Several GPUs on one machine (nobarriers.core.gpu_slots): each GPU job its own device, given
back when its process ends, however it ends. No GPU is needed: the device counts are made up and
the holders are separate processes, as Snakemake's jobs are."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from nobarriers.core import gpu_slots
from nobarriers.core.errors import DeviceError
from nobarriers.core.gpu_slots import (
    claim_gpu_slot,
    held_gpu_slot,
    release_gpu_slot,
    slots_folder,
    visible_devices,
)
from nobarriers.nn import runtime
from nobarriers.stages import compute
from nobarriers.stages.compute import JobRuntime

# A job in its own process: takes a slot of the given devices, says which, holds it until its
# standard input closes (or it is killed). Torch-free, so it starts in a fraction of a second.
HOLDER = """
import sys
from nobarriers.core.gpu_slots import claim_gpu_slot
slot = claim_gpu_slot(sys.argv[2].split(","), sys.argv[1])
print(slot.index, slot.device, flush=True)
sys.stdin.read()
"""


@pytest.fixture()
def holders(tmp_path):
    """Start holder processes on ``devices`` (a list) in one lock folder; all are ended after
    the test."""
    started: list[subprocess.Popen] = []
    folder = tmp_path / "slots"

    def start(devices, wait=True):
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(folder), ",".join(devices)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc.stdout.readline().split() if wait else proc

    start.folder = folder
    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()
    release_gpu_slot()


@pytest.fixture(autouse=True)
def no_slot_left():
    release_gpu_slot()
    yield
    release_gpu_slot()


def test_visible_devices_from_the_count_and_cuda_visible_devices():
    assert visible_devices(0, None) == [] and visible_devices(0, "0,1") == []
    assert visible_devices(3, None) == ["0", "1", "2"]
    assert visible_devices(2, "3, 5,7") == ["3", "5"]  # CUDA counts fewer than listed
    assert visible_devices(1, "GPU-8f3c2a") == ["GPU-8f3c2a"]
    assert claim_gpu_slot([]) is None  # no GPU: nothing taken, nothing written


def test_jobs_take_the_lowest_free_slot_each_its_own(holders):
    devices = ["0", "1", "2"]
    assert [holders(devices) for _ in devices] == [["0", "0"], ["1", "1"], ["2", "2"]]
    # the lock files name their holders
    records = sorted(p.read_text() for p in holders.folder.glob("gpu-*.lock"))
    assert len(records) == 3 and all(r.startswith("pid ") for r in records)


def test_jobs_started_at_once_get_distinct_slots(holders):
    devices = ["3", "5", "6", "7"]  # e.g. CUDA_VISIBLE_DEVICES=3,5,6,7: slots map to entries
    procs = [holders(devices, wait=False) for _ in devices]
    got = sorted(tuple(p.stdout.readline().split()) for p in procs)
    assert got == [("0", "3"), ("1", "5"), ("2", "6"), ("3", "7")]


def test_a_slot_is_given_back_when_its_holder_is_killed(holders):
    devices = ["0", "1"]
    first = holders(devices, wait=False)
    assert first.stdout.readline().split() == ["0", "0"]
    assert holders(devices) == ["1", "1"]
    first.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops the flock
    first.wait()
    slot = claim_gpu_slot(devices, holders.folder)
    assert (slot.index, slot.device, slot.count) == (0, "0", 2)
    assert held_gpu_slot() == slot and claim_gpu_slot(devices, holders.folder) == slot
    release_gpu_slot()  # given back in-process too: another job takes it
    assert holders(devices) == ["0", "0"]


def test_more_gpu_jobs_than_devices_fail_at_once_naming_the_count(holders):
    devices = ["0", "1"]
    for _ in devices:
        holders(devices)
    pids = sorted(p.read_text().split()[1].rstrip(":") for p in holders.folder.glob("*.lock"))
    started = time.monotonic()
    with pytest.raises(DeviceError) as err:
        claim_gpu_slot(devices, holders.folder)
    message = str(err.value)
    assert time.monotonic() - started < 5  # at once, no waiting for a slot
    assert "2 GPUs" in message and "--resources gpu=2" in message, message
    assert all(f"pid {pid}" in message for pid in pids), message
    assert held_gpu_slot() is None


def test_the_lock_folder_is_one_per_user_and_machine(monkeypatch, tmp_path):
    monkeypatch.delenv(gpu_slots.FOLDER_VARIABLE, raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(gpu_slots.tempfile, "tempdir", None)  # re-read TMPDIR
    local = slots_folder()
    assert local.parent == tmp_path and str(os.getuid()) in local.name
    monkeypatch.setenv("SLURM_JOB_ID", "4711")  # one allocation's devices are its own
    assert slots_folder().name == local.name + "-slurm4711"
    monkeypatch.setenv(gpu_slots.FOLDER_VARIABLE, str(tmp_path / "shared"))
    assert slots_folder() == tmp_path / "shared"


def test_an_unusable_lock_folder_is_named(tmp_path):
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    with pytest.raises(DeviceError, match="NOBARRIERS_GPU_SLOTS") as err:
        claim_gpu_slot(["0"], blocked / "slots")
    assert str(blocked) in str(err.value) and held_gpu_slot() is None


# ------------------------------------------------------------------ wired into the jobs
@pytest.fixture()
def two_gpus(monkeypatch, tmp_path):
    """A machine with two GPUs as far as counting goes (through NVML: no CUDA needed);
    ``configure_runtime`` recorded instead of run, the dataset not loaded."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv(gpu_slots.FOLDER_VARIABLE, str(tmp_path / "slots"))
    calls = []

    def configure(threads, device, require_gpu=False, gpu_slot=None):
        calls.append({"require_gpu": require_gpu, "gpu_slot": gpu_slot,
                      "visible": os.environ.get("CUDA_VISIBLE_DEVICES")})  # fmt: skip
        return torch.device("cpu")

    monkeypatch.setattr(compute, "configure_runtime", configure)
    monkeypatch.setattr(JobRuntime, "dataset", lambda self, name, device="cpu": name)
    return calls


def test_a_local_gpu_job_takes_its_slot_before_cuda_starts(two_gpus, holders, monkeypatch):
    holders(["0", "1"])  # another job holds GPU 0
    JobRuntime(device="auto", gpus=1).start("digits")
    (call,) = two_gpus
    assert call["visible"] == "1" and call["gpu_slot"].index == 1 and call["require_gpu"]
    assert held_gpu_slot().device == "1"


@pytest.mark.parametrize(
    "runtime, slurm",
    [
        (JobRuntime(device="auto", gpus=0), None),  # gpu_jobs: false, or a CPU rule
        (JobRuntime(device="cpu", gpus=1), None),  # device: cpu never uses a GPU
        (JobRuntime(device="auto", gpus=1), "4711"),  # SLURM's job sees its own GPU...
    ],
    ids=["no-gpu-requested", "device-cpu", "slurm"],
)
def test_cpu_jobs_and_slurm_jobs_take_no_slot(two_gpus, monkeypatch, runtime, slurm):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if slurm else 2)
    if slurm:
        monkeypatch.setenv("SLURM_JOB_ID", slurm)
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    runtime.start("digits")
    (call,) = two_gpus
    assert call["gpu_slot"] is None and held_gpu_slot() is None
    assert call["visible"] == ("0" if slurm else None)  # untouched


def test_a_local_snakemake_in_a_multi_gpu_allocation_takes_slots(two_gpus, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4711")  # ...unless it sees several (salloc --gpus=2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    JobRuntime(device="auto", gpus=1).start("digits")
    (call,) = two_gpus
    assert call["visible"] == "2" and call["gpu_slot"].device == "2"


def test_without_gpus_a_local_job_runs_on_the_cpu_as_before(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv(gpu_slots.FOLDER_VARIABLE, str(tmp_path / "slots"))
    monkeypatch.setattr(JobRuntime, "dataset", lambda self, name, device="cpu": name)
    threads = torch.get_num_threads()
    try:
        assert JobRuntime(device="auto", gpus=1).start("digits")[0].type == "cpu"
    finally:
        torch.set_num_threads(threads)
    assert held_gpu_slot() is None and not (tmp_path / "slots").exists()


@pytest.mark.parametrize("seen, selected", [(1, None), (2, 1)])
def test_cuda_started_before_the_slot_selects_the_slots_device(monkeypatch, seen, selected):
    """CUDA_VISIBLE_DEVICES counts only before CUDA initialises; where it was initialised
    earlier (the process still sees every device), the slot's device becomes the current one."""
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "init", lambda: None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: seen)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    slot = gpu_slots.GpuSlot(index=1, device="1", count=2, lock_file=None)
    threads = torch.get_num_threads()
    try:
        assert runtime.configure_runtime(1, "auto", True, gpu_slot=slot).type == "cuda"
    finally:
        torch.set_num_threads(threads)
    assert chosen == ([] if selected is None else [selected])
