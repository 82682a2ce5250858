"""A run stored before the cycle redesign (issue 17) is still read and continued.

``tests/data/legacy_run.json.gz`` holds what haml-flows at commit cc9a08a
stored for tests/data/lj_small.yaml, cut after cycle 1 as a killed run
leaves it (``tests/data/make_legacy_run.py`` wrote it): the job documents
and their GridFS files, no summary.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from bson import json_util
from rich.console import Console
from typer.testing import CliRunner

from haml_flows.cli.main import app
from haml_flows.queries import cycle_docs, run_summary

LEGACY = Path(__file__).parent / "data" / "legacy_run.json.gz"
runner = CliRunner()


def _load(settings) -> str:
    from haml_flows.database.stores import connect

    fixture = json_util.loads(gzip.open(LEGACY, "rt").read())
    db = connect(settings)
    db[settings.DOCS_COLLECTION].insert_many(fixture["outputs"])
    db[f"{settings.DATA_BUCKET}.files"].insert_many(fixture["files"])
    db[f"{settings.DATA_BUCKET}.chunks"].insert_many(fixture["chunks"])
    db.client.close()
    return fixture["run_id"]


def test_cycles_report_and_resume_of_a_stored_run(
    haml_settings, job_store, tmp_path, monkeypatch
):
    import haml_flows.cli._common as common

    monkeypatch.setattr(common, "console", Console(width=200))
    monkeypatch.setenv("HAML_DATABASE", haml_settings.DATABASE)
    run_id = _load(haml_settings)

    table = runner.invoke(app, ["cycles", run_id])
    assert table.exit_code == 0, table.output
    assert f"run {run_id}" in table.output and "train s" in table.output

    report = runner.invoke(app, ["report", run_id, "-o", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["run_id"] == run_id and summary["cycles"] == 1

    resumed = runner.invoke(app, ["resume", run_id, "--workdir", str(tmp_path / "work")])
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming {run_id} locally after cycle 1" in resumed.output
    assert "finished: 2 cycles" in resumed.output
    docs = cycle_docs(job_store, run_id)
    assert [d.cycle for d in docs] == [1, 2]
    assert docs[1].training_set_size == 2 * docs[0].training_set_size
    assert run_summary(job_store, run_id).cycles == 2
