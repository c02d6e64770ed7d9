"""Snakemake in the tests: one runner, one reader of what a run plans or did.

* :func:`snakemake` runs ``snakemake ARGS`` in the checkout (or in a working directory of its
  own with the checkout's Snakefile) and returns the finished process. Runs that execute no job
  (``-n``, ``--lint``, ``--unlock``) are forked from a process that has imported Snakemake and
  the workflow's settings once (:class:`_Forker`): the same entry point, arguments, working
  directory and environment as the console script, without the interpreter start and imports
  of every call (about a third of the time of a dry run). Where the environment would change
  what Python imports (``PYTHONPATH``, ``PYTHONHOME``), a plain subprocess runs instead.
* :func:`job_stats` reads the "Job stats" table of a dry run: jobs per rule.
* :func:`job_blocks` reads the job blocks of a run's or dry run's output (``rule x:`` /
  ``localrule x:`` with jobid, outputs, wildcards, resources).

``tests/conftest.py`` builds the finished tiny run (``tiny_run``) that several tests read with
these helpers.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
TINY = ROOT / "tests" / "configs" / "tiny.yaml"

#: arguments after which Snakemake runs no job: such calls are forked (see the module docstring)
_NO_JOBS = {"-n", "--dry-run", "--dryrun", "--lint", "--unlock"}
#: environment variables that decide what Python imports: a call that changes one is not forked
_IMPORT_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE")


def snakemake(*args, workdir=None, check=True, timeout=900, env=None, fork=None):
    """``snakemake ARGS`` in the checkout, or in ``workdir`` with the checkout's Snakefile.

    ``env`` adds to (or, with ``None`` values, removes from) the current environment.
    ``check``: a non-zero exit fails with the output's tail. Returns a CompletedProcess."""
    args = [str(a) for a in args]
    cwd = ROOT
    if workdir is not None:
        cwd = Path(workdir)
        args = ["--snakefile", str(ROOT / "Snakefile"), "-d", str(cwd), *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = str(value)
    if fork is None:
        fork = bool(_NO_JOBS & set(args)) and _FORKER.can_run(full_env)
    if fork:
        proc = _FORKER.run(args, cwd, full_env, timeout)
    else:
        proc = subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, env=full_env)  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-6000:]}"
        )
    return proc


def job_stats(output: str) -> dict[str, int]:
    """Jobs per rule of a (dry) run's "Job stats" table; ``{}`` when there is nothing to do."""
    if "Job stats:" not in output:
        if "Nothing to be done" in output:
            return {}
        raise AssertionError(f"neither job stats nor 'Nothing to be done':\n{output[-3000:]}")
    stats = output.split("Job stats:", 1)[1].split("\ntotal", 1)[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)}


def planned(*args, workdir=None, env=None) -> dict[str, int]:
    """Jobs per rule that a dry run with these arguments would run."""
    proc = snakemake("-n", *args, workdir=workdir, env=env)
    return job_stats(proc.stdout + proc.stderr)


_BLOCK = re.compile(r"^(local)?(?:rule|checkpoint) (\S+):$")


def job_blocks(text: str) -> list[dict]:
    """The jobs a Snakemake output announces, in order: ``rule``, ``local``, ``jobid``,
    ``outputs``, ``wildcards`` and ``resources`` (dicts of strings), ``finished``."""
    jobs: dict[int, dict] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _BLOCK.match(lines[i])
        i += 1
        if not m:
            continue
        job = {"rule": m.group(2), "local": bool(m.group(1)), "outputs": [], "wildcards": {},
               "resources": {}, "finished": False}  # fmt: skip
        while i < len(lines) and lines[i].startswith("    "):
            key, _, val = lines[i].strip().partition(": ")
            if key == "output":
                job["outputs"] = [v.strip() for v in val.split(",") if v.strip()]
            elif key == "jobid":
                job["jobid"] = int(val)
            elif key in ("resources", "wildcards"):
                for kv in val.split(", "):
                    k, _, v = kv.partition("=")
                    job[key][k] = v
            i += 1
        if "jobid" in job:
            jobs[job["jobid"]] = job
    for m in re.finditer(r"Finished jobid: (\d+) \(Rule: (\S+)\)", text):
        if int(m.group(1)) in jobs:
            jobs[int(m.group(1))]["finished"] = True
    return list(jobs.values())


# ------------------------------------------------------------------------------ the forker
_SERVER = r"""
import json, os, sys, traceback
import snakemake.cli
import nobarriers.settings.config  # what the Snakefile imports first
print(json.dumps({"ready": os.getpid()}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sys.stdin.close()
            for fd, name in ((1, "out"), (2, "err")):
                target = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(target, fd)
                os.close(target)
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            sys.argv = [request["argv0"], *request["args"]]
            try:
                code = snakemake.cli.main()
            except SystemExit as exc:
                code = exc.code
            code = 0 if code is None else code if isinstance(code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class _Forker:
    """A process that imported Snakemake once and forks one child per call (module docstring).
    Started on first use; a server that died is started again; one call at a time."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._buffer = b""
        self._env: dict[str, str] = {}
        self._log = Path(tempfile.gettempdir()) / f"snakemake-forker-{os.getpid()}.log"
        self._lock = threading.Lock()

    def can_run(self, env: dict) -> bool:
        if os.environ.get("NOBARRIERS_TEST_FORK") == "0" or not hasattr(os, "fork"):
            return False
        started = self._proc is not None and self._proc.poll() is None
        base = self._env if started else os.environ
        return all(env.get(k) == base.get(k) for k in _IMPORT_ENV)

    def _start(self) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._buffer = b""
        self._env = dict(os.environ)
        with open(self._log, "wb") as log:
            # -P: no working directory on sys.path, as for the console script
            self._proc = subprocess.Popen(
                [sys.executable, "-P", "-c", _SERVER], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, cwd=ROOT, env=self._env, bufsize=0,
            )  # fmt: skip
        self._read(120)  # {"ready": pid}
        return self._proc

    def _read(self, timeout: float) -> dict | None:
        """The server's next line (JSON), or None after `timeout` seconds without one."""
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                self._proc.wait()
                raise RuntimeError(f"the Snakemake forker ended: {self._log.read_text()[-3000:]}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def run(self, args: list[str], cwd: Path, env: dict, timeout: float):
        with self._lock, tempfile.TemporaryDirectory(prefix="snakemake-call-") as tmp:
            out, err = Path(tmp, "out"), Path(tmp, "err")
            request = {"args": args, "cwd": str(cwd), "env": env, "argv0": SNAKEMAKE,
                       "out": str(out), "err": str(err)}  # fmt: skip
            proc = self._start()
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            child = self._read(60)["pid"]
            reply = self._read(timeout)
            if reply is None:
                os.kill(child, signal.SIGKILL)
                self._read(60)
                raise subprocess.TimeoutExpired([SNAKEMAKE, *args], timeout,
                                                out.read_text(errors="replace"))  # fmt: skip
            return subprocess.CompletedProcess(
                [SNAKEMAKE, *args], reply["rc"], out.read_text(errors="replace"),
                err.read_text(errors="replace"),
            )  # fmt: skip


_FORKER = _Forker()
