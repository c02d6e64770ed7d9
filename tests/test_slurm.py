"""The workflow on a live single-node SLURM, through the profile users run: what only SLURM
shows.

Starts munged, MariaDB, slurmdbd, slurmctld and slurmd on this machine (tests/slurm/cluster.py;
installs the Debian packages when missing, which needs root and apt-get) and runs
``snakemake --profile profiles/slurm`` as docs/cluster.md says, with the few CI overrides of
profiles/ci-slurm/config.yaml given as command-line flags. Checks:

* bad profiles -- a forbidden ``slurm_extra`` option, an unknown account, an unknown
  partition -- fail with a message that names the problem, nothing submitted (scratch
  workflow tests/slurm/scratch.smk); job arrays with a ``--jobs`` limit are refused at start;
* a GPU job that sees no GPU fails at once with the reason in its log, and SLURM's FAILED
  state reaches Snakemake's report and ``sacct``;
* the real workflow (tests/configs/tiny.yaml without the comparisons) with the profile's job
  arrays, a QoS and a gres-only GPU request: the trainings and a round's paths go to SLURM as
  arrays (``sacct``: ``<id>_<task>``); every heavy rule's jobs ran as SLURM jobs with the QoS
  and one GPU as gres (``scontrol``), every other rule inside Snakemake; the main Snakemake,
  SIGKILLed while the round's path jobs are queued or running, leaves them running; restarted
  with the same command (after ``--unlock``), it resubmits nothing they finished and completes
  Table B.1, writing the plugin's efficiency report.

What a local run shows as well (the table, the figures, what reruns after a change, deleted and
damaged files) is tested locally in test_workflow.py.

Skipped, with the reason printed, when SLURM cannot be provided (not root, no apt-get, ...);
``NOBARRIERS_REQUIRE_SLURM=1`` turns that skip into a failure (for CI machines that must run
it). ``NOBARRIERS_SLURM_INSTALL=0`` forbids installing packages.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from workflow_runs import job_blocks

from nobarriers.settings.config import HEAVY_RULES

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
PROFILE_SRC = REPO / "profiles" / "slurm"
PROFILE = "profiles/slurm"  # relative to the run's working directory, as in docs/cluster.md
CI_OVERRIDES = REPO / "profiles" / "ci-slurm" / "config.yaml"
SCRATCH = REPO / "tests" / "slurm" / "scratch.smk"

# --- the real workflow: adjust here if targets move -----------------------------------------
REAL_SNAKEFILE = REPO / "Snakefile"
TINY_CONFIG = "tests/configs/tiny.yaml"
#: the comparisons add many jobs of rules that go to SLURM like any other: the local tests run them
WITHOUT_COMPARISONS = ["comparisons={sample_pairs: 0, autoneb_repeats: 1}", "curves={families: []}"]
FINAL_TABLE = "results/table_b1.csv"
MINIMA_GLOB = "results/**/minima/*.safetensors"
PATHS_GLOB = "results/**/paths/*.h5"
TOP_LEVEL_SKIP = {".venv", ".git", ".snakemake", "results", "logs", "data", "build", ".whl"}
ANYWHERE_SKIP = shutil.ignore_patterns(
    "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info", "snakemake-*.log"
)


def _copy_ignore(folder: str, names: list[str]) -> set[str]:
    skip = set(ANYWHERE_SKIP(folder, names))
    if Path(folder).resolve() == REPO:
        skip |= TOP_LEVEL_SKIP & set(names)
    return skip


RUN_TIMEOUT_S = float(os.environ.get("NOBARRIERS_SLURM_RUN_TIMEOUT", "420"))


def _load_cluster_module():
    spec = importlib.util.spec_from_file_location(
        "nobarriers_test_slurm_cluster", REPO / "tests" / "slurm" / "cluster.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


slurm_cluster = _load_cluster_module()


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def cluster():
    c = slurm_cluster.SlurmCluster(log=lambda m: print(f"[slurm-cluster] {m}", flush=True))
    try:
        c.start()
    except slurm_cluster.SlurmUnavailable as e:
        reason = f"live SLURM unavailable: {e.reason}"
        print(reason)
        if os.environ.get("NOBARRIERS_REQUIRE_SLURM") == "1":
            pytest.fail(reason + " (NOBARRIERS_REQUIRE_SLURM=1)")
        pytest.skip(reason)
    print(f"SLURM cluster ready in {c.started_in_s:.1f} s")
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def xdg(tmp_path_factory, cluster):
    """A private, empty XDG_CONFIG_HOME: runs use the profile by its path, as the docs say
    (``--profile profiles/slurm``, no install step), and no profile of this machine leaks in."""
    return tmp_path_factory.mktemp("xdg")


def ci_flags() -> list[str]:
    """profiles/ci-slurm/config.yaml as command-line flags (they override the profile)."""
    flags = []
    for key, val in (yaml.safe_load(CI_OVERRIDES.read_text()) or {}).items():
        if val is True:
            flags.append(f"--{key}")
        elif val is False or val is None:
            continue
        else:
            flags += [f"--{key}", str(val)]
    return flags


# ------------------------------------------------------------------------------- running
class SnakemakeRun:
    """One `snakemake --profile <profile>` process in `workdir`, output in a log file."""

    def __init__(self, cluster, xdg, workdir: Path, args: list[str], profile: str = PROFILE,
                 tag: str = "run"):  # fmt: skip
        self.cluster = cluster
        self.workdir = workdir
        self.logfile = workdir / f"snakemake-{tag}.log"
        self.cmd = [sys.executable, "-m", "snakemake", "--profile", profile, *ci_flags(), *args]
        env = dict(cluster.env(), XDG_CONFIG_HOME=str(xdg))
        env.pop("PYTHONPATH", None)
        if (workdir / "src" / "nobarriers").is_dir():
            # a repo copy: test its code, not the editable install's (which may be mid-edit)
            env["PYTHONPATH"] = str(workdir / "src")
        self.t0 = time.monotonic()
        with open(self.logfile, "w") as out:
            out.write("$ " + " ".join(self.cmd) + "\n")
            out.flush()
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our SIGKILL must hit snakemake only, not pytest
            )
        self.elapsed = None

    @property
    def text(self) -> str:
        return self.logfile.read_text(errors="replace")

    @property
    def run_uuid(self) -> str | None:
        m = re.search(r"SLURM run ID: (\S+)", self.text)
        return m.group(1) if m else None

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.cancel_jobs()
            pytest.fail(f"snakemake did not finish within {timeout:.0f} s: {' '.join(self.cmd)}"
                        f"\n{self.tail()}")  # fmt: skip
        self.elapsed = time.monotonic() - self.t0
        return rc

    def kill(self) -> None:
        """SIGKILL the main snakemake process only (its SLURM jobs keep running)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.elapsed = time.monotonic() - self.t0

    def queued(self) -> dict[str, str]:
        """This run's jobs in the queue: ``{job id: state}`` (array tasks as <id>_<task>)."""
        uuid = self.run_uuid
        if not uuid:
            return {}
        r = self.cluster.run("squeue", "-h", "-r", "--name", uuid, "-o", "%i %T", check=False)
        return dict(line.split() for line in r.stdout.splitlines() if line.strip())

    def wait_until_dequeued(self, timeout: float = RUN_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while self.queued():
            if time.monotonic() > deadline:
                self.cancel_jobs()
                pytest.fail(f"jobs of run {self.run_uuid} still queued after {timeout:.0f} s")
            time.sleep(1)

    def cancel_jobs(self, timeout: float = 60) -> None:
        """scancel this run's SLURM jobs (by run name) and wait until they have left the queue."""
        uuid = self.run_uuid
        if not uuid:
            return
        self.cluster.run("scancel", "--name", uuid, check=False)
        deadline = time.monotonic() + timeout
        while self.queued() and time.monotonic() < deadline:
            time.sleep(0.5)

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.text.splitlines()[-n:])

    def jobs(self) -> list[dict]:
        return parse_jobs(self.text)


