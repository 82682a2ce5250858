"""FireWorks' own bookkeeping meets a database outage; stale reservations; unfinished runs.

The LaunchPad's collection calls retry through an outage as the job store's
do (``HAML_DB_RETRY_SECONDS``); past the budget they stop with one error that
names the address and ``haml resume``. ``haml resume`` releases this run's
stale reservations and never exits 0 while the run it was asked to finish is
unfinished.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time

import pytest
from fault_helpers import (  # type: ignore[import-not-found]
    cycle_counts,
    env_for,
    haml_command,
    run_haml,
    start,
    stored_keys,
    wait_for,
    write_spec,
)

from haml_flows.database.retry import DatabaseUnavailableError
from haml_flows.database.stores import connect, make_launchpad
from haml_flows.queries import run_summary
from haml_flows.runner import prepare_run, submit_to_fireworks

pytestmark = pytest.mark.slow


@pytest.fixture
def retry_env(monkeypatch):
    def set_budget(seconds: float) -> dict:
        values = {
            "HAML_DB_RETRY_SECONDS": str(seconds), "HAML_DB_RETRY_INITIAL_DELAY": "0.2",
            "HAML_DB_RETRY_MAX_DELAY": "1", "HAML_SERVER_SELECTION_TIMEOUT_MS": "1000",
        }
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        return values

    return set_budget


def test_launchpad_calls_ride_out_a_short_outage(private_server, retry_env, caplog):
    server, settings = private_server
    retry_env(60)
    launchpad = make_launchpad()
    launchpad.reset("", require_password=False)
    first = launchpad.get_new_fw_id()
    assert server.stop()
    restart = threading.Timer(3.0, server.start)
    restart.start()
    try:
        with caplog.at_level(logging.WARNING, logger="haml_flows.database"):
            second = launchpad.get_new_fw_id()        # find_one_and_update
            fireworks = list(launchpad.fireworks.find({}).sort("fw_id", 1))  # a cursor
            counted = launchpad.workflows.count_documents({})
    finally:
        restart.join()
    assert second == first + 1 and fireworks == [] and counted == 0
    assert "unavailable while FireWorks' LaunchPad" in caplog.text


def test_launchpad_outage_past_the_budget_is_one_clear_error(private_server, retry_env):
    server, settings = private_server
    retry_env(2)
    launchpad = make_launchpad()
    launchpad.reset("", require_password=False)
    assert server.stop()
    try:
        with pytest.raises(DatabaseUnavailableError) as error:
            launchpad.get_fw_ids()
    finally:
        server.start()
    message = str(error.value)
    assert f"{settings.DB_HOST}:{settings.DB_PORT}" in message
    assert "haml resume" in message and "HAML_DB_RETRY_SECONDS=2" in message


def test_outage_between_fireworks_is_ridden_out(private_server, retry_env, tmp_path,
                                                fault_ledger):
    """The worker is frozen the moment cycle 1 is stored, i.e. before FireWorks
    completes that launch and refreshes the workflow; the server goes down,
    the worker goes on into the outage, the server comes back after 6 s."""
    server, settings = private_server
    env = {**os.environ, **retry_env(120)}
    spec = write_spec(tmp_path / "spec.yaml", stop__max_cycles=3)
    log = tmp_path / "run.log"
    process = start(haml_command("run", str(spec), "--fireworks", "--workdir",
                                 str(tmp_path / "work")), env, tmp_path, log)
    database = connect(settings)
    collection = settings.DOCS_COLLECTION
    try:
        run_id = wait_for(
            lambda: (m := re.search(r"run (lj_small-[0-9a-f]+)", log.read_text())) and m[1],
            timeout=120, what="the run id",
        )
        wait_for(lambda: cycle_counts(database, collection, run_id).get(1), timeout=240,
                 poll=0.002, what="cycle 1 to be stored")
        os.killpg(process.pid, signal.SIGSTOP)
        before = stored_keys(database, collection)
        assert server.stop()
        os.killpg(process.pid, signal.SIGCONT)
        time.sleep(6)
        server.start()
        code = process.wait(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = log.read_text()
    assert code == 0, output
    assert "unavailable while FireWorks' LaunchPad" in output
    assert "Traceback" not in output
    assert cycle_counts(database, collection, run_id) == {1: 1, 2: 1, 3: 1}
    lost = len(before - stored_keys(database, collection))
    assert lost == 0
    fault_ledger.record(
        "database outage between two Fireworks, 6 s",
        injected="stop of the database server while `haml run --fireworks` completed a "
        "Firework (FireWorks' own LaunchPad calls)",
        recovered=True,
        documents_lost=lost,
        outcome="LaunchPad calls retried with backoff; run finished, cycles 1-3 once each",
    )


def _submitted(tmp_path, job_store, haml_settings, cycles: int = 2):
    launchpad = make_launchpad(haml_settings)
    launchpad.reset("", require_password=False)
    run = prepare_run(write_spec(tmp_path / "spec.yaml", stop__max_cycles=cycles,
                                 mlpmd__continue_trusted=False))
    submit_to_fireworks(run, job_store, launchpad)
    return run, launchpad


@pytest.mark.parametrize("how", ["reserved launch", "checkout cut short"])
def test_resume_releases_a_stale_reservation(haml_settings, job_store, tmp_path, how,
                                             fault_ledger):
    from fireworks import FWorker

    run, launchpad = _submitted(tmp_path, job_store, haml_settings)
    query = {"spec.haml_run_id": run.run_id}
    if how == "reserved launch":  # a reservation-mode worker (qlaunch --reserve) that died
        fw, _ = launchpad.reserve_fw(FWorker(query=query), str(tmp_path))
    else:  # the first step of a checkout, its launch never written
        fw = launchpad._get_a_fw_to_run(query=query, checkout=True)
    held = launchpad.fireworks.find_one({"fw_id": fw.fw_id})
    assert held["state"] == "RESERVED"
    result = run_haml("resume", run.run_id, "--lost-after", "0", "--workdir",
                      str(tmp_path / "resume"), env=env_for(haml_settings), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"stale reservations released: [{fw.fw_id}]" in result.stdout
    states = {f["state"] for f in launchpad.fireworks.find(query, {"state": 1})}
    assert states == {"COMPLETED"}
    database = connect(haml_settings)
    assert cycle_counts(database, haml_settings.DOCS_COLLECTION, run.run_id) == {1: 1, 2: 1}
    assert run_summary(job_store, run.run_id).cycles == 2
    fault_ledger.record(
        f"stale reservation ({how})",
        injected="a Firework of the run left RESERVED by a worker that never started it",
        recovered=True, documents_lost=0,
        outcome="`haml resume RUN_ID --lost-after 0` released it; cycles 1-2 once each",
    )


def test_resume_of_a_run_it_cannot_finish_exits_non_zero(haml_settings, job_store, tmp_path):
    run, launchpad = _submitted(tmp_path, job_store, haml_settings)
    query = {"spec.haml_run_id": run.run_id}
    waiting = launchpad.fireworks.find_one({**query, "state": "WAITING"},
                                           sort=[("fw_id", -1)])
    launchpad.defuse_fw(waiting["fw_id"])
    result = run_haml("resume", run.run_id, "--lost-after", "0", "--workdir",
                      str(tmp_path / "resume"), env=env_for(haml_settings), cwd=tmp_path)
    out = " ".join(result.stdout.split())
    assert result.returncode == 1, out
    assert f"run {run.run_id} is unfinished" in out
    assert f"{waiting['name']} DEFUSED" in out
    assert run_summary(job_store, run.run_id) is None
