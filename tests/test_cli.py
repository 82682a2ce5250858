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


# --- conventions: -h, --version, plain help, a light start-up -----------------

def _haml(*args, env=None, cwd=None):
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "haml_flows.cli.main", *args], capture_output=True,
        text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=120,
    )


COMMANDS = [
    [], ["run"], ["cycles"], ["runs"], ["report"], ["compare"], ["export"], ["resume"],
    ["submit"], ["screen"], ["worker"], ["status"], ["results"], ["build"],
    ["build", "li-lpsc"], ["build", "li-lifsi-dme"], ["db"], ["db", "start"], ["mtp"],
    ["mtp", "grade"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "haml")
def test_short_help_and_no_markup(command):
    result = runner.invoke(app, [*command, "-h"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    # flags carry no <bool> metavar; help text carries no RST/markdown literals
    assert "<bool>" not in result.output
    assert "``" not in result.output and "`" not in result.output


def test_version():
    from importlib.metadata import version

    result = _haml("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"haml-flows {version('haml-flows')}"


def test_commands_listed_in_the_order_a_user_meets_them():
    result = runner.invoke(app, ["-h"])
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].splitlines()
              if line.startswith("  ") and not line.startswith("   ")]
    assert listed[:4] == ["run", "cycles", "runs", "report"]
    assert listed.index("compare") < listed.index("export") < listed.index("resume")
    assert listed.index("build") < listed.index("screen") < listed.index("worker")
    # a run is submitted to workers the way a screen is, right before it
    assert listed.index("submit") == listed.index("screen") - 1
    assert listed[-2:] == ["db", "mtp"]


def _modules_loaded_by(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``code``."""
    import subprocess
    import sys

    probe = f"{code}\nimport sys\nprint(','.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [m for m in out.stdout.strip().split(",") if m]


def test_start_up_loads_no_database_or_science_library():
    # what `haml --help` pays for: typer, rich and the command modules only
    heavy = ("pymongo", "pymatgen", "maggma", "jobflow", "fireworks",
             "ase", "numpy", "scipy", "pydantic", "motep")
    assert _modules_loaded_by("import haml_flows.cli.main", heavy) == []


def test_ranking_a_ranked_screen_loads_neither_maggma_nor_pymatgen():
    # `haml results` on a ranked screen: pymongo and the LaunchPad, no JobStore,
    # no structures (they load only to rank a newly finished run)
    code = (
        "from haml_flows.screening.ranking import candidate_rows, rank_rows, export\n"
        "from haml_flows.database.stores import connect, make_launchpad\n"
        "from haml_flows.screening.status import screen_status\n"
        "make_launchpad()"
    )
    assert _modules_loaded_by(code, ("maggma", "pymatgen", "jobflow", "ase")) == []


# --- read-only commands never start a database ---------------------------------

@pytest.mark.parametrize("command", [
    ["cycles", "some-run"], ["runs"], ["status"], ["results", "--screen", "s"],
    ["report", "some-run"], ["compare", "a", "b"], ["resume", "some-run"],
    ["export", "some-run"],
])
def test_read_only_commands_name_the_silent_address(command, tmp_path, unused_port):
    from haml_flows.database.server import EmbeddedServer
    from haml_flows.settings import HamlSettings

    port = unused_port()
    env = {"HAML_CONFIG_FILE": str(tmp_path / "none.yaml"), "HAML_DB_PORT": str(port),
           "HAML_DB_DIR": str(tmp_path / "db"), "HAML_MONGODB_URI": ""}
    result = _haml(*command, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    out = " ".join((result.stdout + result.stderr).split())
    assert f"no database answers at 127.0.0.1:{port}" in out
    assert "haml db start" in out and "Traceback" not in out
    server = EmbeddedServer(HamlSettings(DB_PORT=port, DB_DIR=tmp_path / "db",
                                         MONGODB_URI=None))
    assert server.running_pid() is None and not server.answering()


# --- run --check ---------------------------------------------------------------

def test_run_check_prints_the_plan_and_starts_nothing(tmp_path, unused_port):
    port = unused_port()
    env = {"HAML_CONFIG_FILE": str(tmp_path / "none.yaml"), "HAML_DB_PORT": str(port),
           "HAML_DB_DIR": str(tmp_path / "db"), "HAML_MONGODB_URI": "", "COLUMNS": "200"}
    result = _haml("run", str(DATA / "lj_small.yaml"), "--check", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for row in ("system", "AIMD", "MTP", "MLP-MD", "audit", "stop", "run id"):
        assert f" {row} " in out, row
    assert "γ_break" in out and "nothing was started" in out
    assert not (tmp_path / "haml_runs").exists() and not (tmp_path / "db").exists()


def test_run_check_refuses_a_bad_spec(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text((DATA / "lj_small.yaml").read_text().replace("steps: 8", "steps: 0"))
    result = runner.invoke(app, ["run", str(spec), "--check"])
    assert result.exit_code == 2 and "reference.steps" in result.output


# --- finding runs ----------------------------------------------------------------

def test_runs_lists_and_filters_and_unknown_ids_get_a_suggestion(
    haml_settings, monkeypatch, tmp_path
):
    from rich.console import Console

    import haml_flows.cli._common as cli

    monkeypatch.setattr(cli, "console", Console(width=250))
    monkeypatch.setenv("HAML_DATABASE", haml_settings.DATABASE)
    empty = runner.invoke(app, ["runs"])
    assert empty.exit_code == 0 and "no runs stored" in empty.output
    result = runner.invoke(app, ["run", str(DATA / "lj_small.yaml"), "--workdir",
                                 str(tmp_path)])
    assert result.exit_code == 0, result.output
    run_id = result.output.split("run ", 1)[1].split(":", 1)[0]

    listing = runner.invoke(app, ["runs"])
    assert listing.exit_code == 0, listing.output
    line = next(line for line in listing.output.splitlines() if run_id in line)
    cells = [c.strip() for c in line.split("│")[1:-1]]
    assert cells[0] == run_id and cells[3].startswith("finished")
    assert int(cells[4]) >= 1 and float(cells[5]) > 0
    assert runner.invoke(app, ["runs", "--state", "unfinished"]).output.count(run_id) == 0
    assert "none of the 1 stored runs match" in runner.invoke(
        app, ["runs", "--name", "no-such-name"]).output

    typo = run_id[:-1] + ("x" if run_id[-1] != "x" else "y")
    for command in (["cycles", typo], ["resume", typo], ["report", typo]):
        out = runner.invoke(app, command)
        assert out.exit_code == 1, (command, out.output)
        assert f"did you mean {run_id}" in " ".join(out.output.split()), command
        assert "resuming" not in out.output

    # the documents collection carries the run indexes without any screen
    from haml_flows.database.stores import connect

    keys = [list(ix["key"]) for ix in connect(haml_settings)[
        haml_settings.DOCS_COLLECTION].list_indexes()]
    assert ["output.doc_type", "output.run_id"] in keys and ["uuid", "index"] in keys
    # trajectories and potentials: the GridFS bucket the docs name, keyed as they say
    stored = connect(haml_settings)["outputs_data.files"].find_one()
    assert {"blob_uuid", "job_uuid", "job_index"} <= set(stored["metadata"])


def test_every_error_has_one_prefix(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((DATA / "lj_small.yaml").read_text().replace("steps: 8", "steps: 0"))
    screen = tmp_path / "screen.yaml"
    screen.write_text("screen: {name: s}\n")
    outputs = [
        runner.invoke(app, ["run", str(bad)]).output,
        runner.invoke(app, ["run", str(bad), "--check"]).output,
        runner.invoke(app, ["screen", str(screen), "--dry-run"]).output,
        runner.invoke(app, ["mtp", "template", "--level", "3", "--species", "Li", "-o",
                            str(tmp_path / "x.mtp")]).output,
    ]
    for output in outputs:
        assert output.startswith("error: "), output


def test_first_use_of_an_empty_launchpad_says_what_was_initialised(haml_settings, caplog,
                                                                   capfd):
    import logging

    from haml_flows.database.launchpad import ensure_initialized
    from haml_flows.database.stores import make_launchpad

    launchpad = make_launchpad(haml_settings)
    with caplog.at_level(logging.INFO):
        assert ensure_initialized(launchpad) is True
        assert ensure_initialized(launchpad) is False
    said = caplog.text + capfd.readouterr().out
    assert "was RESET" not in said
    assert f"initialised FireWorks' id counters and indexes in database " \
           f"'{haml_settings.DATABASE}'" in said
