"""A researcher's own network, data and minima: refused when they cannot work, with the key or
file named, before any job starts or by the job that reads them; and the whole workflow on them,
end to end, with no edit to the package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from workflow_runs import snakemake

from nobarriers.core.errors import FileFormatError, NoBarriersError
from nobarriers.datasets import load_dataset
from nobarriers.formats.state_dict import fit_state_dict, read_state_dict
from nobarriers.settings.config import WorkflowConfig, stage_hash
from nobarriers.stages.checks import check_user_models

ROOT = Path(__file__).resolve().parents[1]
#: the README's "Your own network and data": a package, a data script, a config
EXAMPLE = ROOT / "examples" / "own_network"


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example folder after ``python make_data.py``: blobs.npz and three minima trained
    outside the workflow (pretrained/)."""
    folder = tmp_path_factory.mktemp("example") / "own_network"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "make_data.py"], cwd=folder, check=True, timeout=300)
    return folder


@pytest.fixture
def lab(example, tmp_path, monkeypatch):
    """A working directory of the user's own (a copy of the example), as the workflow sees
    it: the package is found from there."""
    folder = tmp_path / "lab"
    shutil.copytree(example, folder)
    monkeypatch.chdir(folder)
    yield folder
    for name in [m for m in sys.modules if m == "mylab" or m.startswith("mylab.")]:
        del sys.modules[name]


def blobs() -> dict:
    with np.load(EXAMPLE_DATA) as f:
        return {k: f[k].copy() for k in f.files}


EXAMPLE_DATA = Path("blobs.npz")  # relative: read inside the lab


def write_blobs(path: Path, **arrays) -> Path:
    np.savez(path, **{**blobs(), **arrays})
    return path


def config(**change) -> dict:
    out = yaml.safe_load((EXAMPLE / "my.yaml").read_text())
    out["rows"] = out["rows"][:1]
    for key, value in change.items():
        out[key] = value
    return out


def refusal(cfg: dict) -> str:
    with pytest.raises(NoBarriersError) as err:
        settings = WorkflowConfig(cfg)
        check_user_models(settings, settings.selected_rows())
    return str(err.value)


# ---- networks --------------------------------------------------------------------------------


def test_a_user_network_is_checked_at_start_up_and_identifies_its_rows(lab):
    settings = WorkflowConfig(config())
    check_user_models(settings, settings.selected_rows())  # builds on meta, outputs 3 classes
    row = settings.row("blobs", "tiny_net")
    assert row["model"] == {"build": "mylab.nets:build_tiny", "kwargs": {"width": 8}}
    assert row["recipe"]["epochs"] == 6 and row["recipe"]["lr"] == 0.05  # models.tiny_net.recipe
    assert row["recipe"]["weight_decay"] == 1e-4  # the rest: the paper's (He et al.)
    assert settings.sources("blobs", "tiny_net")["recipe.epochs"].endswith("models.tiny_net.recipe")
    assert "mylab.nets:build_tiny" in settings.summary("blobs", "tiny_net")
    # the import path and kwargs are part of every config hash
    other = config()
    other["models"]["tiny_net"]["kwargs"] = {"width": 9}
    changed = WorkflowConfig(other).row("blobs", "tiny_net")
    for stage in ("minima", "paths", "evaluation", "report"):
        assert stage_hash(changed, stage) != stage_hash(row, stage), stage


def test_an_import_path_that_does_not_import_shows_the_exception(lab):
    (lab / "mylab" / "broken.py").write_text("import numpy\nraise RuntimeError('no GPU driver')\n")
    cfg = config()
    cfg["models"]["tiny_net"]["build"] = "mylab.broken:build"
    text = refusal(cfg)
    assert "models.tiny_net.build" in text and "RuntimeError: no GPU driver" in text
    assert "broken.py" in text
    cfg["models"]["tiny_net"]["build"] = "mylab.nowhere:build"
    assert "No module named 'mylab.nowhere'" in refusal(cfg)
    cfg["models"]["tiny_net"]["build"] = "mylab.nets:build_huge"
    assert "has no attribute 'build_huge'" in refusal(cfg)


def test_a_builder_with_the_wrong_signature_is_refused(lab):
    (lab / "mylab" / "odd.py").write_text("def build(shape):\n    return None\n")
    cfg = config()
    cfg["models"]["tiny_net"]["build"] = "mylab.odd:build"
    text = refusal(cfg)
    assert "wrong signature" in text and "build(num_classes, input_shape, **kwargs)" in text
    cfg = config()
    cfg["models"]["tiny_net"]["kwargs"] = {"depth": 3}  # a keyword build_tiny does not take
    assert "unexpected keyword argument 'depth'" in refusal(cfg)


