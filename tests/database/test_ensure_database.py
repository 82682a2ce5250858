"""Errors about unreachable databases name the address, never the credentials."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from haml_flows.database.server import (
    DatabaseUnavailableError,
    ensure_database,
    is_answering,
    mask_uri,
)
from haml_flows.settings import HamlSettings


def test_external_uri_that_does_not_answer(
    unused_port: Callable[[], int], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAML_CONFIG_FILE", str(tmp_path / "no-config.yaml"))
    port = unused_port()
    settings = HamlSettings(
        MONGODB_URI=f"mongodb://haml_user:s3cr3t-pw@127.0.0.1:{port}/haml?authSource=admin",
        SERVER_SELECTION_TIMEOUT_MS=300,
        DB_DIR=tmp_path / "db",
    )
    with pytest.raises(DatabaseUnavailableError) as error:
        ensure_database(settings)
    message = str(error.value)
    assert "s3cr3t-pw" not in message
    assert "haml_user" not in message
    assert f"127.0.0.1:{port}" in message
    assert "haml db start" in message and "MONGODB_URI" in message
    assert not (tmp_path / "db").exists()


def test_ensure_database_uses_a_running_server(embedded_db: HamlSettings) -> None:
    assert ensure_database(embedded_db) == embedded_db.mongodb_uri


def test_is_answering(embedded_db: HamlSettings, unused_port) -> None:
    assert is_answering(embedded_db.mongodb_uri)
    assert not is_answering(f"mongodb://127.0.0.1:{unused_port()}", timeout_ms=200)


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("mongodb://127.0.0.1:27217", "mongodb://127.0.0.1:27217"),
        ("mongodb://u:p%40ss@db.example.org:27017/haml", "mongodb://***@db.example.org:27017/haml"),
        (
            "mongodb+srv://user:pw@cluster0.example.net/?authSource=admin",
            "mongodb+srv://***@cluster0.example.net/",
        ),
        ("mongodb://a:b@h1:1,h2:2/db?replicaSet=rs", "mongodb://***@h1:1,h2:2/db"),
    ],
)
def test_mask_uri(uri: str, masked: str) -> None:
    assert mask_uri(uri) == masked
