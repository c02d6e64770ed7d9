"""CIFAR in its own format: the paper's BatchNorm conv nets end to end on a generated CIFAR10
archive, and the decoded-array cache every job of such a run reads.

A file of its own, run in a working directory of its own, so that under ``make test``'s workers
the whole run starts at once beside the other whole runs (tests/conftest.py).
"""

from __future__ import annotations

import json
import math

import pytest
import yaml
from test_workflow import assert_image, read_csv
from workflow_runs import ROOT, snakemake

CIFAR_TINY = ROOT / "tests" / "configs" / "cifar_tiny.yaml"


@pytest.mark.slow
def test_cifar_format_batchnorm_networks_end_to_end(tmp_path):
    """The paper's ground: BatchNorm conv nets (a CNN and a DenseNet) on a CIFAR10 archive in
    CIFAR's own format, through the real torchvision loader and its checksum verification,
    training, overlap, the AutoNEB loop, exact-BN evaluation, figures, Table B.1. (The option-A
    ResNet's coordinates, batch statistics and weight matching: tests/test_energy.py,
    tests/test_alignment.py; docs/design.md, "Tests".)"""
    import torch
    from cifar_archive import write_cifar_archive

    from nobarriers.datasets import load_dataset
    from nobarriers.formats.minimum import load_minimum
    from nobarriers.formats.pathfile import read_evaluation, read_path
    from nobarriers.models import build_model, parameter_count
    from nobarriers.nn.points import evaluate_model, recompute_bn_statistics

    data_dir = tmp_path / "data"
    archive, checksums, _ = write_cifar_archive(data_dir, "cifar10", per_file=24, classes=4)
    config = yaml.safe_load(CIFAR_TINY.read_text())
    config |= {"results_dir": str(tmp_path / "results"), "data_dir": str(data_dir),
               "dataset_checksums": {"cifar10": checksums}}  # fmt: skip
    path = tmp_path / "cifar.yaml"
    path.write_text(yaml.safe_dump(config))
    (tmp_path / "run").mkdir()
    snakemake("--cores", "2", "--configfile", path, workdir=tmp_path / "run", timeout=1500)
    results = tmp_path / "results"
    assert (data_dir / "cifar-10-batches-py" / "data_batch_5").is_file()  # verified, extracted
    assert (data_dir / "cifar-10-batches-py.arrays.npz").is_file()  # what the jobs read
    data = load_dataset("cifar10", data_dir, checksums=checksums)
    assert data.x_train.shape == (120, 3, 32, 32)

    table = {r["architecture"]: r for r in read_csv(results / "table_b1.csv")}
    assert set(table) == {"cnn-4", "densenet-7-4"}
    for arch, row in table.items():
        for column, value in row.items():
            if column in ("epoch", "epoch_fraction", "epoch_in_last_phase"):
                continue
            # the alignment, the Hessian, the sample pairs, the repeats, the curves and the
            # ensembles are off: their columns are empty, every other one is filled
            off = column.startswith(
                ("alignment", "hessian", "repeat", "bezier", "polychain", "ensemble")
            ) or ("sample" in column)
            assert (value != "") == (not off), (arch, column)  # fmt: skip
        assert math.isfinite(float(row["train_sadd"])) and int(row["n_edges"]) == 1
        minima = [load_minimum(p) for p in sorted((results / "cifar10" / arch / "minima")
                                                   .glob("*.safetensors"))]  # fmt: skip
        # BatchNorm buffers are stored, and they are the exact statistics of the training set
        for m in minima:
            means = [k for k in m.state_dict if k.endswith("running_mean")]
            assert means, arch
            model = m.build()
            stored = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
            loss_stored = evaluate_model(model, data.x_train, data.y_train, 256)["loss"]
            recompute_bn_statistics(model, data.x_train, 256)
            for k, v in stored.items():
                torch.testing.assert_close(model.state_dict()[k], v, atol=1e-4, rtol=1e-4)
            assert loss_stored == pytest.approx(m.metrics["train_loss"], rel=1e-5)
            # default (unrecomputed) statistics would give another loss: what the table uses
            fresh = build_model(arch, 10, (3, 32, 32))
            fresh.load_state_dict({k: v for k, v in m.state_dict.items() if "running" not in k
                                   and "num_batches" not in k}, strict=False)  # fmt: skip
            loss_default = evaluate_model(fresh, data.x_train, data.y_train, 256)["loss"]
            assert abs(loss_default - loss_stored) > 1e-3 * loss_stored, arch
        assert float(row["train_min"]) == pytest.approx(
            sum(m.metrics["train_loss"] for m in minima) / len(minima), rel=1e-9
        )
        # path files of BN nets round-trip with the trainable parameters only as coordinates
        for p in (results / "cifar10" / arch / "paths").glob("*.h5"):
            record = read_path(p)
            assert record.pivots.shape[1] == parameter_count(build_model(arch, 10, (3, 32, 32)))
            assert record.saddle_loss == pytest.approx(record.saddle["train_loss"].max())
        # the dense exact-BN evaluation starts and ends at the minima's own numbers
        for p in (results / "cifar10" / arch / "evaluated").glob("*.h5"):
            ev = read_evaluation(p)
            a, b = ev.endpoints
            first = next(m for m in minima if m.seed == a)
            assert ev.dense["train_loss"][0] == pytest.approx(first.metrics["train_loss"], rel=1e-4)
    figures = list((results / "figures").rglob("*.png"))
    # Figure 5, the trends, 6 per row
    assert len(figures) == 2 + 2 * 6 and (results / "figures" / "trends.png") in figures
    for figure in figures:
        assert_image(figure)


