"""Cluster settings: a user's own config gets the paper's settings, GPU requests reach sbatch one
way only, runtimes are capped and checked against measured cycles, a job granted a GPU that sees
none stops at once, and bad cluster settings fail at start-up naming the key.

The live-SLURM side (QoS and gres in ``scontrol show job``, the GPU error in a real job's log)
is in test_slurm.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from snakemake_executor_plugin_slurm.utils import set_gres_string
from workflow_runs import TINY, job_blocks, snakemake

from nobarriers.core.errors import ConfigError, DeviceError
from nobarriers.formats.pathfile import read_path
from nobarriers.settings.config import (
    ARRAY_ISSUE,
    HEAVY_RULES,
    WorkflowConfig,
    array_rules,
    check_array_jobs,
    jobs_bound,
)
from nobarriers.stages.common import longest_cycle
from nobarriers.stages.compute import JobRuntime, requested_gpus

ROOT = Path(__file__).resolve().parents[1]

# Appendix A / Section 4.1 of the paper, written out here (not read from the schema) so that a
# changed default fails this test: 4 x (1000 steps, lr 0.1), 2 x (2000, 0.1), 4 x (1000, 0.01),
# 4 x (1000, 0.001) = 14 cycles, 16,000 steps; batch 512; insertion on 2048 training samples.
PAPER_SCHEDULE = (
    [{"steps": 1000, "lr": 0.1}] * 4
    + [{"steps": 2000, "lr": 0.1}] * 2
    + [{"steps": 1000, "lr": 0.01}] * 4
    + [{"steps": 1000, "lr": 0.001}] * 4
)


def settings_lines(out: str) -> dict[str, str]:
    """The start-up log: one ``nobarriers settings of <dataset>/<arch> (config <file>; ...):
    ...`` line per row, as ``{row: the whole line after the row's name}``."""
    found = re.findall(r"nobarriers settings of (\S+) (\(config .*)", out)
    return dict(found)


def test_a_config_with_only_a_cifar_row_gets_the_paper_settings(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("rows:\n  - {dataset: cifar10, arch: resnet-20}\n")
    row = WorkflowConfig.load(user).row("cifar10", "resnet-20")
    schedule = [{"steps": c["steps"], "lr": c["lr"]} for c in row["autoneb"]["schedule"]]
    assert schedule == PAPER_SCHEDULE
    assert row["autoneb"]["batch_size"] == 512 and row["autoneb"]["eval_subset"] == 2048
    assert row["exploration"]["max_paths"] == 45 and row["seeds"] == list(range(10))
    assert row["recipe"]["epochs"] == 136 and row["recipe"]["batch_size"] == 128

    # Through Snakemake: the demo's config/config.yaml must not be laid under the user's file.
    proc = snakemake("-n", "--cores", "1", "--configfile", str(user), "--config",
                     f"results_dir={tmp_path / 'results'}")  # fmt: skip
    lines = settings_lines(proc.stdout + proc.stderr)
    assert list(lines) == ["cifar10/resnet-20"], lines
    line = lines["cifar10/resnet-20"]
    for expected in (f"(config {user}; [paper] = the paper's value): ",
                     "AutoNEB 14 cycles / 16000 steps [paper]", "batch 512 [paper]",
                     "eval_subset 2048 [paper]", "budget 45 paths [paper]",
                     "136 epochs [paper]"):  # fmt: skip
        assert expected in line, line
    assert re.search(r"train_minimum\s+10\b", proc.stdout), proc.stdout[-3000:]

    # Without --configfile the embedded digits demo runs, and says where its values come from.
    demo = settings_lines(snakemake("-n", "--cores", "1", "--config",
                                    f"results_dir={tmp_path / 'demo'}").stdout)  # fmt: skip
    assert all(key.startswith("digits/") for key in demo) and demo
    for line in demo.values():  # the file once, each value's source short
        assert line.count("config/config.yaml") == 1, line
        assert line.startswith("(config config/config.yaml;") and "[autoneb]" in line, line
        assert "[recipe digits]" in line, line


# ------------------------------------------------------------------ what reaches sbatch
class Resources(dict):
    """The plugin reads a job's resources both as ``.get(key)`` and as attributes."""

    def __getattr__(self, key):
        return self[key]


def planned_resources(tmp_path, *config) -> dict[str, str]:
    """The resources a dry run of the tiny config plans for a train_minimum job."""
    proc = snakemake("-n", "--cores", "1", "--configfile", str(TINY), "--config",
                     f"results_dir={tmp_path / 'results'}", *config)  # fmt: skip
    return next(j for j in job_blocks(proc.stdout) if j["rule"] == "train_minimum")["resources"]


@pytest.mark.parametrize(
    "config, flags, partition",
    [
        ([], " --gpus=1", None),
        (["gpu_model=a100", "partitions={gpu: gpuq}"], " --gpus=a100:1", "gpuq"),
        (["gpu_request=gres", "gpu_model=h100"], " --gres=gpu:h100:1", None),
        (["gpu_request=gres"], " --gres=gpu:1", None),
        (["gpu_jobs=false", "partitions={gpu: gpuq, cpu: cpuq}"], "", "cpuq"),
    ],
    ids=["gpus", "gpus-model-partition", "gres-model", "gres", "cpu-only"],
)
def test_gpu_request_reaches_sbatch_one_way_only(tmp_path, config, flags, partition):
    resources = planned_resources(tmp_path, *config)
    job = type("Job", (), {"resources": Resources(resources)})()
    assert set_gres_string(job) == flags, resources
    assert resources.get("slurm_partition") == partition
    assert not ("gres" in resources and "gpu" in resources), "both --gres and --gpus"
    assert requested_gpus(resources) == (0 if "gpu_jobs=false" in config else 1)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--config", "gpu_jobs=false", "gpu_model=a100"], "gpu_model: 'a100' names a GPU type"),
        (["--set-resources", "autoneb_path:slurm_partiton=gpu"],
         "unknown resource 'slurm_partiton'"),
        (["--set-resources", "autoneb_pat:runtime=5"], "no rule 'autoneb_pat'"),
        (["--set-resources", "train_minimum:gpu_model=a100"], "gpu_model='a100'"),
        (["--config", "gpu_jobs=false", "--default-resources", "gpu=1"],
         "requests a GPU while the workflow's gpu_jobs is false"),
    ],
    ids=["model-without-gpu-jobs", "unknown-resource", "unknown-rule", "profile-gpu",
         "gpu-without-gpu-jobs"],
)  # fmt: skip
def test_bad_cluster_settings_fail_at_start_up_naming_the_key(tmp_path, args, expected):
    proc = snakemake("-n", "--cores", "1", "--configfile", str(TINY), "--config",
                     f"results_dir={tmp_path / 'results'}", *args, check=False)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and expected in out, out[-3000:]
    assert "Job stats" not in proc.stdout, "no job may be planned"


