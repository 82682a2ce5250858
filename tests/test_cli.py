"""The command line: help, bad specs, an unreachable database, a run and its table."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from haml_flows.cli.main import app

DATA = Path(__file__).parent / "data"
runner = CliRunner()


@pytest.mark.parametrize("command", [[], ["run"], ["cycles"], ["db"]])
def test_help_everywhere(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_bad_spec_fails_before_running(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text((DATA / "lj_small.yaml").read_text().replace("steps: 8", "steps: 0"))
    result = runner.invoke(app, ["run", str(spec)])
    assert result.exit_code == 2
    assert "reference.steps" in result.output
    assert not (tmp_path / "haml_runs").exists()


def test_unreachable_database_is_a_clear_message(monkeypatch, unused_port, tmp_path):
    monkeypatch.setenv("HAML_CONFIG_FILE", str(tmp_path / "none.yaml"))
    monkeypatch.setenv(
        "HAML_MONGODB_URI", f"mongodb://alice:s3cret@127.0.0.1:{unused_port()}/"
    )
    monkeypatch.setenv("HAML_SERVER_SELECTION_TIMEOUT_MS", "300")
    result = runner.invoke(app, ["run", str(DATA / "lj_small.yaml")])
    assert result.exit_code == 2
    assert "error" in result.output and "Traceback" not in result.output
    assert "s3cret" not in result.output


def test_run_then_cycles(haml_settings, monkeypatch, tmp_path):
    from rich.console import Console

    import haml_flows.cli._common as cli

    monkeypatch.setattr(cli, "console", Console(width=200))
    monkeypatch.setenv("HAML_DATABASE", haml_settings.DATABASE)
    result = runner.invoke(
        app, ["run", str(DATA / "lj_small.yaml"), "--workdir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "cycle 1 |" in result.output and "cycle 2 |" in result.output
    run_id = result.output.split("run ", 1)[1].split(":", 1)[0]
    table = runner.invoke(app, ["cycles", run_id])
    assert table.exit_code == 0
    assert "train s" in table.output and "frames" in table.output
    missing = runner.invoke(app, ["cycles", "no-such-run"])
    assert missing.exit_code == 1


def test_cycle_table_names_each_stop_reason():
    from rich.console import Console

    from haml_flows.cli._common import cycle_table
    from haml_flows.schemas import CycleDoc, StageCost

    cost = StageCost(wall_seconds=1.0, cpu_seconds=1.0)
    docs = [
        CycleDoc(
            run_id="r", cycle=i + 1, aimd_steps=8, aimd_fs=8.0, mlpmd_steps=10,
            mlpmd_fs=5.0, gamma_at_stop=2.0, gamma_max=2.0, stop_reason=reason,
            training_set_size=9, energy_rmse=0.01, force_rmse=0.1, aimd_cost=cost,
            training_cost=cost, mlpmd_cost=cost, mlpmd_gamma_seconds=0.1,
            cumulative_fs=13.0 * (i + 1), temperature_aimd_start=300.0,
            temperature_aimd_end=300.0, temperature_mlpmd_start=300.0,
            temperature_mlpmd_end=300.0, aimd_job="a", training_job="t", mlpmd_job="m",
        )
        for i, reason in enumerate(["gamma_break", "max_steps", "collapse"])
    ]
    console = Console(width=200, record=True)
    console.print(cycle_table(docs, "run r"))
    rows = [[cell.strip() for cell in line.split("│")[1:-1]]
            for line in console.export_text().splitlines() if line.count("│") == 15]
    assert [row[8] for row in rows if row[0] in ("1", "2", "3")] == [
        "break", "limit", "collapse"
    ]
    # the grade at the stop and the frames kept above gamma_select
    assert [row[9:11] for row in rows if row[0] == "1"] == [["2", "0"]]
