"""A one-node Slurm cluster on this machine for the tests (Debian's slurm-wlm and munge packages).

Every file (slurm.conf, cgroup.conf, munge key and socket, state and spool folders, logs) lives in one temp
folder; slurmctld and slurmd listen on free ports of 127.0.0.1, so nothing leaves the machine and a cluster
already running here (a system one, or another session's) is neither used nor disturbed. The daemons run in
the foreground as children of the test process and are stopped by their pids. Every wait is bounded and says
what it waited for; a failure carries the tail of each daemon's log.

Clients find the cluster through the SLURM_CONF variable in `Cluster.env`.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
BINARIES = ("munged", "munge", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scontrol", "sinfo", "scancel")
VERSIONS_OF = ("slurm-wlm", "slurmctld", "slurmd", "slurm-client", "slurm-wlm-basic-plugins", "munge", "libmunge2")


class Unavailable(RuntimeError):
    """Slurm cannot be installed or started here (the tests skip with this reason)."""


def _missing() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def _run(cmd: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise Unavailable(f"`{' '.join(cmd)}` did not finish within {timeout:.0f} s") from e
    except OSError as e:
        raise Unavailable(f"`{' '.join(cmd)}` could not start: {e}") from e


def ensure_installed(timeout_s: float = 240) -> float:
    """Install Slurm and munge with apt-get when a binary is missing; returns the seconds it took (0 when
    present). Raises Unavailable where that is impossible (not root, no apt-get, the install failed)."""
    missing = _missing()
    if not missing:
        return 0.0
    if os.geteuid() != 0:
        raise Unavailable(f"Slurm is not installed (missing {', '.join(missing)}) and installing needs root")
    if shutil.which("apt-get") is None:
        raise Unavailable(f"Slurm is not installed (missing {', '.join(missing)}) and there is no apt-get")
    t0 = time.perf_counter()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
        left = timeout_s - (time.perf_counter() - t0)
        proc = _run(cmd, max(left, 1), env)
        if proc.returncode != 0:
            raise Unavailable(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): "
                              f"{(proc.stderr or proc.stdout).strip()[-1500:]}")
    if _missing():
        raise Unavailable(f"installed {' '.join(PACKAGES)} but still missing {', '.join(_missing())}")
    return time.perf_counter() - t0


def package_versions() -> dict[str, str]:
    """{Debian package: installed version} of Slurm and munge."""
    proc = _run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", *VERSIONS_OF], 30)
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """munged + slurmctld + slurmd, started by `start()`, stopped (by pid) by `stop()`."""

    def __init__(self) -> None:
        # not pytest's tmp_path: munged requires every folder up to its socket to be searchable by all (0755)
        self.root = Path(tempfile.mkdtemp(prefix="mintkit-slurm-"))
        self.root.chmod(0o755)
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    # ------------------------------------------------------------------ files
    def _write_config(self) -> None:
        r = self.root
        for d in ("state", "spool", "log"):
            (r / d).mkdir(mode=0o755)
        key = r / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        cpus = os.cpu_count() or 1
        mem_mb = max(512, int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8))
        self.conf.write_text(f"""\
