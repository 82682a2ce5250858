"""Shared fixtures: a real embedded database server for the whole test session."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator

import pytest

from haml_flows.database.server import EmbeddedServer, ServerStartError
from haml_flows.settings import HamlSettings


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def unused_port() -> Callable[[], int]:
    """A function returning a TCP port that is free on 127.0.0.1 right now."""
    return _unused_port


@pytest.fixture(scope="session")
def embedded_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HamlSettings]:
    """Start a SecantusDB server on a free port for the session; yield its settings.

    HAML_* variables point every HamlSettings() of the session at this server,
    and HAML_CONFIG_FILE at a missing file so the user's config never leaks in.
    """
    db_dir = tmp_path_factory.mktemp("haml_db")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("HAML_MONGODB_URI", raising=False)
        env.setenv("HAML_CONFIG_FILE", str(db_dir / "no-config.yaml"))
        env.setenv("HAML_DB_HOST", "127.0.0.1")
        env.setenv("HAML_DB_DIR", str(db_dir))
        env.setenv("HAML_DATABASE", "haml_test")
        for attempt in range(3):
            env.setenv("HAML_DB_PORT", str(_unused_port()))
            settings = HamlSettings()
            server = EmbeddedServer(settings)
            try:
                server.start()
                break
            except ServerStartError:
                if attempt == 2:
                    raise
        try:
            yield settings
        finally:
            server.stop()


@pytest.fixture
def haml_settings(embedded_db: HamlSettings) -> Iterator[HamlSettings]:
    """Settings for one test: the session server, a fresh database dropped afterwards."""
    settings = HamlSettings(DATABASE=f"test_{uuid.uuid4().hex[:12]}")
    yield settings
    from haml_flows.database.stores import connect

    database = connect(settings)
    database.client.drop_database(database.name)
    database.client.close()


@pytest.fixture
def job_store(haml_settings: HamlSettings):
    """A connected jobflow JobStore on this test's database."""
    from haml_flows.database.stores import make_job_store

    store = make_job_store(haml_settings)
    store.connect()
    yield store
    store.close()


@pytest.fixture(autouse=True)
def _progress_logger_restored():
    """The command line attaches console and file handlers to the progress logger
    and turns its propagation off; each test gets it back as it found it."""
    import logging

    logger = logging.getLogger("haml_flows.progress")
    handlers, filters = list(logger.handlers), list(logger.filters)
    propagate, level = logger.propagate, logger.level
    yield
    for handler in [h for h in logger.handlers if h not in handlers]:
        logger.removeHandler(handler)
        handler.close()
    for f in [f for f in logger.filters if f not in filters]:
        logger.removeFilter(f)
    logger.propagate, logger.level = propagate, level
