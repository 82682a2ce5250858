"""A single-node SLURM cluster on 127.0.0.1, started from Debian's slurm-wlm and munge.

Three daemons run in the foreground as children of the test process: munged
(with a key generated here, on its own socket), slurmctld and slurmd (with
``proctrack/linuxproc`` and ``task/none``, so no cgroups are needed). Ports,
state, spool, logs and the key live in one directory; nothing outside it is
read or written, so a system SLURM or munge is never touched. Client
commands (sbatch, squeue, scancel, and FireWorks' qlaunch calling them) find
this cluster through ``SLURM_CONF`` in :meth:`SlurmCluster.env`.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

#: what the cluster needs on PATH (Debian: apt-get install slurm-wlm munge)
BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scancel",
            "sinfo")


def missing_binaries() -> list[str]:
    """The cluster's programs that are not on PATH (sbin included)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [name for name in BINARIES if shutil.which(name, path=path) is None]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _memory_mb() -> int:
    with open("/proc/meminfo") as meminfo:
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    return total_kb // 1024 * 9 // 10


class ClusterStartError(RuntimeError):
    """A daemon did not come up; the message carries the end of its log."""


class SlurmCluster:
    """One controller, one node (all of this machine's cores), one partition."""

    partition = "haml"
    node = "haml-node"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.conf = directory / "slurm.conf"
        self.socket = directory / "munge" / "munge.socket"
        self._daemons: list[tuple[str, subprocess.Popen]] = []
        self._sbin = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

    def env(self, base: dict | None = None) -> dict:
        """An environment whose SLURM commands talk to this cluster."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        return env

    def _exe(self, name: str) -> str:
        return shutil.which(name, path=self._sbin) or name

    def _start(self, name: str, command: list[str]) -> None:
        log = (self.directory / "log" / f"{name}.out").open("ab")
        process = subprocess.Popen(
            [self._exe(command[0]), *command[1:]], stdout=log, stderr=subprocess.STDOUT,
            env=self.env(), start_new_session=True,
        )
        log.close()
        self._daemons.append((name, process))

    def _write_conf(self) -> None:
        user = getpass.getuser()
        host = socket.gethostname().split(".")[0]
        d = self.directory
        self.conf.write_text("\n".join([
            "ClusterName=hamltest",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.socket}",
            f"StateSaveLocation={d / 'state'}",
            f"SlurmdSpoolDir={d / 'spool'}",
            f"SlurmctldPidFile={d / 'slurmctld.pid'}",
            f"SlurmdPidFile={d / 'slurmd.pid'}",
            f"SlurmctldLogFile={d / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={d / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SchedulerType=sched/builtin",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "ReturnToService=2",
            "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "InactiveLimit=0",
            "KillWait=5",
            f"NodeName={self.node} NodeHostname={host} NodeAddr=127.0.0.1 "
            f"CPUs={os.cpu_count()} RealMemory={_memory_mb()} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.node} Default=YES "
            "MaxTime=INFINITE State=UP",
            "",
        ]))

    def start(self, timeout: float = 60) -> None:
        """Generate the munge key, start the three daemons, wait for an idle node."""
        for sub in ("munge", "state", "spool", "log"):
            (self.directory / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        key = self.directory / "munge" / "munge.key"
        subprocess.run([self._exe("mungekey"), "--create", f"--keyfile={key}"], check=True,
                       capture_output=True)
        self._write_conf()
        munge = self.directory / "munge"
        self._start("munged", [
            "munged", "--foreground", "--force", f"--socket={self.socket}",
            f"--key-file={key}", f"--log-file={munge / 'munged.log'}",
            f"--pid-file={munge / 'munged.pid'}", f"--seed-file={munge / 'munged.seed'}",
        ])
        self._wait(lambda: self.socket.exists(), timeout, "munged's socket")
        self._start("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        self._start("slurmd", ["slurmd", "-D", "-N", self.node, "-f", str(self.conf)])
        self._wait(lambda: self.node_state().startswith("idle"), timeout, "an idle node")

    def _wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [name for name, p in self._daemons if p.poll() is not None]
            if dead:
                raise ClusterStartError(f"{', '.join(dead)} exited: {self.log_tail()}")
            if condition():
                return
            time.sleep(0.2)
        raise ClusterStartError(f"no {what} after {timeout} s: {self.log_tail()}")

    def log_tail(self, lines: int = 8) -> str:
        """The last lines of every daemon log, for a failure message."""
        parts = []
        for log in sorted((self.directory / "log").glob("*")) + sorted(
                (self.directory / "munge").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def _client(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self._exe(args[0]), *args[1:]], env=self.env(),
                              capture_output=True, text=True, timeout=30)

    def node_state(self) -> str:
        """sinfo's state of the node ('idle', 'mixed', 'allocated', 'down', ...)."""
        out = self._client("sinfo", "-h", "-N", "-o", "%T")
        return out.stdout.strip() if out.returncode == 0 else ""

    def jobs(self) -> dict[str, str]:
        """Job id -> state of every job squeue lists (pending, running, completing)."""
        out = self._client("squeue", "-h", "-o", "%i %T")
        if out.returncode != 0:
            raise RuntimeError(f"squeue failed: {out.stderr.strip()}")
        return dict(line.split() for line in out.stdout.splitlines() if line.strip())

    def scancel(self, job_id: str) -> None:
        """Cancel a job as a user (or the scheduler at its walltime) would."""
        out = self._client("scancel", job_id)
        if out.returncode != 0:
            raise RuntimeError(f"scancel {job_id} failed: {out.stderr.strip()}")

    def stop(self) -> None:
        """Cancel what is left, stop the daemons started here (slurmd first)."""
        if self._daemons and all(p.poll() is None for _, p in self._daemons):
            if self.jobs():
                self._client("scancel", "--partition", self.partition)
                deadline = time.monotonic() + 30
                while self.jobs() and time.monotonic() < deadline:
                    time.sleep(0.5)
        for _, process in reversed(self._daemons):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=15)
        self._daemons.clear()
