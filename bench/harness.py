"""Shared set-up of the benchmark scripts: a private database and spec runs.

Every benchmark runs against its own embedded server (a temporary data
directory, a free port) so that it never touches a user's database.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def quiet_warnings() -> None:
    """Hide the libraries' deprecation chatter in benchmark output."""
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)


def quiet_fits() -> None:
    """Also hide user warnings and motep's and the package's log lines (fit benches)."""
    import logging

    quiet_warnings()
    warnings.filterwarnings("ignore", category=UserWarning)
    logging.getLogger("motep").setLevel(logging.ERROR)
    logging.getLogger("haml_flows").setLevel(logging.ERROR)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def private_database(prefix: str = "haml_bench_", db_dir: Path | None = None) -> Iterator[Path]:
    """Start an embedded server on a free port in a temporary directory.

    Yields the temporary directory (work directories go below it); the
    HAML_* environment points every HamlSettings() at the server. ``db_dir``
    keeps the server's data there instead (a benchmark that reuses finished
    runs across invocations).
    """
    with _sole_user(db_dir):
        yield from _serve(prefix, db_dir)


@contextmanager
def _sole_user(db_dir: Path | None) -> Iterator[None]:
    """Hold ``db_dir`` for this process: a second server on the same data would
    corrupt it, so a second script is refused, naming the first."""
    if db_dir is None:
        yield
        return
    import fcntl

    db_dir.mkdir(parents=True, exist_ok=True)
    with open(db_dir.parent / f".{db_dir.name}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise SystemExit(
                f"{db_dir} is in use by {holder}: wait for it to end, or read through "
                "its server (--port where the script offers it)"
            ) from None
        lock.truncate(0)
        lock.write(f"pid {os.getpid()}\n")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)


def _serve(prefix: str, db_dir: Path | None) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update(
        HAML_CONFIG_FILE=str(tmp / "none.yaml"),
        HAML_DB_DIR=str(db_dir or tmp / "db"),
        HAML_DB_PORT=str(_free_port()),
        HAML_DATABASE="bench",
    )
    os.environ.pop("HAML_MONGODB_URI", None)
    from haml_flows.database.server import EmbeddedServer, ensure_database
    from haml_flows.settings import HamlSettings

    settings = HamlSettings()
    ensure_database(settings)
    try:
        yield tmp
    finally:
        EmbeddedServer(settings).stop()


def _overridden(spec_path: Path, overrides: dict[str, object]) -> dict:
    """The spec's mapping with dotted-key overrides applied."""
    data = yaml.safe_load(Path(spec_path).read_text())
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return data


def spec_with(spec_path: Path, overrides: dict[str, object], out: Path) -> Path:
    """Write ``spec_path`` with dotted-key overrides (``mtp.level: 8``) to ``out``."""
    data = _overridden(spec_path, overrides)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """``["mtp.radial_frames=20"]`` -> ``{"mtp.radial_frames": 20}`` (YAML values)."""
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            msg = f"override {pair!r} is not KEY=VALUE (e.g. mtp.radial_frames=20)"
            raise SystemExit(msg)
        key, value = pair.split("=", 1)
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


@dataclass
class BenchRun:
    """A finished run: its documents and wall time."""

    run_id: str
    n_atoms: int
    wall_seconds: float
    docs: list
    run_doc: object
    store: object


def run_spec(spec_path: Path, workdir: Path, *, fireworks: bool = False) -> BenchRun:
    """Run a spec to the end on the private database; locally or via FireWorks."""
    from haml_flows.database.stores import make_job_store, make_launchpad
    from haml_flows.queries import cycle_docs, run_doc
    from haml_flows.runner import (
        prepare_run,
        run_prepared_locally,
        run_prepared_on_fireworks,
    )
    from haml_flows.settings import HamlSettings

    settings = HamlSettings()
    store = make_job_store(settings)
    start = time.perf_counter()
    run = prepare_run(spec_path)
    if fireworks:
        run_prepared_on_fireworks(run, store, make_launchpad(settings), workdir)
    else:
        run_prepared_locally(run, store, workdir)
    wall = time.perf_counter() - start
    store.connect()
    return BenchRun(
        run_id=run.run_id,
        n_atoms=len(run.structure),
        wall_seconds=wall,
        docs=cycle_docs(store, run.run_id),
        run_doc=run_doc(store, run.run_id),
        store=store,
    )


#: the fidelity gate's verdicts, one record per system and settings gated
#: (bench/fidelity.py appends; bench/haml_vs_aimd.py and bench/frontier.py read)
VERDICTS = ROOT / "bench/gate_verdicts.json"
_NOT_SETTINGS = ("name", "stop", "reference.seed")


def settings_fingerprint(spec_path: Path, overrides: dict[str, object]) -> str:
    """Hash of what a HAML run's trajectory depends on: the spec with ``overrides``,
    less its name, stop rules and velocity seed (the gate varies those itself)."""
    import hashlib
    import json

    data = _overridden(spec_path, overrides)
    for dotted in _NOT_SETTINGS:
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.get(key, {})
        node.pop(leaf, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


GATE_CACHE = ROOT / "bench/.cache/fidelity"
"""bench/fidelity.py's cache: reference ensembles, and its HAML runs in haml_db."""


@contextmanager
def gate_store(port: int | None = None):
    """A connected job store on the fidelity gate's HAML runs.

    ``port``: a server already serving the cache (bench/fidelity.py running);
    otherwise one is started on it for the duration.
    """

    def store():
        from haml_flows.database.stores import make_job_store
        from haml_flows.settings import HamlSettings

        job_store = make_job_store(HamlSettings())
        job_store.connect()
        return job_store

    if port:
        os.environ.update(HAML_DB_PORT=str(port), HAML_DATABASE="bench",
                          HAML_CONFIG_FILE=str(GATE_CACHE / "none.yaml"))
        os.environ.pop("HAML_MONGODB_URI", None)
        yield store()
    else:
        with private_database("haml_gate_", db_dir=GATE_CACHE / "haml_db"):
            yield store()


def gate_verdicts() -> list[dict]:
    """Every recorded verdict of the fidelity gate (oldest first)."""
    import json

    return json.loads(VERDICTS.read_text()) if VERDICTS.exists() else []


def record_verdict(record: dict) -> None:
    """Append one verdict; a later gate of the same system, settings, window and
    package code (the committed ``haml_flows/`` tree) replaces it."""
    import json

    same = ("system", "fingerprint", "window_ps", "seeds", "reference_seeds", "code")
    kept = [r for r in gate_verdicts() if any(r.get(k) != record.get(k) for k in same)]
    VERDICTS.write_text(json.dumps([*kept, record], indent=1) + "\n")


def verdict_for(system: str, fingerprint: str) -> dict | None:
    """The newest verdict of the gate for ``system`` with these settings, if any."""
    found = [r for r in gate_verdicts()
             if r["system"] == system and r["fingerprint"] == fingerprint]
    return found[-1] if found else None
