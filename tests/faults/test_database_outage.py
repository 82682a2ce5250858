"""The database goes away during a run: bounded retries, then a clear stop.

A real stop (SIGTERM) and restart of the test's own embedded server while
``haml run`` works in a subprocess.
"""

from __future__ import annotations

import re
import time

import pytest
from fault_helpers import (  # type: ignore[import-not-found]
    cycle_counts,
    haml_command,
    run_haml,
    start,
    stored_keys,
    wait_for,
    write_spec,
)

from haml_flows.database.stores import connect
from haml_flows.schemas import CycleDoc

CYCLES = 3

pytestmark = pytest.mark.slow


def _env(settings, retry_seconds: float) -> dict:
    import os

    env = dict(os.environ)
    env.update(
        HAML_DB_RETRY_SECONDS=str(retry_seconds),
        HAML_DB_RETRY_INITIAL_DELAY="0.2",
        HAML_DB_RETRY_MAX_DELAY="1",
        HAML_SERVER_SELECTION_TIMEOUT_MS="1000",
    )
    return env


def _start_run(tmp_path, env):
    spec = write_spec(tmp_path / "spec.yaml", stop__max_cycles=CYCLES)
    log = tmp_path / "run.log"
    process = start(
        haml_command("run", str(spec), "--workdir", str(tmp_path / "work")),
        env, tmp_path, log,
    )
    return process, log


def _wait_for_first_cycle(database, collection, log):
    run_id = wait_for(
        lambda: (m := re.search(r"run (lj_small-[0-9a-f]+)", log.read_text())) and m[1],
        timeout=120, what="the run id",
    )
    wait_for(
        lambda: cycle_counts(database, collection, run_id).get(1),
        timeout=240, what="cycle 1 to be stored",
    )
    return run_id


def _stored_cycles_are_whole(database, collection, run_id) -> int:
    """Validate every stored CycleDoc of the run; return how many there are."""
    docs = list(
        database[collection].find({"output.doc_type": "haml_cycle", "output.run_id": run_id})
    )
    for doc in docs:
        CycleDoc.model_validate(doc["output"])
    return len(docs)


def test_short_outage_is_ridden_out(private_server, tmp_path, fault_ledger):
    server, settings = private_server
    env = _env(settings, retry_seconds=120)
    process, log = _start_run(tmp_path, env)
    database = connect(settings)
    collection = settings.DOCS_COLLECTION
    try:
        run_id = _wait_for_first_cycle(database, collection, log)
        before = stored_keys(database, collection)
        assert server.stop()
        time.sleep(6)
        server.start()
        assert process.wait(timeout=600) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert "unavailable while" in output  # the outage hit the run's store calls
    assert cycle_counts(database, collection, run_id) == {c: 1 for c in range(1, CYCLES + 1)}
    assert _stored_cycles_are_whole(database, collection, run_id) == CYCLES
    assert f"finished: {CYCLES} cycles" in output
    lost = len(before - stored_keys(database, collection))
    assert lost == 0
    fault_ledger.record(
        "database outage, 6 s",
        injected="stop (SIGTERM) and restart of the database server during a run",
        recovered=True,
        documents_lost=lost,
        outcome=f"store calls retried with backoff; run finished, cycles 1-{CYCLES} once each",
    )


def test_long_outage_stops_cleanly_then_resumes(private_server, tmp_path, fault_ledger):
    server, settings = private_server
    env = _env(settings, retry_seconds=3)
    process, log = _start_run(tmp_path, env)
    database = connect(settings)
    collection = settings.DOCS_COLLECTION
    try:
        run_id = _wait_for_first_cycle(database, collection, log)
        before = stored_keys(database, collection)
        assert server.stop()
        code = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert code == 3, output
    assert "did not answer while" in output and "haml resume" in output
    assert "Traceback" not in output
    server.start()
    stored = _stored_cycles_are_whole(database, collection, run_id)
    assert 1 <= stored < CYCLES
    assert len(before - stored_keys(database, collection)) == 0

    result = run_haml(
        "resume", run_id, "--workdir", str(tmp_path / "work"), env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert cycle_counts(database, collection, run_id) == {c: 1 for c in range(1, CYCLES + 1)}
    assert _stored_cycles_are_whole(database, collection, run_id) == CYCLES
    lost = len(before - stored_keys(database, collection))
    assert lost == 0
    fault_ledger.record(
        "database outage beyond the retry budget",
        injected="stop of the database server for longer than HAML_DB_RETRY_SECONDS (3 s)",
        recovered=True,
        documents_lost=lost,
        outcome="run stopped with exit code 3 and a message naming the outage; "
        f"after restart `haml resume` finished cycles 1-{CYCLES} once each",
    )