def test_an_unknown_executor_setting_in_a_profile_names_the_key(tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    settings = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    profile.joinpath("config.yaml").write_text(yaml.safe_dump({**settings, "slurm-qoss": "hi"}))
    proc = snakemake("-n", "--profile", str(profile), "--configfile", str(TINY), check=False)
    assert proc.returncode != 0
    assert "unrecognized arguments: --slurm-qoss" in proc.stderr, proc.stderr[-2000:]


# ------------------------------------------------------------------ SLURM job arrays
def test_the_profile_submits_every_heavy_rule_as_job_arrays_without_cutting_a_wave():
    """profiles/slurm: job arrays for all rules, and neither --jobs nor the rate limit below the
    most jobs the paper configuration can have at once (the plugin would drop a cut wave)."""
    from snakemake.cli import parse_jobs
    from snakemake.settings.types import MaxJobsPerTimespan

    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert array_rules(profile["slurm-array-jobs"]) == list(HEAVY_RULES)
    paper = WorkflowConfig.load(ROOT / "config" / "paper.yaml")
    jobs = parse_jobs(str(profile["jobs"]))
    rate = MaxJobsPerTimespan.parse_choice(profile["max-jobs-per-timespan"])
    assert jobs == sys.maxsize and rate.max_jobs >= jobs_bound(paper) > 280
    said = check_array_jobs(paper, profile["slurm-array-jobs"], jobs, rate)
    # the paper's families ask for different times: each array job asks for the most
    assert len(said) == 4 and "every train_minimum job asks for 1380 min" in said[0], said


@pytest.mark.parametrize(
    "jobs, rate, expected",
    [(100, None, "with --jobs 100"), (None, 100, "with --max-jobs-per-timespan 100/")],
)
def test_array_jobs_with_a_limit_that_cuts_a_wave_are_refused(jobs, rate, expected):
    paper = WorkflowConfig.load(ROOT / "config" / "paper.yaml")
    with pytest.raises(ConfigError, match="slurm-array-jobs .train_minimum, autoneb_path.") as e:
        check_array_jobs(paper, "train_minimum;autoneb_path", jobs, rate)
    assert expected in str(e.value) and ARRAY_ISSUE in str(e.value)
    check_array_jobs(paper, "none", jobs, rate)  # without arrays any limit is fine
    check_array_jobs(paper, None, jobs, rate)


def test_under_job_arrays_every_job_of_a_rule_asks_for_the_most_of_the_rows():
    config = WorkflowConfig({
        "resources": {"families": {"densenet": {"autoneb_path": {"runtime": 1000,
                                                                 "mem_mb": 64000}}}},
        "rows": [{"dataset": "cifar10", "arch": "densenet-40-12"},
                 {"dataset": "cifar10", "arch": "cnn-12",
                  "resources": {"train_minimum": {"runtime": 30}}}],
        "alignment": "weight_matching", "comparisons": {"autoneb_repeats": 2},
        "curves": {"families": ["bezier"]},
    })  # fmt: skip
    own = config.rule_limits("aligned_path", "cifar10", "cnn-12")
    assert own == {"runtime": 480, "mem_mb": 16000}
    shared = {"runtime": 1000, "mem_mb": 64000}
    for rule in ("autoneb_path", "aligned_path", "repeat_path", "curve"):
        assert config.rule_limits(rule, "cifar10", "cnn-12", arrays=True) == shared, rule
    assert config.rule_limits("train_minimum", "cifar10", "cnn-12", arrays=True)["runtime"] == 240
    assert config.rule_limits("evaluate_path", "cifar10", "cnn-12", arrays=True) == own | {
        "runtime": 120
    }
    said = check_array_jobs(config, "all", None, None)
    assert [line.split(" job asks")[0] for line in said] == [
        f"nobarriers: slurm-array-jobs: every {r}" for r in
        ("train_minimum", "autoneb_path", "aligned_path", "repeat_path", "curve")
    ]  # fmt: skip
    assert "cifar10/cnn-12 alone would ask for 30 min" in said[0]


# ------------------------------------------------------------------ runtimes
def runtimes(resources: dict, rows=None) -> WorkflowConfig:
    rows = rows or [{"dataset": "cifar10", "arch": "densenet-40-12"},
                    {"dataset": "cifar10", "arch": "cnn-12"}]  # fmt: skip
    return WorkflowConfig({"rows": rows, "resources": resources})


def test_runtime_per_rule_family_and_row_capped_by_max_runtime():
    default = runtimes({})
    # resumable jobs: a retry gets the same limit by default (retry_growth 1)
    assert [default.runtime_minutes("cifar10", "cnn-12", "autoneb_path", a) for a in (1, 2, 3)] == [
        480,
        480,
        480,
    ]
    config = runtimes(
        {"max_runtime": 1440, "retry_growth": 2, "autoneb_path": {"runtime": 400},
         "families": {"densenet": {"autoneb_path": {"runtime": 1000, "mem_mb": 64000}}}},
        rows=[{"dataset": "cifar10", "arch": "densenet-40-12"},
              {"dataset": "cifar10", "arch": "cnn-12",
               "resources": {"train_minimum": {"runtime": 30}}}],
    )  # fmt: skip
    grow = [config.runtime_minutes("cifar10", "cnn-12", "autoneb_path", a) for a in (1, 2, 3, 4)]
    assert grow == [400, 800, 1440, 1440]  # doubled per retry, never above the cap
    assert config.runtime_minutes("cifar10", "densenet-40-12", "autoneb_path", 1) == 1000
    assert config.runtime_minutes("cifar10", "densenet-40-12", "autoneb_path", 2) == 1440
    assert config.job_resources("cifar10", "densenet-40-12", "autoneb_path")["mem_mb"] == 64000
    assert config.job_resources("cifar10", "cnn-12", "autoneb_path")["mem_mb"] == 16000
    assert config.runtime_minutes("cifar10", "cnn-12", "train_minimum", 1) == 30
    assert config.runtime_minutes("cifar10", "densenet-40-12", "train_minimum", 1) == 240
    with pytest.raises(ConfigError, match="resources.families"):
        runtimes({"families": {"transformer": {}}})


def test_a_runtime_below_one_measured_cycle_is_refused(tmp_path):
    config = runtimes({"max_runtime": 30})
    config.check_runtime_fits("cifar10", "cnn-12", 29 * 60, "cycles.tsv")  # fits
    with pytest.raises(ConfigError, match=r"resources.max_runtime: .* 30 minutes, but one cycle"):
        config.check_runtime_fits("cifar10", "cnn-12", 31 * 60, "cycles.tsv")
    uncapped = runtimes({"autoneb_path": {"runtime": 10}})
    with pytest.raises(ConfigError, match=r"resources.autoneb_path.runtime"):
        uncapped.check_runtime_fits("cifar10", "cnn-12", 11 * 60, "cycles.tsv")

    # at start-up, from the cycle times that finished path jobs recorded
    results = tmp_path / "results"
    folder = results / "benchmarks" / "digits" / "mlp-16" / "paths"
    folder.mkdir(parents=True)
    (folder / "0-1.cycles.tsv").write_text("cycle\tsteps\tn_pivots\twall_s\n1\t40\t3\t7.5\n")
    (folder / "0-2.cycles.tsv").write_text("cycle\tsteps\tn_pivots\twall_s\n1\t40\t3\t150.0\n")
    assert longest_cycle(sorted(folder.glob("*.cycles.tsv"))) == (
        150.0,
        str(folder / "0-2.cycles.tsv"),
    )
    proc = snakemake("-n", "--cores", "1", "--configfile", str(TINY), "--config",
                     f"results_dir={results}", "resources={max_runtime: 2}",
                     check=False)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "resources.max_runtime" in out and "0-2.cycles.tsv" in out
    snakemake("-n", "--cores", "1", "--configfile", str(TINY), "--config",
              f"results_dir={results}", "resources={max_runtime: 3}")  # fmt: skip


# ------------------------------------------------------------------ a GPU job without a GPU
@pytest.fixture()
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    threads = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(threads)


def test_a_job_granted_a_gpu_that_sees_none_stops_at_once(no_gpu):
    no_gpu.setenv("SLURM_JOB_ID", "4711")
    granted = JobRuntime(device="auto", gpus=1)
    assert granted.gpu_granted
    with pytest.raises(DeviceError) as err:
        granted.start("digits")
    message = str(err.value)
    for seen in ("SLURM job 4711", "CUDA_VISIBLE_DEVICES=,", "torch.cuda.is_available()=False",
                 "torch.cuda.device_count()=0", "gpu_jobs=false"):  # fmt: skip
        assert seen in message, message
    # gpu_jobs: false requests no GPU; device: cpu never wants one: both run on the CPU
    for runtime in (JobRuntime(device="auto", gpus=0), JobRuntime(device="cpu", gpus=1)):
        device, data = runtime.start("digits")
        assert device.type == "cpu" and data.x_train.device.type == "cpu"


def test_local_runs_keep_running_on_the_cpu(no_gpu):
    no_gpu.delenv("SLURM_JOB_ID", raising=False)
    local = JobRuntime(device="auto", gpus=1)  # the rule requests a GPU; nobody granted one
    assert not local.gpu_granted
    assert local.start("digits")[0].type == "cpu"
    with pytest.raises(DeviceError, match="device: cuda"):
        JobRuntime(device="cuda").start("digits")


# ------------------------------------------------------------------ HDF5 locking
# A second process holds the file open for writing, as a job does while it writes.
HOLD_OPEN = """
import sys, time, h5py
handle = h5py.File(sys.argv[1], "a")
print("open", flush=True)
time.sleep(60)
"""
READ = (
    "import sys; from nobarriers.formats.pathfile import read_path; "
    "print(read_path(sys.argv[1]).saddle_loss)"
)


@pytest.mark.parametrize("locking", ["TRUE", "FALSE"])
def test_path_files_are_written_and_read_with_hdf5_locking_disabled(tmp_path, locking):
    """With HDF5_USE_FILE_LOCKING=FALSE (what ``hdf5_file_locking: false`` passes to every job)
    path files are written and read while another process holds them open -- as on a shared
    file system without working locks; with locking on, libhdf5 refuses the reader."""
    env = {**os.environ, "HDF5_USE_FILE_LOCKING": locking, "PYTHONPATH": str(ROOT / "tests")}
    path = tmp_path / "0-1.h5"
    write = (
        "import sys, numpy as np; from test_pathfile import PATH_META, make_result; "
        "from nobarriers.formats.pathfile import write_path; "
        "write_path(sys.argv[1], make_result(np.random.default_rng(0)), **PATH_META)"
    )
    subprocess.run([sys.executable, "-c", write, str(path)], check=True, env=env)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(path)], env=env,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "open"
        reader = subprocess.run([sys.executable, "-c", READ, str(path)], env=env,
                                capture_output=True, text=True)  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    if locking == "FALSE":
        assert reader.returncode == 0, reader.stderr
        assert float(reader.stdout) == pytest.approx(read_path(path).saddle_loss)
    else:
        assert reader.returncode != 0 and "lock" in reader.stderr.lower(), reader.stderr