def parse_jobs(text: str) -> list[dict]:
    """The jobs of a snakemake log (tests/workflow_runs.job_blocks), each with its SLURM job id:
    ``<id>`` when submitted alone, ``<id>_<task>`` as a task of a job array."""
    jobs = {job["jobid"]: dict(job, slurm_id=None) for job in job_blocks(text)}
    for m in re.finditer(r"Job (\d+) has been submitted with SLURM jobid (\d+)", text):
        if int(m.group(1)) in jobs:
            jobs[int(m.group(1))]["slurm_id"] = m.group(2)
    arrays = (r"Submitted array job with Snakemake IDs ([\d,]+) and SLURM job ID (\d+)\. "
              r"The individual task IDs are (\d+)-(\d+)\.")  # fmt: skip
    for m in re.finditer(arrays, text):
        ids, first = [int(i) for i in m.group(1).split(",")], int(m.group(3))
        assert len(ids) == int(m.group(4)) - first + 1, m.group(0)
        for task, jobid in enumerate(ids, start=first):
            if jobid in jobs:
                jobs[jobid]["slurm_id"] = f"{m.group(2)}_{task}"
    return list(jobs.values())


def snapshot(workdir: Path, patterns: list[str]) -> dict[str, tuple[int, int]]:
    out = {}
    for pat in patterns:
        for p in workdir.glob(pat):
            st = p.stat()
            out[str(p.relative_to(workdir))] = (st.st_mtime_ns, st.st_size)
    return out


