"""jobflow and FireWorks on the embedded server."""

from __future__ import annotations

from pathlib import Path

import pytest
from jobflow import Flow, job, run_locally

from haml_flows.database.stores import connect, make_launchpad
from haml_flows.settings import HamlSettings

BLOB_SIZE = 17 * 1024 * 1024


@job(data=["blob"])
def make_blob(size: int) -> dict:
    """A document too large for MongoDB unless `blob` goes to the data store."""
    return {"size": size, "blob": "x" * size}


@job
def add(a: int, b: int) -> int:
    """A trivial job for FireWorks."""
    return a + b


def test_large_data_goes_to_gridfs(job_store, haml_settings: HamlSettings) -> None:
    blob_job = make_blob(BLOB_SIZE)
    responses = run_locally(Flow([blob_job]), store=job_store, ensure_success=True)
    assert blob_job.uuid in responses

    doc = job_store.query_one({"uuid": blob_job.uuid})
    assert doc["output"]["size"] == BLOB_SIZE
    assert doc["output"]["blob"]["store"] == "data"

    loaded = job_store.query_one({"uuid": blob_job.uuid}, load=True)
    assert len(loaded["output"]["blob"]) == BLOB_SIZE

    database = connect(haml_settings)
    assert database[f"{haml_settings.DATA_BUCKET}.files"].count_documents({}) == 1
    assert database[haml_settings.DOCS_COLLECTION].count_documents({}) == 1


def test_launchpad_runs_a_workflow(
    job_store, haml_settings: HamlSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fireworks import FWorker
    from fireworks.core.rocket_launcher import rapidfire
    from jobflow.managers.fireworks import flow_to_workflow

    monkeypatch.chdir(tmp_path)
    launchpad = make_launchpad(haml_settings)
    launchpad.reset("", require_password=False)
    first = add(1, 2)
    second = add(first.output, 4)
    launchpad.add_wf(flow_to_workflow(Flow([first, second]), store=job_store))

    rapidfire(launchpad, FWorker(), nlaunches=0)

    assert launchpad.get_fw_ids(query={"state": "COMPLETED"}) != []
    assert launchpad.get_fw_ids(query={"state": {"$ne": "COMPLETED"}}) == []
    assert job_store.get_output(second.uuid) == 7
    assert launchpad.db.name == haml_settings.DATABASE
