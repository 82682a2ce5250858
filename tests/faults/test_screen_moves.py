"""A screen stopped on one machine continues on another with nothing lost.

"The laptop" is an embedded server of this test: ``haml screen`` submits a
screen of three candidates (undoped, Se, O on bulk Li6PS5Cl; the
Lennard-Jones reference and a level-6 MTP, two cycles each), a ``haml worker``
process runs it and is killed (SIGKILL) while a stage of cycle 2 runs. ``haml
db dump`` copies the database, the laptop's server stops and its job folders
are deleted. "The other machine" is a second embedded server on another port
and data directory, reached only through HAML_DB_PORT / HAML_DB_DIR: ``haml db
restore`` starts it and fills it, and ``haml resume --screen NAME
--lost-after 0`` finishes every candidate there.
"""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter

import pytest
import yaml
from fault_helpers import (  # type: ignore[import-not-found]
    env_for,
    haml_command,
    kill_group,
    run_haml,
    start,
    stored_keys,
    wait_for,
    write_spec,
)

from haml_flows.database.server import EmbeddedServer
from haml_flows.database.stores import connect, make_launchpad
from haml_flows.settings import HamlSettings

SCREEN = "moved_screen"
CYCLES = 2
KILLED_STAGES = [f"{stage} {CYCLES}" for stage in ("aimd", "training", "mlpmd")]


def _write_screen(directory):
    """Three candidates: undoped, Se and O on bulk Li6PS5Cl, two cycles each."""
    write_spec(
        directory / "base.yaml", system__builder="li6ps5cl", system__parameters={},
        stop__max_cycles=CYCLES, mlpmd__continue_trusted=False,
        # a training of a few seconds, so the worker is caught inside a stage
        mtp__radial_iterations=60,
    )
    screen = {"name": SCREEN, "base": "base.yaml", "vary": "system.parameters",
              "dopants": ["Se", "O"], "concentrations": [0.25], "seeds": [1],
              "include_undoped": True}
    path = directory / "screen.yaml"
    path.write_text(yaml.safe_dump({"screen": screen}))
    return path


def _cycle_counts(database, collection: str) -> Counter:
    """(run id, cycle) -> how many CycleDocs are stored for it."""
    return Counter(
        (d["output"]["run_id"], d["output"]["cycle"])
        for d in database[collection].find(
            {"output.doc_type": "haml_cycle"}, {"output.run_id": 1, "output.cycle": 1})
    )


def _gridfs_digests(database, bucket: str) -> dict:
    """GridFS file id -> sha256 of its bytes, read through GridFS."""
    import gridfs

    fs = gridfs.GridFS(database, bucket)
    return {f._id: hashlib.sha256(f.read()).hexdigest() for f in fs.find()}


