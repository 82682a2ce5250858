"""A worker killed mid-cycle (SIGKILL): the run continues, no cycle twice or missing.

The FireWorks tests run a real ``rlaunch`` worker subprocess on the session's
embedded server, kill its process group while the training of cycle 2 runs,
and recover either with FireWorks' own ``lpad detect_lostruns --rerun`` or
with ``haml resume``. The local test kills ``haml run`` itself and resumes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fault_helpers import (  # type: ignore[import-not-found]
    cycle_counts,
    env_for,
    haml_command,
    kill_group,
    run_haml,
    start,
    stored_keys,
    wait_for,
    write_launchpad_files,
    write_spec,
)

from haml_flows.database.stores import connect, make_launchpad
from haml_flows.queries import cycle_docs, run_summary
from haml_flows.runner import prepare_run, submit_to_fireworks

CYCLES = 3
KILLED_STAGE = "training 2"

pytestmark = pytest.mark.slow


def _rlaunch(launchpad_file: Path, fworker_file: Path) -> list[str]:
    rlaunch = shutil.which("rlaunch")
    assert rlaunch is not None, "FireWorks' rlaunch is not on PATH"
    return [
        rlaunch, "-l", str(launchpad_file), "-w", str(fworker_file),
        "rapidfire", "--nlaunches", "0", "--sleep", "0", "--max_loops", "1",
    ]


def _kill_worker_mid_cycle(haml_settings, job_store, tmp_path):
    """Submit a run, start a worker, SIGKILL it while KILLED_STAGE runs."""
    launchpad = make_launchpad(haml_settings)
    launchpad.reset("", require_password=False)
    # every cycle with AIMD and training, and a training long enough (a few
    # seconds) for the worker to be killed inside it
    run = prepare_run(write_spec(
        tmp_path / "spec.yaml", stop__max_cycles=CYCLES, mlpmd__continue_trusted=False,
        mtp__radial_iterations=100,
    ))
    submit_to_fireworks(run, job_store, launchpad)
    lp_file, fw_file = write_launchpad_files(tmp_path, haml_settings, run.run_id)
    env = env_for(haml_settings)
    worker = start(_rlaunch(lp_file, fw_file), env, tmp_path / "worker", tmp_path / "worker.log")

    try:
        wait_for(
            lambda: launchpad.fireworks.find_one({"name": KILLED_STAGE, "state": "RUNNING"}),
            timeout=240, what=f"{KILLED_STAGE} to run",
        )
        # past FireWorks' checkout, whose workflow lock a worker killed inside
        # it leaves behind (`haml resume --unlock` handles that case)
        time.sleep(0.5)
        wait_for(
            lambda: not launchpad.workflows.find_one({"locked": True}),
            timeout=30, what="the workflow lock to be released",
        )
    finally:
        kill_group(worker)
    database = connect(haml_settings)
    before = stored_keys(database, haml_settings.DOCS_COLLECTION)
    killed = launchpad.fireworks.find_one({"name": KILLED_STAGE})
    assert killed["state"] == "RUNNING"  # the dead worker left it claimed
    assert cycle_counts(database, haml_settings.DOCS_COLLECTION, run.run_id) == {1: 1}
    return run, launchpad, database, before, (lp_file, fw_file), env


def _assert_complete_once(run, launchpad, database, before, haml_settings, job_store):
    states = {fw["state"] for fw in launchpad.fireworks.find({}, {"state": 1})}
    assert states == {"COMPLETED"}
    counts = cycle_counts(database, haml_settings.DOCS_COLLECTION, run.run_id)
    assert counts == {cycle: 1 for cycle in range(1, CYCLES + 1)}
    docs = cycle_docs(job_store, run.run_id)
    assert [d.training_set_size for d in docs] == [9 * c for c in range(1, CYCLES + 1)]
    assert all(b.cumulative_fs > a.cumulative_fs for a, b in zip(docs, docs[1:]))
    assert run_summary(job_store, run.run_id).cycles == CYCLES
    after = stored_keys(database, haml_settings.DOCS_COLLECTION)
    return len(before - after)


def test_lost_worker_rerun_by_lpad(haml_settings, job_store, tmp_path, fault_ledger):
    run, launchpad, database, before, (lp_file, fw_file), env = _kill_worker_mid_cycle(
        haml_settings, job_store, tmp_path
    )
    lpad = shutil.which("lpad")
    detect = subprocess.run(
        [lpad, "-l", str(lp_file), "detect_lostruns", "--time", "0", "--rerun"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert detect.returncode == 0, detect.stderr
    killed = launchpad.fireworks.find_one({"name": KILLED_STAGE})
    assert killed["state"] == "READY"
    subprocess.run(
        _rlaunch(lp_file, fw_file), env=env, cwd=tmp_path / "worker", check=True,
        capture_output=True, timeout=600,
    )

    lost = _assert_complete_once(run, launchpad, database, before, haml_settings, job_store)
    assert lost == 0
    fault_ledger.record(
        "worker killed mid-cycle (FireWorks)",
        injected=f"SIGKILL of an rlaunch worker during '{KILLED_STAGE}'",
        recovered=True,
        documents_lost=lost,
        outcome=f"`lpad detect_lostruns --rerun` + rlaunch: cycles 1-{CYCLES} once each",
    )


def test_lost_worker_resumed_by_haml(haml_settings, job_store, tmp_path, fault_ledger):
    run, launchpad, database, before, _, env = _kill_worker_mid_cycle(
        haml_settings, job_store, tmp_path
    )
    result = run_haml(
        "resume", run.run_id, "--lost-after", "0", "--workdir", str(tmp_path / "resume"),
        env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lost Fireworks rerun: [" in result.stdout
    assert f"finished: {CYCLES} cycles" in result.stdout

    lost = _assert_complete_once(run, launchpad, database, before, haml_settings, job_store)
    assert lost == 0
    fault_ledger.record(
        "worker killed mid-cycle (FireWorks)",
        injected=f"SIGKILL of an rlaunch worker during '{KILLED_STAGE}'",
        recovered=True,
        documents_lost=lost,
        outcome=f"`haml resume RUN_ID`: cycles 1-{CYCLES} once each",
    )


def test_killed_local_run_resumed(haml_settings, job_store, tmp_path, fault_ledger):
    spec = write_spec(
        tmp_path / "spec.yaml", stop__max_cycles=CYCLES, mlpmd__continue_trusted=False
    )
    env = env_for(haml_settings)
    log = tmp_path / "run.log"
    process = start(
        haml_command("run", str(spec), "--workdir", str(tmp_path / "work")),
        env, tmp_path, log,
    )
    database = connect(haml_settings)
    collection = haml_settings.DOCS_COLLECTION
    try:
        run_id = wait_for(
            lambda: (m := re.search(r"run (lj_small-[0-9a-f]+)", log.read_text())) and m[1],
            timeout=120, what="the run id",
        )
        # kill once cycle 2 has started: its AIMD output is stored, its record is not
        wait_for(
            lambda: database[collection].find_one({"name": "aimd 2"}),
            timeout=240, what="cycle 2 to start",
        )
    finally:
        kill_group(process)
    before = stored_keys(database, collection)
    assert cycle_counts(database, collection, run_id) == {1: 1}

    result = run_haml(
        "resume", run_id, "--workdir", str(tmp_path / "work"), env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resuming {run_id} locally after cycle 1" in result.stdout

    counts = cycle_counts(database, collection, run_id)
    assert counts == {cycle: 1 for cycle in range(1, CYCLES + 1)}
    docs = cycle_docs(job_store, run_id)
    assert [d.training_set_size for d in docs] == [9 * c for c in range(1, CYCLES + 1)]
    # the AIMD of cycle 2 ran again under the same job uuid: replaced, not added
    assert database[collection].count_documents({"name": "aimd 2"}) == 1
    assert run_summary(job_store, run_id).cycles == CYCLES
    lost = len(before - stored_keys(database, collection))
    assert lost == 0
    fault_ledger.record(
        "local run killed mid-cycle",
        injected="SIGKILL of `haml run` after cycle 2's AIMD",
        recovered=True,
        documents_lost=lost,
        outcome=f"`haml resume RUN_ID` from cycle 2: cycles 1-{CYCLES} once each",
    )


def test_worker_killed_inside_a_workflow_update(
    haml_settings, job_store, tmp_path, fault_ledger
):
    """SIGKILL while the worker holds FireWorks' workflow lock; resume --unlock."""
    launchpad = make_launchpad(haml_settings)
    launchpad.reset("", require_password=False)
    run = prepare_run(write_spec(
        tmp_path / "spec.yaml", stop__max_cycles=2, mlpmd__continue_trusted=False
    ))
    submit_to_fireworks(run, job_store, launchpad)
    lp_file, fw_file = write_launchpad_files(tmp_path, haml_settings, run.run_id)
    env = env_for(haml_settings)
    worker = start(_rlaunch(lp_file, fw_file), env, tmp_path / "worker", tmp_path / "worker.log")

    def frozen_inside_lock() -> bool:
        # freeze the worker the moment its lock is seen; kill it only if it
        # still holds the lock while frozen, else let it go on
        if not launchpad.workflows.find_one({"locked": True}, {"_id": 1}):
            return False
        os.killpg(worker.pid, signal.SIGSTOP)
        if launchpad.workflows.find_one({"locked": True}, {"_id": 1}):
            return True
        os.killpg(worker.pid, signal.SIGCONT)
        return False

    try:
        wait_for(frozen_inside_lock, timeout=240, poll=0.002, what="the workflow lock")
    finally:
        kill_group(worker)
    database = connect(haml_settings)
    before = stored_keys(database, haml_settings.DOCS_COLLECTION)
    assert launchpad.workflows.find_one({"locked": True})  # left behind by the dead worker

    result = run_haml(
        "resume", run.run_id, "--lost-after", "0", "--unlock",
        "--workdir", str(tmp_path / "resume"), env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not launchpad.workflows.find_one({"locked": True})
    states = {fw["state"] for fw in launchpad.fireworks.find({}, {"state": 1})}
    assert states == {"COMPLETED"}
    assert cycle_counts(database, haml_settings.DOCS_COLLECTION, run.run_id) == {1: 1, 2: 1}
    assert run_summary(job_store, run.run_id).cycles == 2
    lost = len(before - stored_keys(database, haml_settings.DOCS_COLLECTION))
    assert lost == 0
    fault_ledger.record(
        "worker killed inside a FireWorks workflow update",
        injected="SIGKILL of an rlaunch worker while it held the workflow lock",
        recovered=True,
        documents_lost=lost,
        outcome="`haml resume RUN_ID --unlock`: lock released, cycles 1-2 once each",
    )