def test_a_network_whose_output_does_not_match_the_classes_is_refused(lab):
    (lab / "mylab" / "wrong.py").write_text(
        "from torch import nn\n"
        "def build(num_classes, input_shape):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes + 1))\n"
    )
    cfg = config()
    cfg["models"]["tiny_net"] = {"build": "mylab.wrong:build"}
    text = refusal(cfg)
    assert "models.tiny_net (mylab.wrong:build)" in text
    assert "returns (2, 4)" in text and "(2, 3)" in text


def test_an_untraceable_network_under_alignment_is_refused_naming_its_module(lab):
    (lab / "mylab" / "dynamic.py").write_text(
        "import torch\nfrom torch import nn\n"
        "class Dyn(nn.Module):\n"
        "    def __init__(self, k, f):\n"
        "        super().__init__(); self.a = nn.Linear(f, k); self.b = nn.Linear(f, k)\n"
        "    def forward(self, x):\n"
        "        return self.a(x) if x.sum() > 0 else self.b(x)  # data-dependent: untraceable\n"
        "def build(num_classes, input_shape):\n"
        "    return Dyn(num_classes, input_shape[0])\n"
    )
    cfg = config()
    cfg["models"]["tiny_net"] = {"build": "mylab.dynamic:build"}
    text = refusal(cfg)
    assert "alignment: weight_matching" in text and "mylab.dynamic:build" in text
    cfg["rows"][0]["alignment"] = "none"
    settings = WorkflowConfig(cfg)
    check_user_models(settings, settings.selected_rows())  # without alignment it is fine


def test_names_of_the_catalogue_cannot_be_taken(lab):
    cfg = config()
    cfg["models"]["resnet-20"] = {"build": "mylab.nets:build_tiny"}
    assert "built-in model name" in refusal(cfg)
    cfg = config()
    cfg["datasets"]["cifar10"] = {"npz": "blobs.npz"}
    assert "built-in dataset" in refusal(cfg)
    cfg = config()
    cfg["datasets"]["blobs"] = {"npz": "blobs.npz", "load": "mylab.data:load"}
    assert "exactly one of npz" in refusal(cfg)
    cfg = config()
    cfg["rows"][0]["arch"] = "tiny_nett"
    assert "rows[0].arch" in refusal(cfg)


# ---- datasets --------------------------------------------------------------------------------


def test_an_npz_dataset_is_inferred_normalised_and_identified_by_its_bytes(lab):
    settings = WorkflowConfig(config())
    source = settings.dataset_source("blobs")
    assert (source.num_classes, source.input_shape) == (3, (6,))  # read before loading
    data = load_dataset("blobs", definitions=settings.values["datasets"])
    raw = blobs()
    assert data.x_train.shape == (240, 6) and data.num_classes == 3 and data.augment == "none"
    torch.testing.assert_close(data.x_train.mean(0), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(data.x_train.std(0, unbiased=False), torch.ones(6), atol=1e-5,
                               rtol=0)  # fmt: skip
    mean, std = raw["x_train"].mean(0), raw["x_train"].std(0)
    expect = (raw["x_test"] - mean) / std
    np.testing.assert_allclose(data.x_test.numpy(), expect, atol=1e-5)
    before = settings.row("blobs", "tiny_net")["data"]
    assert len(before["sha256"]) == 64
    # the same bytes elsewhere: the same identity; other bytes: another
    (lab / "moved").mkdir()
    os.replace(lab / "blobs.npz", lab / "moved" / "blobs.npz")
    cfg = config()
    cfg["datasets"]["blobs"]["npz"] = "moved/blobs.npz"
    assert WorkflowConfig(cfg).row("blobs", "tiny_net")["data"] == before
    moved = WorkflowConfig(cfg).row("blobs", "tiny_net")
    raw["x_train"][0, 0] += 1.0
    np.savez(lab / "moved" / "blobs.npz", **raw)
    after = WorkflowConfig(cfg).row("blobs", "tiny_net")
    assert after["data"]["sha256"] != before["sha256"]
    for stage in ("minima", "paths", "evaluation"):
        assert stage_hash(after, stage) != stage_hash(moved, stage), stage


def _one(key, index, value):
    def change(arrays):
        out = arrays[key].copy()
        out[index] = value
        return {key: out}

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (_one("x_train", (3, 2), np.nan), "x_train holds 1 NaN or infinite values"),
        (_one("x_test", (0, 0), np.inf), "x_test holds 1 NaN or infinite values"),
        (_one("y_train", 5, 7), "labels range over 0..7, outside 0..2"),
        (_one("y_test", 0, -1), "labels range over -1..2, outside 0..2"),
        (lambda a: {"y_train": a["y_train"][:200]}, "x_train has 240 samples but y_train has"),
        (lambda a: {"x_test": a["x_test"][:, :5]}, "test samples have shape (5,)"),
        (lambda a: {"y_test": a["y_test"] + 0.5}, "integer class labels"),
    ],
)
def test_bad_datasets_are_refused_naming_the_file(lab, change, message):
    write_blobs(lab / "blobs.npz", **change(blobs()))
    definitions = {"blobs": {"npz": "blobs.npz", "num_classes": 3}}
    with pytest.raises(FileFormatError) as err:
        load_dataset("blobs", definitions=definitions)
    assert "datasets.blobs.npz (blobs.npz)" in str(err.value) and message in str(err.value)


