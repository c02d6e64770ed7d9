"""The data stage: make a dataset available and record what it holds."""

from __future__ import annotations

import logging

from ..core.provenance import provenance
from ..datasets import prepare_dataset
from ..formats.records import DatasetRecord
from .compute import JobRuntime

log = logging.getLogger("nobarriers")


def prepare_dataset_job(dataset: str, runtime: JobRuntime, out_json) -> DatasetRecord:
    """Download (CIFAR), check (digits, a user's file) or cache (a user's loader) a dataset
    once; record its shape as evidence."""
    prepare_dataset(
        dataset,
        runtime.data_dir,
        checksums=runtime.checksums.get(dataset),
        definitions=runtime.definitions,
        local_copy=runtime.local_copies.get(dataset),
    )
    data = runtime.dataset(dataset)
    record = DatasetRecord(
        dataset=dataset,
        num_classes=data.num_classes,
        input_shape=list(data.input_shape),
        n_train=int(data.x_train.shape[0]),
        n_test=int(data.x_test.shape[0]),
        provenance=provenance(),
    )
    record.write(out_json)
    log.info(
        "dataset %s ready: %d train / %d test samples, %d classes",
        dataset,
        record.n_train,
        record.n_test,
        record.num_classes,
    )
    return record