@pytest.mark.slow
def test_a_killed_screen_moves_to_another_machine_and_finishes(
    private_server, tmp_path, unused_port, fault_ledger
):
    laptop_server, laptop = private_server
    screen_file = _write_screen(tmp_path)
    laptop_env = env_for(laptop, OMP_NUM_THREADS="1")
    submitted = run_haml("screen", str(screen_file), env=laptop_env, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "added 3 workflows" in submitted.stdout

    launchpad = make_launchpad(laptop)
    database = connect(laptop)
    collection = laptop.DOCS_COLLECTION
    worker_dir = tmp_path / "laptop_jobs"
    worker = start(haml_command("worker", "--screen", SCREEN, "--sleep", "1"),
                   laptop_env, worker_dir, tmp_path / "worker.log")
    try:
        # mid-cycle: a stage of cycle 2 runs, at least one cycle is stored
        killed = wait_for(
            lambda: _cycle_counts(database, collection) and launchpad.fireworks.find_one(
                {"name": {"$in": KILLED_STAGES}, "state": "RUNNING"},
                {"fw_id": 1, "name": 1, "spec.haml_run_id": 1}),
            timeout=400, what="a stage of cycle 2 to run",
        )
        # past FireWorks' checkout, which holds the workflow lock
        wait_for(lambda: not launchpad.workflows.find_one({"locked": True}),
                 timeout=30, what="the workflow lock to be released")
    finally:
        kill_group(worker)
    assert launchpad.fireworks.find_one({"fw_id": killed["fw_id"]})["state"] == "RUNNING"
    assert launchpad.workflows.count_documents({"state": "COMPLETED"}) < 3
    before_keys = stored_keys(database, collection)
    before_cycles = _cycle_counts(database, collection)
    before_data = _gridfs_digests(database, laptop.DATA_BUCKET)
    assert before_cycles and before_data

    dump_dir = tmp_path / "moved"
    dumped = run_haml("db", "dump", str(dump_dir), env=laptop_env, cwd=tmp_path)
    assert dumped.returncode == 0, dumped.stdout + dumped.stderr
    assert "1 Fireworks were RUNNING" in dumped.stdout
    database.client.close()
    laptop_server.stop()
    shutil.rmtree(worker_dir)  # job folders need not move

    other = HamlSettings(DB_PORT=unused_port(), DB_DIR=tmp_path / "other_machine_db")
    other_env = env_for(other, HAML_DB_PORT=str(other.DB_PORT),
                        HAML_DB_DIR=str(other.DB_DIR), OMP_NUM_THREADS="1")
    other_dir = tmp_path / "other_machine"
    other_dir.mkdir()
    try:
        restored = run_haml("db", "restore", str(dump_dir), env=other_env, cwd=other_dir)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert f"at mongodb://127.0.0.1:{other.DB_PORT}" in restored.stdout

        moved = connect(other)
        killed_run = killed["spec"]["haml_run_id"]
        killed_candidate = moved.haml_screen_candidates.find_one(
            {"run_id": killed_run})["candidate"]

        def resume(*args: str):
            result = run_haml("resume", "--screen", SCREEN, *args, env=other_env,
                              cwd=other_dir, timeout=600)
            return result.returncode, " ".join((result.stdout + result.stderr).split())

        # FireWorks' default --lost-after (4 h): the dead worker's stage is not lost
        # yet, so nothing may claim the screen is ready, let alone finished
        code, out = resume("--no-launch")
        assert code == 1, out
        assert f"left: {killed_candidate}: no Firework READY; left: 1 RUNNING, " in out, out
        code, out = resume()  # runs the others here, then says what is left
        assert code == 1, out
        assert f"screen {SCREEN} is unfinished: 1 of 3 candidates left" in out
        assert f"left: {killed_candidate}: run {killed_run} is unfinished" in out
        assert "by state: 1 RUNNING, " in out, out

        # the SIGKILL can land while the worker holds its workflow's lock; FireWorks
        # would then wait WFLOCK_EXPIRATION_SECS for it: --unlock releases it
        code, out = resume("--lost-after", "0", "--unlock", "--no-launch")
        assert code == 0, out
        assert f"{killed_candidate} ({killed_run}): 1 cycles stored, lost Fireworks " \
               f"rerun: [{killed['fw_id']}]" in out
        assert f"screen {SCREEN}: 1 unfinished candidates ready" in out
        code, out = resume("--lost-after", "0", "--unlock")
        assert code == 0, out
        assert f"screen {SCREEN}: all 3 candidates finished" in out
        code, out = resume()
        assert code == 0 and "nothing to resume" in out, out

        other_launchpad = make_launchpad(other)
        states = Counter(w["state"] for w in other_launchpad.workflows.find(
            {"metadata.screen": SCREEN}, {"state": 1}))
        assert states == {"COMPLETED": 3}
        assert {fw["state"] for fw in other_launchpad.fireworks.find({}, {"state": 1})} \
            == {"COMPLETED"}
        # the killed stage ran again here, its first launch counted as lost
        launches = list(other_launchpad.launches.find({"fw_id": killed["fw_id"]}))
        assert sorted(launch["state"] for launch in launches) == ["COMPLETED", "FIZZLED"]

        run_ids = {w["metadata"]["run_id"] for w in other_launchpad.workflows.find(
            {"metadata.screen": SCREEN}, {"metadata.run_id": 1})}
        assert _cycle_counts(moved, other.DOCS_COLLECTION) == Counter(
            {(run, cycle): 1 for run in run_ids for cycle in range(1, CYCLES + 1)})
        lost = len(before_keys - stored_keys(moved, other.DOCS_COLLECTION))
        assert lost == 0
        after_data = _gridfs_digests(moved, other.DATA_BUCKET)
        assert {k: after_data.get(k) for k in before_data} == before_data

        ranked = run_haml("results", "--screen", SCREEN, "--rank", "similarity",
                          "--json", str(other_dir / "ranked.json"), env=other_env,
                          cwd=other_dir)
        assert ranked.returncode == 0, ranked.stdout + ranked.stderr
        import json

        rows = json.loads((other_dir / "ranked.json").read_text())["rows"]
        assert sorted(r["rank"] for r in rows) == [1, 2, 3]
        assert {r["run_id"] for r in rows} == run_ids
        assert all(r["state"] == "COMPLETED" and r["cycles"] == CYCLES for r in rows)
        moved.client.close()
    finally:
        EmbeddedServer(other).stop()
    fault_ledger.record(
        "screen moved to another machine after a killed worker",
        injected=f"SIGKILL of `haml worker --screen` during '{killed['name']}'; "
                 "`haml db dump`, laptop server stopped, job folders deleted",
        recovered=True,
        documents_lost=lost,
        outcome="`haml db restore` on a second server, `haml resume --screen "
                f"--lost-after 0`: 3 candidates COMPLETED, cycles 1-{CYCLES} once each, ranked",
    )


def test_resume_takes_a_run_or_a_screen(haml_settings, monkeypatch):
    from typer.testing import CliRunner

    from haml_flows.cli.main import app

    monkeypatch.setenv("HAML_DATABASE", haml_settings.DATABASE)
    runner = CliRunner()
    for args, said in [
        (["some-run", "--screen", SCREEN], "error: give a RUN_ID or --screen NAME, not both"),
        ([], "error: give the RUN_ID of a run, or --screen NAME"),
        (["some-run", "--no-launch"], "error: --no-launch goes with --screen NAME"),
    ]:
        result = runner.invoke(app, ["resume", *args])
        assert result.exit_code == 2, result.output
        assert result.output.startswith(said) and result.output.count("\n") == 1

    unknown = runner.invoke(app, ["resume", "--screen", "no_such_screen"])
    assert unknown.exit_code == 1
    assert "error: no screen named 'no_such_screen'" in unknown.output


def test_resume_of_a_screen_starts_no_database(tmp_path, unused_port):
    port = unused_port()
    result = run_haml(
        "resume", "--screen", SCREEN, cwd=tmp_path,
        env=env_for(HamlSettings(), HAML_DB_PORT=str(port), HAML_DB_DIR=str(tmp_path / "db"),
                    HAML_CONFIG_FILE=str(tmp_path / "none.yaml"), HAML_MONGODB_URI=""),
    )
    assert result.returncode == 2
    assert f"no database answers at 127.0.0.1:{port}" in " ".join(result.stdout.split())
    assert not EmbeddedServer(HamlSettings(DB_PORT=port, DB_DIR=tmp_path / "db")).answering()