def test_an_npz_that_is_no_npz_or_lacks_an_array_is_refused(lab):
    good = blobs()
    (lab / "blobs.npz").write_bytes(b"not a zip file at all")  # refused at start-up
    assert "datasets.blobs.npz: blobs.npz is not a readable .npz" in refusal(config())
    np.savez(lab / "blobs.npz", x_train=np.zeros((4, 2)), y_train=np.zeros(4, np.int64))
    with pytest.raises(FileFormatError, match="no array.s. x_test, y_test"):
        load_dataset("blobs", definitions={"blobs": {"npz": "blobs.npz"}})
    np.savez(lab / "blobs.npz", **{**good, "x_train": np.array([{"a": 1}] * 240)})
    with pytest.raises(FileFormatError, match="not a readable .npz"):  # object arrays: no pickle
        load_dataset("blobs", definitions={"blobs": {"npz": "blobs.npz"}})


def test_a_loader_function_dataset_is_cached_by_its_prepare_job(lab):
    (lab / "mylab" / "data.py").write_text(
        "import torch\n"
        "def load(n):\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    x = torch.randn(n, 1, 4, 4, generator=g); y = (x.sum((1, 2, 3)) > 0).long()\n"
        "    return x, y, x[: n // 4], y[: n // 4]\n"
    )
    definitions = {"shapes": {"load": "mylab.data:load", "kwargs": {"n": 64}}}
    settings = WorkflowConfig(config(datasets=definitions, rows=[{"dataset": "shapes",
                                                                  "arch": "cnn-2"}]))  # fmt: skip
    assert settings.row("shapes", "cnn-2")["data"]["load"] == "mylab.data:load"
    from nobarriers.datasets import prepare_dataset

    with pytest.raises(Exception, match="shapes.npz is missing"):
        load_dataset("shapes", lab / "data", definitions=settings.values["datasets"])
    prepare_dataset("shapes", lab / "data", definitions=settings.values["datasets"])
    data = load_dataset("shapes", lab / "data", definitions=settings.values["datasets"])
    assert data.x_train.shape == (64, 1, 4, 4) and data.num_classes == 2
    assert data.x_test.shape == (16, 1, 4, 4)


# ---- minima trained elsewhere ----------------------------------------------------------------


def test_state_dicts_are_read_from_safetensors_and_torch_save_never_unpickled(lab):
    files = sorted((lab / "pretrained").iterdir())
    assert [f.suffix for f in files] == [".safetensors", ".pt", ".ckpt"]
    from mylab.nets import build_tiny

    net = build_tiny(3, (6,), width=8)
    for f in files:
        state = read_state_dict(f)
        assert set(fit_state_dict(net, state, str(f))) == set(net.state_dict())
    # a pickled module: refused, and its code never runs
    marker = lab / "ran"
    evil = lab / "evil.pt"

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": Boom()}, evil)
    with pytest.raises(FileFormatError, match="never unpickled"):
        read_state_dict(evil)
    assert not marker.exists()
    torch.save(net, lab / "whole.pt")  # a whole nn.Module: a pickle too
    with pytest.raises(FileFormatError, match="torch.save.model.state_dict"):
        read_state_dict(lab / "whole.pt")


def test_a_state_dict_that_does_not_fit_names_the_first_mismatch(lab):
    from mylab.nets import build_tiny

    net = build_tiny(3, (6,), width=8)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    bigger = build_tiny(3, (6,), width=9).state_dict()
    with pytest.raises(FileFormatError, match=r"'body.1.weight' has shape \(9, 6\), the model's"):
        fit_state_dict(net, bigger, "minimum x.pt")
    missing = {k: v for k, v in state.items() if k != "body.4.bias"}
    with pytest.raises(FileFormatError, match="has no 'body.4.bias'"):
        fit_state_dict(net, missing, "minimum x.pt")
    with pytest.raises(FileFormatError, match="holds 'extra.weight'"):
        fit_state_dict(net, {**state, "extra.weight": torch.zeros(1)}, "minimum x.pt")
    # BatchNorm statistics may be absent: they are recomputed on the row's data
    no_stats = {k: v for k, v in state.items() if "running" not in k and "num_batches" not in k}
    assert set(fit_state_dict(net, no_stats, "minimum x.pt")) == set(no_stats)
    wrapped = {f"module.{k}": v for k, v in state.items()}  # DataParallel's prefix
    assert set(fit_state_dict(net, wrapped, "minimum x.pt")) == set(state)