def asks_for_gpu(job: dict) -> bool:
    """The job's rule requested a GPU (``gpu=1`` or a ``gres=gpu...``)."""
    resources = job["resources"]
    return resources.get("gpu", "0") not in ("0", "") or resources.get("gres", "").startswith("gpu")


def scontrol_job(cluster, job_id: str) -> dict[str, str]:
    """``scontrol show job`` as key=value pairs: what sbatch actually asked SLURM for."""
    out = cluster.run("scontrol", "-o", "show", "job", job_id).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def sacct(cluster, *selection: str) -> dict[str, dict]:
    """``sacct -X`` of the selected jobs: ``{job id: {name, state, comment, tres}}``."""
    r = cluster.run("sacct", "-X", "-n", "-P", "-a", "-S", "2000-01-01", *selection,
                    "-o", "JobID,JobName%100,State,Comment%300,AllocTRES%200")  # fmt: skip
    acct = {}
    for line in r.stdout.splitlines():
        jid, name, state, comment, tres = line.split("|")
        acct[jid] = {"name": name, "state": state, "comment": comment, "tres": tres}
    return acct


def check_ran_on_slurm(cluster, runs: list[SnakemakeRun]) -> dict[str, list[dict]]:
    """Every non-local job announced in these runs got a SLURM id; sacct knows each id under the
    run's name with the rule in its comment; jobs asking for a GPU got one; every local job is
    of a rule that is not heavy. Returns rule -> jobs."""
    by_rule: dict[str, list[dict]] = {}
    for run in runs:
        uuid = run.run_uuid
        for job in run.jobs():
            if job["local"]:
                assert job["rule"] not in HEAVY_RULES, job
                continue
            if run.proc.returncode != 0 and not job["slurm_id"]:
                continue  # killed before submission
            assert job["slurm_id"], (
                f"job {job['jobid']} of rule {job['rule']} has no SLURM job id in {run.logfile}"
            )
            job["run_uuid"] = uuid
            by_rule.setdefault(job["rule"], []).append(job)
    ids = [j["slurm_id"] for jobs in by_rule.values() for j in jobs]
    assert ids, "no SLURM jobs at all"
    acct = sacct(cluster, "-j", ",".join(ids))
    for rule, jobs in by_rule.items():
        assert rule in HEAVY_RULES, f"{rule} ran as a SLURM job: {jobs}"
        for job in jobs:
            a = acct.get(job["slurm_id"])
            assert a, f"sacct does not know SLURM job {job['slurm_id']} (rule {rule})"
            assert a["name"] == job["run_uuid"], (job, a)
            assert a["comment"].startswith(f"rule_{rule}"), (job, a)
            if job["finished"]:
                assert a["state"] == "COMPLETED", (job, a)
            if asks_for_gpu(job):
                assert "gres/gpu=" in a["tres"], f"GPU job without a GPU: {job} {a}"
            job["sacct"] = a
    return by_rule


# ------------------------------------------------------------------------------- scratch tests
@pytest.fixture()
def scratch(tmp_path):
    shutil.copy(SCRATCH, tmp_path / "Snakefile")
    shutil.copytree(PROFILE_SRC, tmp_path / PROFILE)
    return tmp_path


def _bad_profile(xdg: Path, name: str, **default_resources) -> str:
    cfg = yaml.safe_load((PROFILE_SRC / "config.yaml").read_text())
    cfg.setdefault("default-resources", {}).update(default_resources)
    d = xdg / "profiles" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    return str(d)


