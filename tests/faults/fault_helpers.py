"""What the fault tests share: specs, subprocesses, document snapshots."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

DATA = Path(__file__).parents[1] / "data"


def write_spec(path: Path, **changes) -> Path:
    """The fast Lennard-Jones spec with ``section__key=value`` changes."""
    data = yaml.safe_load((DATA / "lj_small.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data[section][key] = value
    path.write_text(yaml.safe_dump(data))
    return path


def haml_command(*args: str) -> list[str]:
    """The ``haml`` command line, run with this interpreter."""
    return [sys.executable, "-m", "haml_flows.cli.main", *args]


def run_haml(*args: str, env: dict, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``haml ARGS`` to the end and return its result (text output)."""
    return subprocess.run(
        haml_command(*args), env=env, cwd=cwd, capture_output=True, text=True,
        timeout=timeout,
    )


def start(command: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    """Start ``command`` in its own process group, output to ``log``."""
    cwd.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process and everything it started."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def wait_for(condition, timeout: float, poll: float = 0.02, what: str = "condition"):
    """Return the first truthy ``condition()``; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stored_keys(database, collection: str) -> set[tuple[str, int]]:
    """(uuid, index) of every job output stored."""
    return {(d["uuid"], d["index"]) for d in database[collection].find({}, {"uuid": 1, "index": 1})}


def cycle_counts(database, collection: str, run_id: str) -> Counter:
    """How many stored CycleDocs each cycle number has."""
    docs = database[collection].find(
        {"output.doc_type": "haml_cycle", "output.run_id": run_id}, {"output.cycle": 1}
    )
    return Counter(d["output"]["cycle"] for d in docs)


def env_for(settings, **extra: str) -> dict:
    """This process's environment, pointed at ``settings``' database."""
    env = dict(os.environ)
    env["HAML_DATABASE"] = settings.DATABASE
    env.update(extra)
    return env


def write_launchpad_files(directory: Path, settings, run_id: str) -> tuple[Path, Path]:
    """launchpad.yaml and my_fworker.yaml of a worker serving one run."""
    launchpad = directory / "launchpad.yaml"
    launchpad.write_text(
        yaml.safe_dump(
            {"host": settings.mongodb_uri, "name": settings.DATABASE, "uri_mode": True}
        )
    )
    fworker = directory / "my_fworker.yaml"
    fworker.write_text(
        yaml.safe_dump(
            {"name": "fault-worker", "category": "",
             "query": json.dumps({"spec.haml_run_id": run_id})}
        )
    )
    return launchpad, fworker
