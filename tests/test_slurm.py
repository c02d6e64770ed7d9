"""The workflow on a live single-node SLURM, through the profile users run.

Starts munged, MariaDB, slurmdbd, slurmctld and slurmd on this machine (tests/slurm/cluster.py;
installs the Debian packages when missing, which needs root and apt-get) and runs
``snakemake --profile profiles/slurm`` as docs/cluster.md says, with the few CI overrides of
profiles/ci-slurm/config.yaml given as command-line flags. Checks:

* a job that fails is reported as failed (scratch workflow tests/slurm/scratch.smk);
* bad profiles -- a forbidden ``slurm_extra`` option, an unknown account, an unknown
  partition -- fail with a message that names the problem;
* a run whose main snakemake is SIGKILLed mid-way finishes after ``--unlock`` +
  ``--rerun-incomplete`` without recomputing what had finished (scratch workflow, and the real
  workflow on tests/configs/tiny.yaml), every rule's jobs ran as SLURM jobs (their ids in the
  log and in ``sacct`` under the run's name, GPU rules with a GPU allocated), and the real
  workflow's table and figures exist.

Skipped, with the reason printed, when SLURM cannot be provided (not root, no apt-get, ...);
``NOBARRIERS_REQUIRE_SLURM=1`` turns that skip into a failure (for CI machines that must run
it). ``NOBARRIERS_SLURM_INSTALL=0`` forbids installing packages.
"""

from __future__ import annotations

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
FINAL_TABLE = "results/table_b1.csv"
FIGURES_DIR = "results/figures"
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

    def cancel_jobs(self, timeout: float = 60) -> None:
        """scancel this run's SLURM jobs (by run name) and wait until they have left the queue."""
        uuid = self.run_uuid
        if not uuid:
            return
        self.cluster.run("scancel", "--name", uuid, check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.cluster.run("squeue", "-h", "--name", uuid, "-o", "%i", check=False)
            if r.returncode == 0 and not r.stdout.strip():
                return
            time.sleep(0.5)
        raise AssertionError(f"jobs of run {uuid} still queued after scancel")

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.text.splitlines()[-n:])

    def jobs(self) -> list[dict]:
        return parse_jobs(self.text)


_BLOCK = re.compile(r"^(local)?rule (\S+):$")


def parse_jobs(text: str) -> list[dict]:
    """Jobs announced in a snakemake log: rule, local?, jobid, outputs, resources, slurm id,
    finished?"""
    jobs: dict[int, dict] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _BLOCK.match(lines[i])
        i += 1
        if not m:
            continue
        job = {"rule": m.group(2), "local": bool(m.group(1)), "outputs": [], "resources": {},
               "slurm_id": None, "finished": False}  # fmt: skip
        while i < len(lines) and lines[i].startswith("    "):
            key, _, val = lines[i].strip().partition(": ")
            if key == "output":
                job["outputs"] = [v.strip() for v in val.split(",") if v.strip()]
            elif key == "jobid":
                job["jobid"] = int(val)
            elif key == "resources":
                for kv in val.split(", "):
                    k, _, v = kv.partition("=")
                    job["resources"][k] = v
            i += 1
        if "jobid" in job:
            jobs[job["jobid"]] = job
    for m in re.finditer(r"Job (\d+) has been submitted with SLURM jobid (\d+)", text):
        if int(m.group(1)) in jobs:
            jobs[int(m.group(1))]["slurm_id"] = m.group(2)
    for m in re.finditer(r"Finished jobid: (\d+) \(Rule: (\S+)\)", text):
        if int(m.group(1)) in jobs:
            jobs[int(m.group(1))]["finished"] = True
    return list(jobs.values())


def planned_outputs(cluster, xdg, workdir: Path, args: list[str]) -> set[str]:
    """Outputs a dry run with --rerun-incomplete would (re)create."""
    run = SnakemakeRun(cluster, xdg, workdir, [*args, "--dry-run", "--rerun-incomplete"],
                       tag="dryrun")  # fmt: skip
    rc = run.wait(timeout=120)
    assert rc == 0, run.tail()
    return {o for j in run.jobs() for o in j["outputs"]}


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


