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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def private_database(prefix: str = "haml_bench_") -> Iterator[Path]:
    """Start an embedded server on a free port in a temporary directory.

    Yields the temporary directory (work directories go below it); the
    HAML_* environment points every HamlSettings() at the server.
    """
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update(
        HAML_CONFIG_FILE=str(tmp / "none.yaml"),
        HAML_DB_DIR=str(tmp / "db"),
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


def spec_with(spec_path: Path, overrides: dict[str, object], out: Path) -> Path:
    """Write ``spec_path`` with dotted-key overrides (``mtp.level: 8``) to ``out``."""
    data = yaml.safe_load(Path(spec_path).read_text())
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
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
