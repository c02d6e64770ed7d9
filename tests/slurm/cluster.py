"""A throw-away single-node SLURM cluster (with accounting) for tests and developers.

Used by ``tests/test_slurm.py`` and by ``.ci/slurm-up.sh`` / ``.ci/slurm-down.sh``.
No pytest dependency::

    from cluster import SlurmCluster, SlurmUnavailable
    with SlurmCluster() as cluster:           # installs packages if needed, starts daemons
        subprocess.run(["sbatch", ...], env=cluster.env())

What it does (facts in ``../shared/notes/slurm-single-node.md``):

* installs the Debian packages (``slurm-wlm slurmctld slurmd slurm-client munge slurmdbd
  mariadb-server``) when they are missing, we are root and ``apt-get`` exists -- otherwise it
  raises :class:`SlurmUnavailable` whose ``reason`` says why (the test turns that into a skip);
* writes *all* configuration and state into a folder of its own (default
  ``$TMPDIR/nobarriers-slurm``, or ``$NOBARRIERS_SLURM_DIR``): its own munge key and socket,
  a MariaDB data directory on a private port, ``slurm.conf`` built from ``slurmd -C`` with one
  fake GPU (``gres.conf``: ``File=/dev/null``), ``slurmdbd.conf`` (mode 600, owned by slurm),
  no cgroups (``proctrack/linuxproc``, ``task/none``). Nothing under /etc is touched, so clients
  need ``SLURM_CONF=<folder>/etc/slurm.conf`` (see :meth:`SlurmCluster.env`);
* starts munged, mariadbd, slurmdbd, slurmctld, slurmd -- each in the foreground in a session of
  its own (``setsid``), PID and start time recorded in ``<folder>/daemons.json`` -- registers
  cluster/account/user with ``sacctmgr`` and waits until ``sinfo`` shows the node ``idle``;
* stops them by the recorded PIDs in reverse order (after cancelling the queue), also from
  ``atexit`` and on failure while starting. A recorded PID is only signalled while its
  ``/proc/<pid>/stat`` start time still matches, so a reused PID is never hit.

Accounting (slurmdbd + MariaDB) rather than ``slurm-status-command: squeue``: the plugin uses
``sacct`` whenever the binary exists, failures then come with their reason, the CI profile can be
identical to a user's profile and ``sacct`` can prove that every rule ran as a SLURM job.
Costs a few seconds more at start-up (MariaDB initialisation).

Idempotent: ``start()`` on an already running, healthy cluster of the same folder attaches to it
(and then ``stop()`` leaves it running, since this object did not start it); leftover daemons
recorded by an earlier, crashed run are stopped, leftover state is wiped.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = [
    "slurm-wlm",
    "slurmctld",
    "slurmd",
    "slurm-client",
    "munge",
    "slurmdbd",
    "mariadb-server",
]
# binary -> package that provides it
BINARIES = {
    "munged": "munge",
    "munge": "munge",
    "mungekey": "munge",
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "slurmdbd": "slurmdbd",
    "sbatch": "slurm-client",
    "sacct": "slurm-client",
    "sacctmgr": "slurm-client",
    "sinfo": "slurm-client",
    "squeue": "slurm-client",
    "scancel": "slurm-client",
    "scontrol": "slurm-client",
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "mariadb": "mariadb-client",
    "setpriv": "util-linux",
}
SBIN_DIRS = ["/usr/sbin", "/sbin", "/usr/local/sbin"]
DAEMON_ORDER = ["munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd"]
# The in-job `srun` of snakemake-executor-plugin-slurm-jobstep 0.6 runs with every SLURM_*
# variable removed except the job identity -- SLURM_CONF included -- so it only finds the
# configuration at the default path. We therefore link /etc/slurm/slurm.conf to ours while the
# cluster runs (only if no such file exists; removed again on stop).
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
FAKE_GPU_FILES = ["/dev/null", "/dev/zero"]  # any character device; one per fake GPU


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be provided on this machine; ``reason`` says why (used as a skip reason)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class SlurmError(RuntimeError):
    """A daemon did not come up (the message includes the tail of its log)."""


def _log_default(msg: str) -> None:
    print(f"[slurm-cluster] {msg}", file=sys.stderr, flush=True)


def _which(name: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN_DIRS)
    return shutil.which(name, path=path)


def missing_binaries() -> dict[str, str]:
    return {b: p for b, p in BINARIES.items() if _which(b) is None}


def ensure_installed(allow_install: bool = True, log=_log_default) -> None:
    """Make sure every needed binary exists; install the Debian packages if allowed.

    Raises SlurmUnavailable with a human-readable reason when that is impossible.
    """
    if not sys.platform.startswith("linux"):
        raise SlurmUnavailable(f"a live SLURM needs Linux, this is {sys.platform}")
    if os.geteuid() != 0:
        raise SlurmUnavailable(
            "starting SLURM daemons (munged, slurmdbd, slurmctld, slurmd) needs root; "
            f"running as uid {os.geteuid()}"
        )
    missing = missing_binaries()
    if not missing:
        return
    names = ", ".join(sorted(missing))
    if not allow_install:
        raise SlurmUnavailable(
            f"SLURM binaries missing ({names}) and installing is disabled "
            "(NOBARRIERS_SLURM_INSTALL=0)"
        )
    apt = shutil.which("apt-get")
    if apt is None:
        raise SlurmUnavailable(
            f"SLURM binaries missing ({names}) and no apt-get to install {' '.join(PACKAGES)} with"
        )
    log(f"installing {' '.join(PACKAGES)} with apt-get (missing: {names})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # keep package scripts from starting system-wide daemons (munge, mariadb, slurm*)
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        for cmd in (
            [apt, "update", "-q"],
            [apt, "install", "-y", "-q", *PACKAGES],
        ):
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if r.returncode != 0:
                tail = (r.stdout + r.stderr).strip().splitlines()[-5:]
                raise SlurmUnavailable(
                    f"'{' '.join(cmd)}' failed (exit {r.returncode}): " + " | ".join(tail)
                )
    finally:
        if own_policy:
            with contextlib.suppress(OSError):
                policy.unlink()
    still = missing_binaries()
    if still:
        raise SlurmUnavailable(
            f"after installing {' '.join(PACKAGES)} still missing: {', '.join(sorted(still))}"
        )


def _proc_starttime(pid: int) -> int | None:
    """Start time of a process (clock ticks since boot) or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may contain spaces/parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] == "Z":  # zombie: as good as gone
        return None
    return int(fields[19])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_root() -> Path:
    env = os.environ.get("NOBARRIERS_SLURM_DIR")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / "nobarriers-slurm"