# one-node test cluster on 127.0.0.1 (tests/slurm_cluster.py); nothing here is meant for production
ClusterName=mintkittest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r / 'munge.sock'}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
# no cgroups: processes tracked by parent pid, no CPU binding, no accounting daemon
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
{self._bind_line()}
SlurmdTimeout=60
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")
        # read only by cgroup plugins, which this cluster does not load; kept beside slurm.conf so that a
        # daemon looking for it finds "constrain nothing" rather than a system file
        (r / "cgroup.conf").write_text("ConstrainCores=no\nConstrainRAMSpace=no\nConstrainDevices=no\n")

    def _bind_line(self) -> str:
        """Listen on 127.0.0.1 only where the host name resolves there (the daemons bind to what it resolves
        to); elsewhere they listen on every interface, and still only talk over 127.0.0.1."""
        try:
            loopback = socket.gethostbyname(self.host).startswith("127.")
        except OSError:
            loopback = False
        return ("CommunicationParameters=NoInAddrAny,NoCtldInAddrAny" if loopback else
                f"# {self.host} does not resolve to 127.x: daemons listen on every interface")

    # ------------------------------------------------------------------ daemons
    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        out = self.root / "log" / f"{name}.out"
        with open(out, "w") as f:
            # own session: a Ctrl-C of the test run reaches them through stop() (the fixture's finaliser) only
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=self.env, cwd=self.root,
                                    start_new_session=True)
        self.procs.append((name, proc, out))
        return proc

    def _wait(self, what: str, ok, timeout: float, proc: subprocess.Popen) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if proc.poll() is not None:
                raise Unavailable(f"{what}: the daemon exited with code {proc.returncode}\n{self.logs()}")
            if ok():
                return
            time.sleep(0.3)
        raise Unavailable(f"{what}: not ready after {timeout:.0f} s\n{self.logs()}")

    def _ok(self, cmd: list[str], want: str) -> bool:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10, env=self.env)
        except (subprocess.TimeoutExpired, OSError):
            return False
        return p.returncode == 0 and want in p.stdout

    def start(self, timeout_s: float = 30) -> "Cluster":
        if os.geteuid() != 0:
            raise Unavailable("slurmd must run as root to start jobs")
        self._write_config()
        r = self.root
        munged = self._spawn("munged", ["munged", "--foreground", f"--key-file={r / 'munge.key'}",
                                        f"--socket={r / 'munge.sock'}", f"--pid-file={r / 'munged.pid'}",
                                        f"--log-file={r / 'log' / 'munged.log'}", f"--seed-file={r / 'munged.seed'}"])
        self._wait("munged (munge -n | unmunge on the private socket)",
                   lambda: (r / "munge.sock").exists() and _munge_roundtrip(r / "munge.sock"), timeout_s, munged)
        ctld = self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        self._wait("slurmctld (scontrol ping says UP)", lambda: self._ok(["scontrol", "ping"], "is UP"),
                   timeout_s, ctld)
        slurmd = self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
        self._wait(f"slurmd (sinfo shows node {self.host} idle)",
                   lambda: self._ok(["sinfo", "--noheader", "--format=%T", f"--nodes={self.host}"], "idle"),
                   timeout_s, slurmd)
        return self

    def stop(self, timeout_s: float = 15) -> None:
        """Cancel this cluster's jobs (so no job step outlives slurmd), then SIGTERM each daemon this object
        started (newest first), SIGKILL one that outlives `timeout_s`."""
        if any(name == "slurmctld" and proc.poll() is None for name, proc, _ in self.procs):
            try:
                subprocess.run(["scancel", "--partition=debug"], capture_output=True, timeout=10, env=self.env)
                t0 = time.monotonic()
                while self.squeue().count("\n") > 1 and time.monotonic() - t0 < timeout_s:
                    time.sleep(0.3)
            except (subprocess.TimeoutExpired, OSError):
                pass  # stopping the daemons below is what matters
        for name, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout_s)
        self.procs = []

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self, lines: int = 25) -> str:
        """The last `lines` lines of every daemon log, for failure messages."""
        out = []
        for f in sorted((self.root / "log").glob("*")):
            text = f.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {f}\n" + "\n".join(text))
        return "\n".join(out)

    def squeue(self) -> str:
        return subprocess.run(["squeue", "--array"], capture_output=True, text=True, timeout=30, env=self.env).stdout


def _munge_roundtrip(sock: Path) -> bool:
    try:
        cred = subprocess.run(["munge", "-n", "-S", str(sock)], capture_output=True, timeout=10)
        if cred.returncode != 0:
            return False
        back = subprocess.run(["unmunge", "-S", str(sock)], input=cred.stdout, capture_output=True, timeout=10)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return back.returncode == 0