@pytest.mark.parametrize(
    "resources, expected",
    [
        ({"slurm_extra": "'--gres=gpu:1'"}, ["GRES", "not allowed in the 'slurm_extra'"]),
        ({"slurm_account": "no_such_account"},
         ["account no_such_account appears to be invalid", "nobarriers"]),
        ({"slurm_partition": "no_such_partition"}, ["invalid partition", "no_such_partition"]),
    ],
    ids=["slurm_extra-gres", "unknown-account", "unknown-partition"],
)  # fmt: skip
def test_bad_profile_names_the_problem(cluster, xdg, scratch, resources, expected):
    name = _bad_profile(xdg, "slurm-bad-" + "-".join(resources), **resources)
    before = {a["JobID"] for a in cluster.sacct_jobs()}
    run = SnakemakeRun(cluster, xdg, scratch, ["results/minima/1.txt"], profile=name)
    rc = run.wait(timeout=120)
    out = run.text
    assert rc != 0, out
    for e in expected:
        assert e in out, f"{e!r} not in the output:\n{out}"
    assert {a["JobID"] for a in cluster.sacct_jobs()} == before, "nothing may be submitted"


# ------------------------------------------------------------------------------- real workflow
@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    missing = [p for p in (REAL_SNAKEFILE, REPO / TINY_CONFIG) if not p.exists()]
    if missing:
        pytest.skip(f"real workflow not present yet: missing {', '.join(map(str, missing))}")
    dest = tmp_path_factory.mktemp("repo") / "nobarriers"
    shutil.copytree(REPO, dest, ignore=_copy_ignore, symlinks=True)
    if (REPO / "data").exists():  # share downloaded data sets
        (dest / "data").symlink_to(REPO / "data")
    return dest


def test_job_arrays_with_a_jobs_limit_are_refused_before_any_job(cluster, xdg, repo_copy):
    """The plugin drops a wave of array jobs that --jobs cuts and the run hangs: refused at the
    start of the run, naming the setting, nothing submitted (check_array_jobs)."""
    before = {a["JobID"] for a in cluster.sacct_jobs()}
    args = ["--configfile", TINY_CONFIG, "--config", "results_dir=results-jobs", "--jobs", "4"]
    run = SnakemakeRun(cluster, xdg, repo_copy, args, tag="jobs-limit")
    assert run.wait(timeout=180) != 0, run.tail()
    assert "slurm-array-jobs (" in run.text and "with --jobs 4" in run.text, run.tail()
    assert "issues/473" in run.text, run.tail()
    assert {a["JobID"] for a in cluster.sacct_jobs()} == before, "nothing may be submitted"


def test_a_gpu_job_that_sees_no_gpu_fails_at_once_and_slurm_reports_it(cluster, xdg, repo_copy):
    """device: auto, and SLURM grants the (fake) GPU: the job sees no CUDA device, so it must
    stop at once with what it saw in its log, not train for hours on the CPU; SLURM's FAILED
    reaches Snakemake (its report names the state and shows the job's log) and sacct."""
    results = "results-gpu-check"
    target = f"{results}/digits/mlp-16/minima/0.safetensors"
    args = ["--configfile", TINY_CONFIG, "--config", "device=auto", f"results_dir={results}"]
    run = SnakemakeRun(cluster, xdg, repo_copy, [*args, "--", target], tag="no-gpu")
    assert run.wait(timeout=180) != 0, run.tail()
    log = (repo_copy / results / "logs" / "digits" / "mlp-16" / "train" / "0.log").read_text()
    error = next(line for line in log.splitlines() if " ERROR " in line)
    assert "train_minimum failed: the job requested a GPU (SLURM job" in error, log
    assert "CUDA_VISIBLE_DEVICES=" in error and "torch.cuda.device_count()=0" in error, error
    assert "epoch" not in log, "no training may start"
    out = run.text
    assert "Error in rule train_minimum" in out, out
    assert "SLURM status is: 'FAILED'" in out, out
    assert "train_minimum failed: the job requested a GPU" in out, "the job's log must be shown"
    (job,) = [j for j in run.jobs() if j["rule"] == "train_minimum"]
    acct = cluster.sacct_jobs(name=run.run_uuid)
    assert [a["State"] for a in acct if a["JobID"] == job["slurm_id"]] == ["FAILED"], acct
    assert "gpu:1" in scontrol_job(cluster, job["slurm_id"]).get("TresPerJob", ""), job