def test_prepared_cifar_is_read_from_its_cache_without_torchvision(tmp_path):
    """The prepare job decodes the verified batches once; a job then reads the same tensors from
    the npz without importing torchvision (2 s of every job's start on a CPU)."""
    import subprocess
    import sys

    import torch
    from cifar_archive import write_cifar_archive

    from nobarriers.datasets import load_dataset, prepare_dataset

    archive, checksums, _ = write_cifar_archive(tmp_path, "cifar10", per_file=6, classes=4)
    prepare_dataset("cifar10", tmp_path, checksums=checksums)
    npz, record = (
        tmp_path / "cifar-10-batches-py.arrays.npz",
        tmp_path / "cifar-10-batches-py.arrays.json",
    )
    assert npz.is_file() and record.is_file()
    stamp = npz.stat().st_mtime_ns
    prepare_dataset("cifar10", tmp_path, checksums=checksums)  # current: left alone
    assert npz.stat().st_mtime_ns == stamp
    code = (
        "import sys, json; from nobarriers.datasets import load_dataset; "
        f"d = load_dataset('cifar10', {str(tmp_path)!r}, checksums=json.loads(sys.argv[1])); "
        "print(tuple(d.x_train.shape), 'torchvision' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(checksums)], capture_output=True,
                         text=True, check=True).stdout.split()  # fmt: skip
    assert out[-1] == "False" and "".join(out[:-1]) == "(30,3,32,32)", out
    cached = load_dataset("cifar10", tmp_path, checksums=checksums)
    npz.unlink()
    record.unlink()
    decoded = load_dataset("cifar10", tmp_path, checksums=checksums)  # through torchvision
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(cached, key), getattr(decoded, key)), key
    assert cached.mean == decoded.mean and cached.std == decoded.std


def test_a_damaged_cache_is_refused_and_one_of_other_batches_ignored(tmp_path):
    from cifar_archive import write_cifar_archive

    from nobarriers.core.errors import FileFormatError
    from nobarriers.datasets import load_dataset, prepare_dataset

    archive, checksums, images = write_cifar_archive(tmp_path, "cifar10", per_file=6, classes=4)
    prepare_dataset("cifar10", tmp_path, checksums=checksums)
    npz, record = (
        tmp_path / "cifar-10-batches-py.arrays.npz",
        tmp_path / "cifar-10-batches-py.arrays.json",
    )
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="does not match the SHA-256") as err:
        load_dataset("cifar10", tmp_path, checksums=checksums)
    assert str(npz) in str(err.value) and str(record) in str(err.value)
    prepare_dataset("cifar10", tmp_path, checksums=checksums)  # the prepare job writes it anew
    assert load_dataset("cifar10", tmp_path, checksums=checksums).y_test.tolist() == (
        images["test"][1].tolist()
    )
    # built from other batches (other expected md5s): not used, the batches are read and checked
    saved = json.loads(record.read_text())
    saved["sources"]["data_batch_1"] = "0" * 32
    record.write_text(json.dumps(saved))
    npz.write_bytes(b"not read")
    assert load_dataset("cifar10", tmp_path, checksums=checksums).y_test.tolist() == (
        images["test"][1].tolist()
    )