class SlurmCluster:
    """A single-node SLURM with accounting, living in ``root`` (see the module docstring)."""

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        cluster_name: str = "nobarriers",
        account: str = "nobarriers",
        qos: str = "nobarriers-ci",
        allow_install: bool | None = None,
        reuse: bool = True,
        gpus: int = 2,
        min_memory_mb: int = 65536,
        start_timeout: float = 120.0,
        log=_log_default,
    ):
        self.root = Path(root) if root is not None else default_root()
        self.cluster_name = cluster_name
        self.account = account
        self.qos = qos
        if allow_install is None:
            allow_install = os.environ.get("NOBARRIERS_SLURM_INSTALL", "1") != "0"
        self.allow_install = allow_install
        self.reuse = reuse
        if not 1 <= gpus <= len(FAKE_GPU_FILES):
            raise ValueError(f"gpus must be 1..{len(FAKE_GPU_FILES)}")
        self.gpus = gpus
        self.min_memory_mb = min_memory_mb
        self.start_timeout = start_timeout
        self.log = log
        self.owned = False  # True when this object started the daemons (and must stop them)
        self.started_in_s: float | None = None
        self._atexit = False

    # ---------------------------------------------------------------- paths
    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def slurm_conf(self) -> Path:
        return self.etc / "slurm.conf"

    @property
    def state_file(self) -> Path:
        return self.root / "daemons.json"

    @property
    def logdir(self) -> Path:
        return self.root / "log"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket.2"

    def env(self, base: dict | None = None) -> dict:
        """Environment for SLURM clients (sbatch, sacct, snakemake ...) talking to this cluster."""
        env = dict(os.environ if base is None else base)
        for key in list(env):
            if key.startswith("SLURM_") and key != "SLURM_CONF":
                del env[key]  # never look like we are inside a job
        env["SLURM_CONF"] = str(self.slurm_conf)
        path = env.get("PATH", "")
        for d in SBIN_DIRS:
            if d not in path.split(os.pathsep):
                path += os.pathsep + d
        env["PATH"] = path
        return env

    def run(self, *cmd: str, check: bool = True, timeout: float = 60, **kw):
        """Run a SLURM client command against this cluster; returns CompletedProcess (text)."""
        r = subprocess.run(
            list(cmd), env=self.env(), capture_output=True, text=True, timeout=timeout, **kw
        )
        if check and r.returncode != 0:
            raise SlurmError(
                f"{' '.join(cmd)} failed (exit {r.returncode}): {r.stderr.strip() or r.stdout}"
            )
        return r

    # ---------------------------------------------------------------- state file
    def _read_state(self) -> list[dict]:
        try:
            return json.loads(self.state_file.read_text())["daemons"]
        except (OSError, ValueError, KeyError):
            return []

    def _read_owner(self) -> dict:
        try:
            return json.loads(self.state_file.read_text()).get("owner") or {}
        except (OSError, ValueError, AttributeError):
            return {}

    def _write_state(self, daemons: list[dict]) -> None:
        owner = getattr(self, "_owner", None) or self._read_owner()
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"owner": owner, "daemons": daemons}, indent=1))
        tmp.replace(self.state_file)

    def _owner_alive(self, owner: dict) -> bool:
        """The process that started the recorded daemons is still running (or was the CLI)."""
        if owner.get("persistent"):
            return True
        pid, start = owner.get("pid"), owner.get("starttime")
        return pid is not None and _proc_starttime(pid) == start

    def _alive(self, d: dict) -> bool:
        return _proc_starttime(d["pid"]) == d["starttime"]

    def recorded_daemons(self) -> list[dict]:
        """Daemons recorded in the state file, each with an ``alive`` flag."""
        return [dict(d, alive=self._alive(d)) for d in self._read_state()]

    # ---------------------------------------------------------------- health
    def is_up(self) -> bool:
        """All five recorded daemons alive and the node schedulable."""
        daemons = self._read_state()
        if sorted(d["name"] for d in daemons) != sorted(DAEMON_ORDER):
            return False
        if not all(self._alive(d) for d in daemons):
            return False
        if not self.slurm_conf.exists():
            return False
        try:
            r = self.run("sinfo", "-h", "-o", "%T", check=False, timeout=10)
        except subprocess.TimeoutExpired:
            return False
        states = r.stdout.split()
        return (
            r.returncode == 0
            and bool(states)
            and all(s.rstrip("*") in ("idle", "mixed", "allocated", "completing") for s in states)
        )

    # ---------------------------------------------------------------- start
    def start(self, keep_running: bool = False) -> SlurmCluster:
        """Start (or attach to) the cluster. ``keep_running``: no atexit stop (CLI ``up``)."""
        t0 = time.monotonic()
        ensure_installed(self.allow_install, log=self.log)
        if self.reuse and self.is_up():
            owner = self._read_owner()
            if self._owner_alive(owner):
                # started by .ci/slurm-up.sh or by another live process: use it, leave it running
                self.log(f"attaching to the running cluster in {self.root}")
                self._register_accounts()  # idempotent: what this version of the tests needs
                self.owned = False
                self.started_in_s = time.monotonic() - t0
                return self
            self.log(f"daemons left by a process that is gone (pid {owner.get('pid')}): restarting")
        self.stop_recorded()  # leftovers of an earlier run, by recorded PID only
        self._owner = {
            "pid": os.getpid(),
            "starttime": _proc_starttime(os.getpid()),
            "persistent": keep_running,
        }
        self._check_system_conf()
        self.owned = True
        if not keep_running and not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        try:
            self._prepare()
            self._link_system_conf()
            self._start_munge()
            self._start_mariadb()
            self._start_slurmdbd()
            self._register_accounts()
            self._start_slurmctld()
            self._start_slurmd()
            self._wait_idle()
        except BaseException:
            self.log("start failed; stopping what was started")
            self.stop()
            raise
        self.started_in_s = time.monotonic() - t0
        self.log(f"cluster up in {self.started_in_s:.1f} s (SLURM_CONF={self.slurm_conf})")
        return self

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _prepare(self) -> None:
        root = self.root
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        for sub in ("etc", "state", "spool", "log", "run", "munge", "db", "mysqld"):
            p = root / sub
            if p.exists():
                shutil.rmtree(p)
            p.mkdir(mode=0o755)
        slurm = pwd.getpwnam("slurm")
        munge = pwd.getpwnam("munge")
        mysql = pwd.getpwnam("mysql")
        for sub in ("state", "log", "run"):
            os.chown(root / sub, slurm.pw_uid, slurm.pw_gid)
        os.chown(root / "munge", munge.pw_uid, munge.pw_gid)
        (root / "munge").chmod(0o755)
        os.chown(root / "db", mysql.pw_uid, mysql.pw_gid)
        self._write_state([])

        self.host = socket.gethostname().split(".")[0]
        self.ports = {k: _free_port() for k in ("slurmctld", "slurmd", "slurmdbd", "mariadb")}
        self.db_password = secrets.token_hex(12)
        self.gpu_files = FAKE_GPU_FILES[: self.gpus]
        node = self._node_line()
        auth_info = f"AuthInfo=socket={self.munge_socket}"
        st = self.root
        (self.etc / "slurm.conf").write_text(
            f"""# written by tests/slurm/cluster.py -- single-node test cluster
ClusterName={self.cluster_name}
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={self.ports["slurmctld"]}
SlurmdPort={self.ports["slurmd"]}
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
{auth_info}
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=3600
DefMemPerCPU=500
KillWait=5
InactiveLimit=0
GresTypes=gpu
StateSaveLocation={st}/state
SlurmdSpoolDir={st}/spool
SlurmctldPidFile={st}/run/slurmctld.pid
SlurmdPidFile={st}/run/slurmd.pid
SlurmctldLogFile={st}/log/slurmctld.log
SlurmdLogFile={st}/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={self.ports["slurmdbd"]}
AccountingStoragePass={self.munge_socket}
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
AccountingStoreFlags=job_comment
{node}
PartitionName=debug Nodes=ALL Default=YES State=UP MaxTime=INFINITE
"""
        )
        # fake GPUs: without File= the node goes INVAL; no cgroups, so the files are never used
        (self.etc / "gres.conf").write_text(
            "".join(f"NodeName={self.host} Name=gpu File={f}\n" for f in self.gpu_files)
        )
        dbd = self.etc / "slurmdbd.conf"
        dbd.write_text(
            f"""AuthType=auth/munge
{auth_info}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={self.ports["slurmdbd"]}
SlurmUser=slurm
LogFile={st}/log/slurmdbd.log
PidFile={st}/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.ports["mariadb"]}
StorageUser=slurm
StoragePass={self.db_password}
StorageLoc=slurm_acct_db
"""
        )
        dbd.chmod(0o600)
        os.chown(dbd, slurm.pw_uid, slurm.pw_gid)

    def _ours(self, path: Path) -> bool:
        return path.is_symlink() and os.readlink(path) == str(self.slurm_conf)

    def _check_system_conf(self) -> None:
        if (SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink()) and not self._ours(SYSTEM_CONF):
            raise SlurmUnavailable(
                f"{SYSTEM_CONF} already exists (a real SLURM configuration?); the test cluster "
                "needs that path for the in-job srun and will not replace it"
            )

    def _link_system_conf(self) -> None:
        self._check_system_conf()
        if not self._ours(SYSTEM_CONF):
            SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
            SYSTEM_CONF.symlink_to(self.slurm_conf)

    def _unlink_system_conf(self) -> None:
        if self._ours(SYSTEM_CONF):
            SYSTEM_CONF.unlink()

    def _node_line(self) -> str:
        r = subprocess.run(
            [_which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, check=True
        )
        line = r.stdout.splitlines()[0]
        fields = dict(kv.split("=", 1) for kv in line.split())
        keep = ["CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore"]
        # At least `min_memory_mb`, so that jobs asking for 16 GB run side by side on a small CI
        # machine (SlurmdParameters=config_overrides accepts the larger value; no cgroups, so
        # memory is bookkeeping only). Otherwise ~98% of what slurmd -C reports.
        mem = max(int(int(fields["RealMemory"]) * 0.98), self.min_memory_mb)
        parts = [f"NodeName={self.host}", "NodeAddr=127.0.0.1"]
        parts += [f"{k}={fields[k]}" for k in keep if k in fields]
        parts += [f"RealMemory={mem}", f"Gres=gpu:{len(self.gpu_files)}", "State=UNKNOWN"]
        return " ".join(parts)

    # ---------------------------------------------------------------- daemons
    def _spawn(self, name: str, argv: list[str]) -> dict:
        out = open(self.logdir / f"{name}.stdout", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env(),
            start_new_session=True,  # setsid: own session, PID kept, survives our exit
            cwd=self.root,
        )
        out.close()
        starttime = None
        for _ in range(100):
            starttime = _proc_starttime(proc.pid)
            if starttime is not None:
                break
            time.sleep(0.01)
        rec = {"name": name, "pid": proc.pid, "starttime": starttime, "argv": argv}
        self._write_state(self._read_state() + [rec])
        self._popen = getattr(self, "_popen", {})
        self._popen[name] = proc
        return rec

    def _wait(self, name: str, what: str, probe, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        rec = next(d for d in self._read_state() if d["name"] == name)
        while time.monotonic() < deadline:
            if probe():
                return
            proc = getattr(self, "_popen", {}).get(name)
            if proc is not None and proc.poll() is not None or not self._alive(rec):
                raise SlurmError(f"{name} exited while waiting for {what}\n{self._tail(name)}")
            time.sleep(0.2)
        raise SlurmError(
            f"{name}: timed out after {timeout or self.start_timeout:.0f} s "
            f"waiting for {what}\n{self._tail(name)}"
        )

    def _tail(self, name: str, n: int = 15) -> str:
        lines = []
        for f in sorted(self.logdir.glob(f"{name}*")):
            with contextlib.suppress(OSError):
                txt = f.read_text(errors="replace").strip().splitlines()[-n:]
                lines.append(f"--- {f}:\n" + "\n".join(txt))
        return "\n".join(lines)

    def _probe(self, *cmd: str, **kw) -> bool:
        try:
            r = subprocess.run(list(cmd), env=self.env(), capture_output=True, timeout=10, **kw)
        except subprocess.TimeoutExpired:
            return False
        return r.returncode == 0

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        subprocess.run(
            [_which("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True
        )
        munge = pwd.getpwnam("munge")
        os.chown(key, munge.pw_uid, munge.pw_gid)
        key.chmod(0o600)
        m = self.root / "munge"
        self._spawn("munged", [
            _which("setpriv"), "--reuid=munge", "--regid=munge", "--init-groups",
            _which("munged"), "--foreground", "--force",
            f"--socket={self.munge_socket}", f"--key-file={key}",
            f"--pid-file={m}/munged.pid", f"--seed-file={m}/munged.seed",
            f"--log-file={m}/munged.log",
        ])  # fmt: skip

        def probe() -> bool:
            if not self.munge_socket.exists():
                return False
            cred = subprocess.run(
                [_which("munge"), "-n", "-S", str(self.munge_socket)], capture_output=True
            )
            if cred.returncode != 0:
                return False
            return (
                subprocess.run(
                    [_which("unmunge") or "unmunge", "-S", str(self.munge_socket)],
                    input=cred.stdout,
                    capture_output=True,
                ).returncode
                == 0
            )

        self._wait("munged", "a working munge socket", probe, timeout=30)

    def _mariadb_sock(self) -> Path:
        return self.root / "run" / "mysqld.sock"

    def _start_mariadb(self) -> None:
        db = self.root / "db"
        r = subprocess.run(
            [_which("mariadb-install-db"), "--no-defaults", f"--datadir={db}", "--user=mysql",
             "--auth-root-authentication-method=socket", "--skip-test-db",
             "--skip-name-resolve"],
            capture_output=True, text=True,
        )  # fmt: skip
        if r.returncode != 0:
            raise SlurmError(f"mariadb-install-db failed: {r.stdout[-2000:]}{r.stderr[-2000:]}")
        sockdir = self.root / "mysqld"
        mysql = pwd.getpwnam("mysql")
        os.chown(sockdir, mysql.pw_uid, mysql.pw_gid)
        self._sock = sockdir / "mysqld.sock"
        self._spawn("mariadbd", [
            _which("mariadbd"), "--no-defaults", f"--datadir={db}", "--user=mysql",
            f"--socket={self._sock}", f"--port={self.ports['mariadb']}",
            "--bind-address=127.0.0.1", "--skip-name-resolve", f"--pid-file={sockdir}/mysqld.pid",
            f"--log-error={self.logdir}/mariadbd.log", "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M", "--innodb-lock-wait-timeout=900",
            "--innodb-flush-log-at-trx-commit=2",
            "--skip-log-bin", "--performance-schema=OFF",
        ])  # fmt: skip
        client = [_which("mariadb"), "--no-defaults", "-S", str(self._sock), "-u", "root"]
        self._wait("mariadbd", "MariaDB to accept connections",
                   lambda: self._probe(*client, "-e", "SELECT 1"), timeout=60)  # fmt: skip
        pw = self.db_password
        sql = (
            f"CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '{pw}';"
            f"CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '{pw}';"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
            "FLUSH PRIVILEGES;"
        )
        r = subprocess.run([*client, "-e", sql], capture_output=True, text=True)
        if r.returncode != 0:
            raise SlurmError(f"creating the MariaDB user for slurmdbd failed: {r.stderr}")

    def _start_slurmdbd(self) -> None:
        self._spawn("slurmdbd", [_which("slurmdbd"), "-D"])

        def probe() -> bool:
            return self._probe("sacctmgr", "-n", "list", "cluster")

        self._wait("slurmdbd", "slurmdbd to answer sacctmgr", probe, timeout=60)

    def _register_accounts(self) -> None:
        user = pwd.getpwuid(os.geteuid()).pw_name
        for cmd in (
            ["sacctmgr", "-i", "add", "cluster", self.cluster_name],
            ["sacctmgr", "-i", "add", "account", self.account,
             "Description=nobarriers tests", "Organization=nobarriers"],
            ["sacctmgr", "-i", "add", "user", user, f"Account={self.account}",
             f"DefaultAccount={self.account}"],
            ["sacctmgr", "-i", "add", "qos", self.qos],
            ["sacctmgr", "-i", "modify", "user", user, "set", f"QOS+={self.qos}"],
        ):  # fmt: skip
            r = self.run(*cmd, check=False)
            out = r.stdout + r.stderr
            known = ("Nothing new added", "already", "Nothing modified")
            if r.returncode != 0 and not any(k in out for k in known):
                raise SlurmError(f"{' '.join(cmd)} failed: {out.strip()}")

    def _start_slurmctld(self) -> None:
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i"])
        self._wait("slurmctld", "slurmctld to answer", lambda: self._probe("scontrol", "ping"),
                   timeout=60)  # fmt: skip

    def _start_slurmd(self) -> None:
        self._spawn("slurmd", [_which("slurmd"), "-D", "-N", self.host])

    def _wait_idle(self) -> None:
        def probe() -> bool:
            r = self.run("sinfo", "-h", "-o", "%T", check=False, timeout=10)
            return r.returncode == 0 and r.stdout.split() == ["idle"]

        try:
            self._wait("slurmd", "the node to be idle in sinfo", probe, timeout=60)
        except SlurmError as e:
            r = self.run("sinfo", "-N", "-l", check=False)
            raise SlurmError(
                f"{e}\nsinfo:\n{r.stdout}{r.stderr}\n{self._tail('slurmctld')}"
            ) from None

    # ---------------------------------------------------------------- stop
    def cancel_all_jobs(self, timeout: float = 20) -> None:
        """scancel everything in the queue and wait (briefly) until it is empty."""
        if not self.slurm_conf.exists():
            return
        try:
            r = self.run("squeue", "-h", "-o", "%i", check=False, timeout=10)
        except subprocess.TimeoutExpired:
            return
        ids = r.stdout.split()
        if r.returncode != 0 or not ids:
            return
        self.log(f"cancelling {len(ids)} job(s) still in the queue")
        with contextlib.suppress(Exception):
            self.run("scancel", *ids, check=False, timeout=10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.run("squeue", "-h", "-o", "%i", check=False, timeout=10)
            if r.returncode != 0 or not r.stdout.split():
                return
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop the daemons this object started (no-op when it only attached)."""
        if not self.owned:
            return
        self.stop_recorded()
        self.owned = False

    def stop_recorded(self, timeout: float = 30) -> None:
        """Stop every daemon recorded in the state file, newest first, by PID."""
        daemons = self._read_state()
        if not daemons:
            self._unlink_system_conf()
            return
        if any(d["name"] == "slurmctld" and self._alive(d) for d in daemons):
            with contextlib.suppress(Exception):
                self.cancel_all_jobs()
        for d in reversed(daemons):
            if not self._alive(d):
                continue
            self.log(f"stopping {d['name']} (pid {d['pid']})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(d["pid"], signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._alive(d):
                self._reap(d["pid"])
                time.sleep(0.1)
            if self._alive(d):
                self.log(f"{d['name']} (pid {d['pid']}) ignored SIGTERM; SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(d["pid"], signal.SIGKILL)
                for _ in range(50):
                    self._reap(d["pid"])
                    if not self._alive(d):
                        break
                    time.sleep(0.1)
            self._write_state([x for x in self._read_state() if x["pid"] != d["pid"]])
        self._write_state([])
        self._unlink_system_conf()

    def _reap(self, pid: int) -> None:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)

    # ---------------------------------------------------------------- helpers for tests
    def sacct_jobs(self, name: str | None = None) -> list[dict]:
        """Jobs known to accounting: dicts with JobID, JobName, State, ExitCode, Comment."""
        fields = ["JobID", "JobName%100", "State", "ExitCode", "Comment%200"]
        cmd = ["sacct", "-X", "-n", "-P", "-a", "-S", "2000-01-01",
               "-o", ",".join(fields)]  # fmt: skip
        if name:
            cmd += ["--name", name]
        r = self.run(*cmd)
        keys = [f.split("%")[0] for f in fields]
        return [
            dict(zip(keys, line.split("|"), strict=True)) for line in r.stdout.splitlines() if line
        ]


def _main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(description="single-node SLURM for nobarriers tests")
    p.add_argument("action", choices=["up", "down", "status", "env"])
    p.add_argument("--dir", default=None, help="state folder (default: %(default)s)")
    a = p.parse_args(argv)
    c = SlurmCluster(a.dir)
    if a.action == "up":
        try:
            c.start(keep_running=True)
        except SlurmUnavailable as e:
            print(f"SLURM unavailable: {e.reason}", file=sys.stderr)
            return 2
        print(f"export SLURM_CONF={c.slurm_conf}")
        return 0
    if a.action == "down":
        c.stop_recorded()
        return 0
    if a.action == "env":
        print(f"export SLURM_CONF={c.slurm_conf}")
        return 0
    up = c.is_up()
    for d in c.recorded_daemons():
        print(f"{d['name']:10s} pid {d['pid']:>7} {'alive' if d['alive'] else 'gone'}")
    print("cluster is up" if up else "cluster is down")
    return 0 if up else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