def test_real_workflow_in_job_arrays_survives_a_killed_controller(cluster, xdg, repo_copy):
    # A QoS through the plugin's own setting and GPUs as gres (clusters without --gpus): both
    # must reach sbatch as intended, and only one GPU request.
    args = ["--configfile", TINY_CONFIG, "--slurm-qos", cluster.qos, "--slurm-efficiency-report",
            "--config", "gpu_request=gres", *WITHOUT_COMPARISONS]  # fmt: skip
    t0 = time.monotonic()
    # up to the table: the figures are local jobs the local tests check
    target = ["--", FINAL_TABLE]
    first = SnakemakeRun(cluster, xdg, repo_copy, [*args, *target], tag="killed")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:  # the round's AutoNEB jobs submitted, then the main Snakemake dies
        paths = [j for j in first.jobs() if j["rule"] == "autoneb_path" and j["slurm_id"]]
        if paths:
            queued = first.queued()
            first.kill()
            break
        if first.proc.poll() is not None or time.monotonic() > deadline:
            first.kill()
            first.cancel_jobs()
            pytest.fail(f"no autoneb_path job submitted (rc {first.proc.returncode}):\n"
                        f"{first.tail()}")  # fmt: skip
        time.sleep(0.2)
    assert {j["slurm_id"] for j in paths} <= set(queued), (paths, queued)
    print(f"killed the main snakemake after {first.elapsed:.0f} s; in the queue: {queued}")
    lock_dir = repo_copy / ".snakemake" / "locks"
    assert any(lock_dir.iterdir()), "a SIGKILLed snakemake should leave its lock behind"

    # its jobs keep running without it (docs/cluster.md: wait for them, or scancel them)
    first.wait_until_dequeued()
    acct = sacct(cluster, "--name", first.run_uuid)
    assert acct and {a["state"] for a in acct.values()} == {"COMPLETED"}, acct
    # the trainings and the round's paths went to SLURM as job arrays: <array id>_<task>
    for rule in ("train_minimum", "autoneb_path"):
        ids = [j["slurm_id"] for j in first.jobs() if j["rule"] == rule]
        assert len(ids) >= 2 and all(re.fullmatch(r"\d+_\d+", i) for i in ids), (rule, ids)
        assert len({i.split("_")[0] for i in ids}) == 1, f"{rule}: one array, {ids}"
        assert set(ids) <= set(acct), (rule, ids, sorted(acct))
    finished = snapshot(repo_copy, [MINIMA_GLOB, PATHS_GLOB])
    assert sum(Path(f).match("paths/*.h5") for f in finished) == len(paths), finished

    unlock = SnakemakeRun(cluster, xdg, repo_copy, [*args, "--unlock"], tag="unlock")
    assert unlock.wait(timeout=120) == 0, unlock.tail()
    assert not lock_dir.exists() or not any(lock_dir.iterdir())
    second = SnakemakeRun(cluster, xdg, repo_copy, [*args, *target], tag="restarted")  # the same
    assert second.wait() == 0, second.tail()
    print(f"real workflow: killed after {first.elapsed:.0f} s, restarted run "
          f"{second.elapsed:.0f} s, total {time.monotonic() - t0:.0f} s")  # fmt: skip

    # nothing the orphaned jobs finished was submitted again, or changed
    again = {o for j in second.jobs() for o in j["outputs"]}
    assert not again & set(finished), again & set(finished)
    assert "train_minimum" not in {j["rule"] for j in second.jobs()}
    after = snapshot(repo_copy, [MINIMA_GLOB, PATHS_GLOB])
    assert all(after[f] == v for f, v in finished.items()), "finished files were rewritten"
    assert len(after) > len(finished), "the loop goes on: the next round's path"
    table = repo_copy / FINAL_TABLE
    assert table.is_file() and table.stat().st_size > 0, FINAL_TABLE

    by_rule = check_ran_on_slurm(cluster, [first, second])
    assert {"train_minimum", "autoneb_path", "aligned_path", "evaluate_path"} <= set(by_rule)
    print(f"rules run as SLURM jobs: {sorted(by_rule)}")
    for rule in sorted(by_rule):
        assert all(asks_for_gpu(j) for j in by_rule[rule]), rule
        job = scontrol_job(cluster, by_rule[rule][0]["slurm_id"])
        assert job["QOS"] == cluster.qos, (rule, job)
        assert job.get("TresPerNode") in ("gres:gpu:1", "gres/gpu:1"), (rule, job)
        assert "TresPerJob" not in job, f"{rule}: --gpus beside --gres: {job}"

    # the plugin's efficiency report (docs/cluster.md), one line per job step of the run
    (report,) = repo_copy.glob(f"efficiency_report_{second.run_uuid}.csv")
    with open(report, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {"CPU Efficiency (%)", "Memory Usage (%)"} <= set(rows[0]), rows[:1]
    assert {r["RuleName"].split("_wildcards")[0] for r in rows} >= {"rule_evaluate_path"}, rows