def check_ran_on_slurm(cluster, runs: list[SnakemakeRun]) -> dict[str, list[dict]]:
    """Every non-local job announced in these runs got a SLURM id; sacct knows each id under the
    run's name with the rule in its comment; jobs asking for a GPU got one. Returns rule->jobs."""
    by_rule: dict[str, list[dict]] = {}
    for run in runs:
        uuid = run.run_uuid
        for job in run.jobs():
            if job["local"]:
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
    r = cluster.run("sacct", "-X", "-n", "-P", "-j", ",".join(ids),
                    "-o", "JobID,JobName%100,State,Comment%300,AllocTRES%200")  # fmt: skip
    acct = {}
    for line in r.stdout.splitlines():
        jid, name, state, comment, tres = line.split("|")
        acct[jid] = {"name": name, "state": state, "comment": comment, "tres": tres}
    for rule, jobs in by_rule.items():
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


def kill_and_resume(cluster, xdg, workdir: Path, args: list[str], kill_after: str,
                    keep_patterns: list[str], timeout: float = RUN_TIMEOUT_S):  # fmt: skip
    """Run; SIGKILL the main snakemake as soon as its log reports a finished job with an output
    matching `kill_after`; cancel the orphaned jobs; --unlock; resume. Asserts that files
    matching `keep_patterns` which had finished are not recomputed. Returns (run1, run2, kept)."""
    first = SnakemakeRun(cluster, xdg, workdir, args, tag="killed")
    deadline = time.monotonic() + timeout
    while True:
        done = [o for j in first.jobs() if j["finished"] for o in j["outputs"]
                if Path(o).match(kill_after)]  # fmt: skip
        if done:
            first.kill()
            break
        if first.proc.poll() is not None:
            pytest.fail(f"run ended (rc {first.proc.returncode}) before a job producing "
                        f"{kill_after} finished:\n{first.tail()}")  # fmt: skip
        if time.monotonic() > deadline:
            first.kill()
            first.cancel_jobs()
            pytest.fail(f"no {kill_after} finished within {timeout:.0f} s:\n{first.tail()}")
        time.sleep(0.3)
    print(f"killed the main snakemake after {first.elapsed:.0f} s ({done[0]} finished)")
    lock_dir = workdir / ".snakemake" / "locks"
    assert any(lock_dir.iterdir()), "a SIGKILLed snakemake should leave its lock behind"
    first.cancel_jobs()  # the documented clean-up: scancel --name <SLURM run ID>

    unlock = SnakemakeRun(cluster, xdg, workdir, [*args, "--unlock"], tag="unlock")
    assert unlock.wait(timeout=120) == 0, unlock.tail()
    assert not lock_dir.exists() or not any(lock_dir.iterdir())

    before = snapshot(workdir, keep_patterns)
    redo = planned_outputs(cluster, xdg, workdir, args)
    kept = {f: v for f, v in before.items() if f not in redo}
    assert kept, f"nothing finished before the kill survived: {sorted(before)} vs {sorted(redo)}"

    second = SnakemakeRun(cluster, xdg, workdir, [*args, "--rerun-incomplete"], tag="resumed")
    rc = second.wait(timeout=timeout)
    assert rc == 0, second.tail()
    after = snapshot(workdir, keep_patterns)
    for f, v in kept.items():
        assert after.get(f) == v, f"{f} was recomputed or changed by the resumed run"
    rerun_outputs = {o for j in second.jobs() for o in j["outputs"]}
    assert not rerun_outputs & set(kept), rerun_outputs & set(kept)
    return first, second, kept


# ------------------------------------------------------------------------------- scratch tests
@pytest.fixture()
def scratch(tmp_path):
    shutil.copy(SCRATCH, tmp_path / "Snakefile")
    shutil.copytree(PROFILE_SRC, tmp_path / PROFILE)
    return tmp_path


def test_failed_job_is_reported(cluster, xdg, scratch):
    run = SnakemakeRun(cluster, xdg, scratch, ["failing"])
    rc = run.wait(timeout=180)
    out = run.text
    assert rc != 0, out
    assert "Error in rule failing" in out, out
    assert "SLURM status is: 'FAILED'" in out, out
    assert "deliberate failure for the test" in out, "the rule log should be shown"
    (job,) = [j for j in run.jobs() if j["rule"] == "failing"]
    acct = cluster.sacct_jobs(name=run.run_uuid)
    assert [a["State"] for a in acct if a["JobID"] == job["slurm_id"]] == ["FAILED"], acct


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


