"""A job that fails on a worker shows up in status with its reason."""

import pytest
import yaml
from fireworks import FWorker
from fireworks.core.rocket_launcher import rapidfire
from typer.testing import CliRunner

from haml_flows.cli.main import app
from haml_flows.screening.ranking import candidate_rows, rank_rows
from haml_flows.screening.status import screen_status
from haml_flows.screening.submit import submit_screen

runner = CliRunner()


@pytest.mark.slow
def test_fizzled_training_is_reported_with_its_reason(
    tmp_path, screen_file, clients, monkeypatch
):
    settings, store, launchpad, db = clients
    # the Se candidate trains with the `mlp` command the worker's settings
    # name (mtp.engine unset: mlip when one is configured); it exists at
    # submission (submission checks it) and is gone by the time the worker
    # runs it. The O candidate names motep, so it never needs it.
    path = screen_file(tmp_path, dopants=["O"], seeds=[1])
    base = yaml.safe_load((tmp_path / "base.yaml").read_text())
    base["mtp"]["engine"] = "motep"
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    mlp = tmp_path / "no-such-mlp-binary"
    mlp.write_text("#!/bin/sh\nexit 0\n")
    mlp.chmod(0o755)
    monkeypatch.setenv("HAML_MLP_CMD", str(mlp))
    se = tmp_path / "se"
    se.mkdir()
    se_screen = screen_file(se, dopants=["Se"], seeds=[1])
    submit_screen(se_screen, store, launchpad, db, settings.DOCS_COLLECTION)
    mlp.unlink()
    submit_screen(path, store, launchpad, db, settings.DOCS_COLLECTION)  # adds O only

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    rapidfire(launchpad, FWorker(query={"spec.haml_screen": "lj_screen"}), m_dir=str(work),
              nlaunches=0, sleep_time=0, max_loops=1)

    status = screen_status(db, launchpad, "lj_screen", settings.DOCS_COLLECTION)
    by_name = {c.candidate: c for c in status.candidates}
    assert status.states == {"COMPLETED": 1, "FIZZLED": 1}
    failed = by_name["lj_lpsc_se"]
    assert not failed.finished and failed.cycles == 0
    assert len(failed.failures) == 1
    assert failed.failures[0].startswith("training 1: ")
    assert "no-such-mlp-binary" in failed.failures[0] and "could not start" in failed.failures[0]
    assert by_name["lj_lpsc_o"].finished and not by_name["lj_lpsc_o"].failures

    rows = rank_rows(candidate_rows(db, launchpad, "lj_screen", settings.DOCS_COLLECTION),
                     "similarity")
    assert [(r.candidate, r.rank, r.state) for r in rows] == [
        ("lj_lpsc_o", 1, "COMPLETED"), ("lj_lpsc_se", None, "FIZZLED")
    ]

    monkeypatch.setenv("HAML_DATABASE", settings.DATABASE)
    shown = runner.invoke(app, ["status", "--screen", "lj_screen"])
    assert shown.exit_code == 0, shown.output
    assert "COMPLETED 1, FIZZLED 1" in shown.output
    assert "failed lj_lpsc_se" in shown.output and "no-such-mlp-binary" in shown.output
