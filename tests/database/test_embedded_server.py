"""Start, stop and inspect a real SecantusDB server."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from haml_flows.database.server import (
    EmbeddedServer,
    ServerStartError,
    ensure_database,
    is_answering,
)
from haml_flows.database.stores import connect
from haml_flows.settings import HamlSettings


def test_start_status_stop(private_env: HamlSettings) -> None:
    server = EmbeddedServer(private_env)
    assert not server.status().running

    pid = server.start()
    assert server.pid_file.read_text().strip() == str(pid)
    assert server.start() == pid
    status = server.status()
    assert (status.running, status.answering, status.pid) == (True, True, pid)
    assert status.address == f"127.0.0.1:{private_env.DB_PORT}"
    assert status.data_dir == private_env.db_dir.resolve()
    assert (server.data_dir / "server.log").exists()

    assert server.stop()
    status = server.status()
    assert (status.running, status.answering, status.pid) == (False, False, None)
    assert not server.pid_file.exists()
    assert not server.stop()


def test_server_is_started_with_sync_on_commit(private_env: HamlSettings) -> None:
    assert "--sync-on-commit" in EmbeddedServer(private_env).command()
    no_sync = private_env.model_copy(update={"DB_SYNC_ON_COMMIT": False})
    assert "--sync-on-commit" not in EmbeddedServer(no_sync).command()


def test_data_persists_across_restart(private_env: HamlSettings) -> None:
    server = EmbeddedServer(private_env)
    server.start()
    connect(private_env).cycles.insert_one({"cycle": 1, "gamma_break": 10.0})
    server.stop()

    server.start()
    doc = connect(private_env).cycles.find_one({"cycle": 1})
    assert doc is not None and doc["gamma_break"] == 10.0


def test_stale_pid_file_is_ignored(private_env: HamlSettings) -> None:
    server = EmbeddedServer(private_env)
    server.data_dir.mkdir(parents=True)
    server.pid_file.write_text(f"{os.getpid()}\n")
    assert server.running_pid() is None
    assert not server.pid_file.exists()
    assert server.start() > 0


def test_killed_server_is_restarted(private_env: HamlSettings) -> None:
    server = EmbeddedServer(private_env)
    pid = server.start()
    assert os.getsid(pid) == pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.running_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.running_pid() is None
    assert server.start() != pid
    assert server.status().answering


def test_port_taken_by_another_database(
    private_env: HamlSettings, embedded_db: HamlSettings, tmp_path
) -> None:
    clash = private_env.model_copy(update={"DB_PORT": embedded_db.DB_PORT})
    with pytest.raises(ServerStartError, match="another database server"):
        EmbeddedServer(clash).start()


def test_port_taken_by_something_else_shows_log(private_env: HamlSettings) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", private_env.DB_PORT))
        blocker.listen()
        server = EmbeddedServer(private_env)
        with pytest.raises(ServerStartError, match="Address already in use"):
            server.start()
    assert not server.pid_file.exists()


def test_ensure_database_starts_embedded_server(private_env: HamlSettings) -> None:
    assert not is_answering(private_env.mongodb_uri, timeout_ms=200)
    uri = ensure_database(private_env)
    assert uri == private_env.mongodb_uri
    assert is_answering(uri)
    assert EmbeddedServer(private_env).status().running