def test_scratch_kill_and_resume(cluster, xdg, scratch):
    """The same kill/resume check on the scratch workflow: runs only while the real workflow is
    absent (the real one takes minutes; both together would break the 10-minute budget)."""
    if (
        REAL_SNAKEFILE.exists()
        and (REPO / TINY_CONFIG).exists()
        and not os.environ.get("NOBARRIERS_SLURM_SCRATCH_KILL")
    ):
        pytest.skip("covered by test_real_workflow_on_slurm_kill_resume "
                    "(NOBARRIERS_SLURM_SCRATCH_KILL=1 runs it anyway)")  # fmt: skip
    args = ["--config", "nap=5"]
    first, second, kept = kill_and_resume(
        cluster, xdg, scratch, args, kill_after="minima/*.txt",
        keep_patterns=["results/minima/*.txt", "results/paths/*.txt"], timeout=240,
    )  # fmt: skip
    assert (scratch / "results/table.csv").exists()
    by_rule = check_ran_on_slurm(cluster, [first, second])
    assert {"train_minimum", "autoneb_path", "table"} <= set(by_rule), sorted(by_rule)
    # the SLURM logs land where docs/cluster.md says
    assert list((scratch / ".snakemake" / "slurm_logs").glob("rule_*/**/*.log"))


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


def test_real_workflow_on_slurm_kill_resume(cluster, xdg, repo_copy):
    # A QoS through the plugin's own setting and GPUs as gres (clusters without --gpus): both must
    # reach sbatch as intended, and only one GPU request.
    args = ["--configfile", TINY_CONFIG, "--slurm-qos", cluster.qos, "--config", "gpu_request=gres"]
    t0 = time.monotonic()
    first, second, kept = kill_and_resume(
        cluster, xdg, repo_copy, args, kill_after="paths/*.h5",
        keep_patterns=[MINIMA_GLOB, PATHS_GLOB],
    )  # fmt: skip
    print(f"real workflow: killed after {first.elapsed:.0f} s, resumed run {second.elapsed:.0f} s,"
          f" total {time.monotonic() - t0:.0f} s; kept {len(kept)} finished files")  # fmt: skip
    assert any(Path(f).match("minima/*.safetensors") for f in kept), kept
    table = repo_copy / FINAL_TABLE
    assert table.is_file() and table.stat().st_size > 0, FINAL_TABLE
    figures = [p for p in (repo_copy / FIGURES_DIR).iterdir() if p.is_file()]
    assert figures and all(p.stat().st_size > 0 for p in figures), FIGURES_DIR
    by_rule = check_ran_on_slurm(cluster, [first, second])
    gpu_rules = {r for r, jobs in by_rule.items() if any(asks_for_gpu(j) for j in jobs)}
    # the heavy rules (training, AutoNEB raw and aligned, evaluation, slice) and no other
    assert gpu_rules == set(HEAVY_RULES) & set(by_rule), sorted(gpu_rules)
    assert {"train_minimum", "autoneb_path", "aligned_path"} <= gpu_rules, sorted(gpu_rules)
    print(f"rules run as SLURM jobs: {sorted(by_rule)}; with a GPU: {sorted(gpu_rules)}")
    for rule in sorted(gpu_rules):
        job = scontrol_job(cluster, by_rule[rule][0]["slurm_id"])
        assert job["QOS"] == cluster.qos, (rule, job)
        assert job.get("TresPerNode") in ("gres:gpu:1", "gres/gpu:1"), (rule, job)
        assert "TresPerJob" not in job, f"{rule}: --gpus beside --gres: {job}"


def test_gpu_job_that_sees_no_gpu_fails_at_once_with_the_reason_in_its_log(cluster, xdg, repo_copy):
    """device: auto, and SLURM grants the (fake) GPU: the job sees no CUDA device, so it must stop
    at once with what it saw in its log, not train for hours on the CPU."""
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
    (job,) = [j for j in run.jobs() if j["rule"] == "train_minimum"]
    assert "gpu:1" in scontrol_job(cluster, job["slurm_id"]).get("TresPerJob", ""), job
