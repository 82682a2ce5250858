"""Fixtures for tests that own a server: private port, data directory and env."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from haml_flows.database.server import EmbeddedServer
from haml_flows.settings import HamlSettings


@pytest.fixture
def private_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unused_port: Callable[[], int]
) -> Iterator[HamlSettings]:
    """HAML_* env for a server this test starts; stops it afterwards if it runs."""
    monkeypatch.delenv("HAML_MONGODB_URI", raising=False)
    monkeypatch.setenv("HAML_CONFIG_FILE", str(tmp_path / "no-config.yaml"))
    monkeypatch.setenv("HAML_DB_HOST", "127.0.0.1")
    monkeypatch.setenv("HAML_DB_PORT", str(unused_port()))
    monkeypatch.setenv("HAML_DB_DIR", str(tmp_path / "db"))
    settings = HamlSettings()
    yield settings
    EmbeddedServer(settings).stop()
