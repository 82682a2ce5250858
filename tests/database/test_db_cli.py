"""`haml db start|status|stop` through typer's CliRunner."""

from __future__ import annotations

from typer.testing import CliRunner

from haml_flows.cli.db import db_app
from haml_flows.settings import HamlSettings


def test_start_status_stop(private_env: HamlSettings, unused_port, tmp_path) -> None:
    runner = CliRunner()
    port = str(unused_port())
    where = ["--port", port, "--dir", str(tmp_path / "cli_db")]

    result = runner.invoke(db_app, ["status", *where])
    assert result.exit_code == 1
    assert "not running" in result.output

    result = runner.invoke(db_app, ["start", *where])
    assert result.exit_code == 0, result.output
    assert f"database running at 127.0.0.1:{port} (pid " in result.output
    assert str(tmp_path / "cli_db") in result.output

    result = runner.invoke(db_app, ["start", *where])
    assert result.exit_code == 0
    assert "already running" in result.output

    result = runner.invoke(db_app, ["status", *where])
    assert result.exit_code == 0
    assert f"database running at 127.0.0.1:{port}" in result.output

    result = runner.invoke(db_app, ["stop", *where])
    assert result.exit_code == 0
    assert "database stopped" in result.output

    result = runner.invoke(db_app, ["status", *where])
    assert result.exit_code == 1
    assert "not running" in result.output


def test_defaults_come_from_settings(private_env: HamlSettings) -> None:
    runner = CliRunner()
    result = runner.invoke(db_app, ["start"])
    assert result.exit_code == 0, result.output
    assert f"127.0.0.1:{private_env.DB_PORT}" in result.output
    assert runner.invoke(db_app, ["stop"]).exit_code == 0


def test_start_error_is_one_clear_line(private_env: HamlSettings, embedded_db) -> None:
    result = CliRunner().invoke(db_app, ["start", "--port", str(embedded_db.DB_PORT)])
    assert result.exit_code == 1
    assert "another database server already answers" in result.output


def test_help_texts() -> None:
    runner = CliRunner()
    for command in ("start", "stop", "status"):
        result = runner.invoke(db_app, [command, "--help"])
        assert result.exit_code == 0
        assert "--port" in result.output and "--dir" in result.output