def test_imported_rows_need_two_files(lab):
    cfg = config()
    cfg["rows"] = [{"dataset": "blobs", "arch": "tiny_net", "minima": {"files": "nothing/*"}}]
    assert "rows[0].minima.files: 'nothing/*' matches 0 file(s)" in refusal(cfg)


# ---- the workflow, end to end ----------------------------------------------------------------


def nobarriers(cwd, *args, check=True):
    cli = str(Path(sys.executable).parent / "nobarriers")
    proc = subprocess.run([cli, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"nobarriers {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.mark.slow
def test_own_network_data_and_minima_through_the_whole_workflow(tmp_path):
    """The README's "Your own network and data", its commands run as written and in order: a
    package of the user's own in the working directory, an .npz dataset, three minima trained
    outside the workflow; the real workflow to Table B.1 on them, then ``nobarriers inspect``,
    ``connect`` and ``table`` on its files."""
    from test_docs_commands import own_network_commands

    checkout = tmp_path / "checkout"  # the workflow's files, the example copied into it
    checkout.mkdir()
    for name in ("Snakefile", "rules", "workflow", "config", "report", "envs", "profiles"):
        (checkout / name).symlink_to(ROOT / name)
    shutil.copytree(EXAMPLE, checkout / "examples" / "own_network",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    cwd = checkout
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    for command in own_network_commands():
        if command.startswith("cd "):
            cwd = cwd / command.split(" ", 1)[1]
            continue
        proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=1200)  # fmt: skip
        assert proc.returncode == 0, f"{command}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    lab = cwd
    results = lab / "results"
    table = {r["architecture"]: r for r in _csv(results / "table_b1.csv")}
    assert set(table) == {"tiny_net", "tiny_pretrained"}
    for arch, row in table.items():
        assert float(row["train_sadd"]) >= 0.0 and int(row["n_minima"]) == 3, arch
        assert float(row["test_error_min"]) < 0.5, arch  # the blobs are learnable
    assert table["tiny_net"]["epoch"] != "" and table["tiny_pretrained"]["epoch"] == ""
    assert table["tiny_net"]["alignment_aligned_saddle"] != ""  # alignment traced the user net
    md = (results / "table_b1.md").read_text()
    assert "tiny_pretrained" in md and "minima trained elsewhere and imported" in md
    figures = {p.name for p in (results / "figures" / "blobs" / "tiny_pretrained").glob("*.png")}
    assert {"fig4_path_cycles.png", "fig6_learning_curves.png", "fig1_slice.png", "mst.png",
            "ensembles.png"} <= figures  # fmt: skip
    # each imported minimum records its source and the network it rebuilds without the config
    minimum = results / "blobs" / "tiny_pretrained" / "minima" / "1.safetensors"
    shown = json.loads(nobarriers(lab, "inspect", "--json", str(minimum)).stdout)
    assert shown["model"] == {"build": "mylab.nets:build_tiny", "kwargs": {"width": 8}}
    assert shown["imported_from"]["file"] == "run1.pt" and shown["epochs"] == 0
    path = json.loads(nobarriers(lab, "inspect", "--json", "0-2.h5").stdout)  # connect's file
    assert path["endpoints"] == [0, 2] and path["arch"] == "tiny_net"
    # nothing changed: nothing to do; a changed data file reruns everything that read it
    args = ("-n", "--cores", "1", "--configfile", "my.yaml")
    assert "Nothing to be done" in snakemake(*args, workdir=lab).stdout
    with np.load(lab / "blobs.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["x_test"] = arrays["x_test"] + 0.5
    np.savez(lab / "blobs.npz", **arrays)
    planned = snakemake(*args, workdir=lab).stdout
    assert "prepare_dataset" in planned and "train_minimum" in planned
    assert "import_minimum" in planned


def _csv(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_readme_shows_the_example_files_as_they_are():
    section = (ROOT / "README.md").read_text().split("## Your own network and data", 1)[1]
    section = section.split("\n## ", 1)[0]
    assert (EXAMPLE / "mylab" / "nets.py").read_text() in section
    assert (EXAMPLE / "my.yaml").read_text() in section
