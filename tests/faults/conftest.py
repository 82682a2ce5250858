"""The fault-injection suite's ledger: one row per injected fault.

Every fault test records what it injected, whether the run recovered (or
stopped with a clear reason, when stopping is the correct outcome) and how
many already-stored documents were lost. The table is printed at the end of
the session; with ``HAML_FAULT_TABLE=PATH`` it is also written to PATH as
Markdown (``bench/fault_suite.py`` uses that to refresh docs/reliability.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fault_ledger import FaultLedger  # type: ignore[import-not-found]


_LEDGER = FaultLedger()


@pytest.fixture(scope="session")
def fault_ledger() -> FaultLedger:
    """The session's ledger of injected faults."""
    return _LEDGER


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the ledger after the run and write it where HAML_FAULT_TABLE says."""
    if not _LEDGER.rows:
        return
    table = _LEDGER.markdown()
    terminalreporter.section("fault injection")
    terminalreporter.write(table)
    target = os.environ.get("HAML_FAULT_TABLE")
    if target:
        Path(target).write_text(table)


@pytest.fixture
def private_server(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    unused_port,
    embedded_db,
):
    """An embedded server of this test alone (it may stop and restart it).

    Yields ``(server, settings)``; the HAML_* environment points at it, so
    subprocesses started by the test use it too.
    """
    from haml_flows.database.server import EmbeddedServer
    from haml_flows.settings import HamlSettings

    db_dir = tmp_path_factory.mktemp("private_db")
    monkeypatch.setenv("HAML_DB_DIR", str(db_dir))
    monkeypatch.setenv("HAML_DB_PORT", str(unused_port()))
    monkeypatch.setenv("HAML_DATABASE", "haml_fault")
    settings = HamlSettings()
    server = EmbeddedServer(settings)
    server.start()
    try:
        yield server, settings
    finally:
        server.stop()


@pytest.fixture
def auth_server(private_server, monkeypatch: pytest.MonkeyPatch):
    """The private server restarted with SCRAM authentication on.

    A user with readWrite on the test database is created first (the server
    has no users until then), then the server restarts with ``--auth``.
    The HAML_* environment carries the user and a fresh random password, as
    a user's environment or config file would. Yields ``(server, settings)``.
    """
    import secrets

    from pymongo import MongoClient

    from haml_flows.database.server import EmbeddedServer
    from haml_flows.settings import HamlSettings

    server, settings = private_server
    password = secrets.token_urlsafe(18)
    client: MongoClient = MongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=5000)
    client.admin.command(
        "createUser", "haml", pwd=password,
        roles=[{"role": "readWrite", "db": settings.DATABASE}],
    )
    client.close()
    server.stop()
    monkeypatch.setenv("HAML_DB_AUTH", "true")
    monkeypatch.setenv("HAML_MONGODB_USERNAME", "haml")
    monkeypatch.setenv("HAML_MONGODB_PASSWORD", password)
    settings = HamlSettings()
    server = EmbeddedServer(settings)
    server.start()
    try:
        yield server, settings
    finally:
        server.stop()
