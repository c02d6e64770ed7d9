"""What a compute job (training, AutoNEB, evaluation) needs around its work: its runtime -- the
settings that say where and how it runs, never what it computes -- and a check of its minima
against the data."""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field

from ..core.errors import FileFormatError
from ..datasets import Dataset, load_dataset
from ..formats.minimum import Minimum
from ..nn.points import evaluate_model
from ..nn.runtime import configure_runtime, take_gpu_slot
from ..settings.config import WorkflowConfig

log = logging.getLogger("nobarriers")


def requested_gpus(resources) -> int:
    """The GPUs a job's rule requested: the ``gpu`` resource, or the count of a ``gres`` such as
    ``gpu:1`` or ``gpu:a100:2`` (the workflow requests one way or the other, never both)."""
    gpus = int(resources.get("gpu", 0) or 0)
    gres = str(resources.get("gres", "") or "")
    if gres.startswith("gpu"):
        last = gres.rsplit(":", 1)[-1]
        gpus = max(gpus, int(last) if last.isdigit() else 1)
    return gpus


@dataclass(frozen=True)
class JobRuntime:
    """Where and how a job runs: settings that cannot change its results, so they never reach
    a rule's ``params`` (changing them reruns nothing).

    ``data_dir`` and ``checksums`` (the config's ``dataset_checksums``) locate and verify the
    datasets, ``definitions`` (the config's ``datasets``) says where a user's dataset comes from
    (its identity, e.g. the file's checksum, is in the stage settings), ``local_copies`` where
    a built-in dataset's original files are kept offline; ``device`` is the
    config's (``auto``, ``cpu``, ``cuda``); ``threads`` the cores Snakemake gave the job;
    ``gpus`` the GPUs its rule requested; ``speed`` the row's speed options
    (:func:`nobarriers.settings.config.speed_options`)."""

    data_dir: str = "data"
    checksums: dict = field(default_factory=dict)
    device: str = "auto"
    threads: int = 1
    gpus: int = 0
    speed: dict = field(default_factory=dict)
    definitions: dict = field(default_factory=dict)
    local_copies: dict = field(default_factory=dict)

    @classmethod
    def from_snakemake(cls, smk) -> JobRuntime:
        """The runtime of a Snakemake job (the ``snakemake`` object of a script)."""
        speed = {}
        wildcards = smk.wildcards
        if hasattr(wildcards, "dataset") and hasattr(wildcards, "arch"):
            settings = WorkflowConfig(copy.deepcopy(dict(smk.config)), source="the job's config")
            speed = settings.speed(wildcards.dataset, wildcards.arch)
        return cls(
            data_dir=smk.config["data_dir"],
            checksums=dict(smk.config.get("dataset_checksums", {})),
            device=smk.config["device"],
            threads=int(smk.threads),
            gpus=requested_gpus(smk.resources),
            speed=speed,
            definitions=dict(smk.config.get("datasets", {})),
            local_copies=dict(smk.config.get("local_copies", {})),
        )

    def dataset(self, name: str, device="cpu") -> Dataset:
        return load_dataset(
            name,
            self.data_dir,
            device=device,
            checksums=self.checksums.get(name),
            definitions=self.definitions,
        )

    @property
    def gpu_granted(self) -> bool:
        """Whether a scheduler granted this job the GPU its rule requested: the job runs in a
        SLURM allocation (``SLURM_JOB_ID``). Local runs account for GPUs but grant none."""
        return self.gpus > 0 and "SLURM_JOB_ID" in os.environ

    def take_gpu_slot(self):
        """This job's own GPU where several GPU jobs share the visible devices
        (:func:`nobarriers.nn.runtime.take_gpu_slot`): a job whose rule requested a GPU, outside
        SLURM (``snakemake --cores N --resources gpu=K`` on a machine with K GPUs), takes the
        lowest free device. Under SLURM the scheduler's ``CUDA_VISIBLE_DEVICES`` already shows
        each job its own GPU, so a slot is taken only where the job sees several (a local
        Snakemake inside a multi-GPU allocation). ``None`` for CPU jobs and machines without
        GPUs. Where a job runs cannot change what it computes: none of this reaches ``params``."""
        if self.gpus <= 0 or self.device == "cpu":
            return None
        return take_gpu_slot(min_devices=2 if "SLURM_JOB_ID" in os.environ else 1)

    def start(self, dataset: str):
        """Threads and device (this job's GPU slot first), then the dataset on that device."""
        slot = self.take_gpu_slot()
        chosen = configure_runtime(
            self.threads,
            self.device,
            require_gpu=self.gpu_granted or slot is not None,
            gpu_slot=slot,
        )
        if os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE":
            log.info("HDF5 file locking off (HDF5_USE_FILE_LOCKING=FALSE, hdf5_file_locking)")
        return chosen, self.dataset(dataset, chosen)


#: relative tolerance of :func:`check_minimum_on_data`: float rounding between devices and
#: batch sizes stays orders of magnitude below it; damaged weights or other data do not
ENDPOINT_RTOL = 1e-3


def check_minimum_on_data(model, minimum: Minimum, data: Dataset, batch_size: int) -> float:
    """The training loss of a minimum's model (its stored exact BatchNorm statistics, eval mode,
    the un-augmented training set) must be the loss its file records, within
    :data:`ENDPOINT_RTOL`: before hours of AutoNEB are spent on it, a damaged file or data other
    than those it was trained on stop the job, naming the file. Returns the measured loss."""
    measured = evaluate_model(model, data.x_train, data.y_train, batch_size)["loss"]
    stored = float(minimum.metrics["train_loss"])
    if not abs(measured - stored) <= ENDPOINT_RTOL * abs(stored) + 1e-7:
        raise FileFormatError(
            f"minimum {minimum.path}: its weights give training loss {measured:.6g} on the "
            f"{data.name} data of this run, the file records {stored:.6g} (tolerance "
            f"{ENDPOINT_RTOL:g} relative): the file is damaged or the data differ from those it "
            "was trained on (another data_dir?); delete the file to retrain it, or fix the data"
        )
    return measured
