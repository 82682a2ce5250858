"""The HPC path on a real SLURM cluster: haml submit, qlaunch, scancel, lpad.

Each test adds a real GFN1-xTB + motep run (tests/hpc/xtb_small.yaml, 2
cycles) with ``haml submit`` and runs the lines it printed: FireWorks'
``qlaunch`` with the adapted docs/my_qadapter_slurm.yaml submits batch jobs
to the local slurmctld, whose ``rlaunch rapidfire`` runs the run's jobs
against the session's embedded database. The second test cancels the batch
job with ``scancel`` in the middle of cycle 2 and recovers with the printed
``lpad detect_lostruns --rerun`` line and the next ``qlaunch``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from haml_flows.database.stores import connect, make_launchpad
from haml_flows.queries import run_summary

SPEC = Path(__file__).parent / "xtb_small.yaml"
CYCLES = 2
#: the stages of cycle 2; the batch job is cancelled while one of them runs
CYCLE_2_STAGES = ("aimd 2", "training 2", "mlpmd 2", "audit 2")

pytestmark = pytest.mark.slow


def _submit(site) -> tuple[str, dict[str, list[str]]]:
    """``haml submit`` the spec with the site's files; the run id and the printed commands."""
    result = subprocess.run(
        [sys.executable, "-m", "haml_flows.cli.main", "submit", str(SPEC),
         "-l", str(site.launchpad), "-w", str(site.fworker), "-q", str(site.qadapter)],
        env=site.env, cwd=site.directory, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = re.search(r"^run (\S+) added to the LaunchPad", result.stdout, re.M)[1]
    commands = {}
    for line in result.stdout.splitlines():
        name = line.split(" ", 3)[2] if line.startswith("  ") else ""
        if name in ("qlaunch", "rlaunch", "lpad"):
            commands[name] = shlex.split(line)
    assert set(commands) == {"qlaunch", "rlaunch", "lpad"}, result.stdout
    return run_id, commands


def _states(launchpad, run_id: str) -> dict[str, str]:
    fireworks = launchpad.fireworks.find({"spec.haml_run_id": run_id}, {"name": 1, "state": 1})
    return {fw["name"]: fw["state"] for fw in fireworks}


def _cycle_counts(database, collection: str, run_id: str) -> Counter:
    docs = database[collection].find(
        {"output.doc_type": "haml_cycle", "output.run_id": run_id}, {"output.cycle": 1})
    return Counter(d["output"]["cycle"] for d in docs)


def _batch_outputs(site) -> str:
    """The end of every batch job's output and error file, for a failure message."""
    parts = []
    for path in sorted(site.directory.glob("launches/block_*/launcher_*/haml-*")):
        parts.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace")
                                                       .splitlines()[-15:]))
    return "\n".join(parts) or "(no batch job output)"


def _batch_jobs(site) -> list[Path]:
    """The launcher directories qlaunch made, one per batch job it submitted."""
    return sorted(site.directory.glob("launches/block_*/launcher_*"))


class _QueueLauncher:
    """The printed qlaunch line, started as a user starts it on a login node."""

    def __init__(self, site, command: list[str]) -> None:
        self.site, self.command = site, command
        self.process: subprocess.Popen | None = None
        self.starts = 0
        (site.directory / "launches").mkdir(exist_ok=True)

    def start(self) -> None:
        log = (self.site.directory / "qlaunch.log").open("ab")
        self.process = subprocess.Popen(
            self.command, env=self.site.env, cwd=self.site.directory / "launches",
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        self.starts += 1

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """End qlaunch (it only sleeps between its queue checks); batch jobs stay."""
        if self.running():
            self.process.terminate()
            self.process.wait(timeout=30)


def _run_to_completion(cluster, site, qlaunch: _QueueLauncher, launchpad, run_id: str,
                       timeout: float = 600) -> None:
    """qlaunch until every Firework of the run is COMPLETED, as a user would loop.

    qlaunch ends on its own when no job is ready or waiting behind a running
    one; while the run is unfinished and no batch job is queued, it is
    started again. A FIZZLED job or a job left RUNNING with no batch job fails.
    """
    qlaunch.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            states = _states(launchpad, run_id)
            if states and set(states.values()) == {"COMPLETED"}:
                return
            fizzled = [name for name, state in states.items() if state == "FIZZLED"]
            assert not fizzled, f"FIZZLED: {fizzled}\n{_batch_outputs(site)}"
            if not qlaunch.running() and not cluster.jobs():
                stuck = [name for name, state in states.items() if state == "RUNNING"]
                assert not stuck, f"RUNNING without a batch job: {stuck}\n{_batch_outputs(site)}"
                assert qlaunch.starts < 5, f"qlaunch started {qlaunch.starts} times: {states}"
                qlaunch.start()
            assert time.monotonic() < deadline, (
                f"not COMPLETED after {timeout} s: {states}\n{_batch_outputs(site)}\n"
                f"{cluster.log_tail()}")
            time.sleep(1)
    finally:
        qlaunch.stop()


def _assert_finished_once(site, haml_settings, job_store, launchpad, run_id: str) -> None:
    """Every Firework COMPLETED by a batch job's worker, every CycleDoc stored once."""
    assert set(_states(launchpad, run_id).values()) == {"COMPLETED"}
    database = connect(haml_settings)
    counts = _cycle_counts(database, haml_settings.DOCS_COLLECTION, run_id)
    assert counts == {cycle: 1 for cycle in range(1, CYCLES + 1)}, counts
    assert run_summary(job_store, run_id).cycles == CYCLES
    # the jobs ran in the batch jobs' launcher directories, by the adapter's rlaunch
    launches = list(launchpad.launches.find({"fw_id": {"$in": launchpad.get_fw_ids(
        query={"spec.haml_run_id": run_id})}, "state": "COMPLETED"}))
    assert launches
    batch_dirs = [str(d) for d in _batch_jobs(site)]
    for launch in launches:
        assert launch["fworker"]["name"] == site.fworker_name
        assert any(launch["launch_dir"].startswith(d) for d in batch_dirs), launch["launch_dir"]


def test_submitted_run_completes_in_slurm_batch_jobs(
    slurm_cluster, cluster_site, haml_settings, job_store
):
    started = time.monotonic()
    launchpad = make_launchpad(haml_settings)
    run_id, commands = _submit(cluster_site)
    # added, not launched: nothing ran and nothing is queued
    states = _states(launchpad, run_id)
    assert states and set(states.values()) <= {"READY", "WAITING"}, states
    assert not slurm_cluster.jobs()
    # the run indexes exist before any job stores a document
    keys = [list(ix["key"]) for ix in connect(haml_settings)[
        haml_settings.DOCS_COLLECTION].list_indexes()]
    assert ["output.doc_type", "output.run_id"] in keys

    qlaunch = _QueueLauncher(cluster_site, commands["qlaunch"])
    _run_to_completion(slurm_cluster, cluster_site, qlaunch, launchpad, run_id)

    _assert_finished_once(cluster_site, haml_settings, job_store, launchpad, run_id)
    # qlaunch -m 1: one batch job ran the whole run, one job after the other
    assert len(_batch_jobs(cluster_site)) == 1, _batch_jobs(cluster_site)
    print(f"submitted run completed by {len(_batch_jobs(cluster_site))} batch job in "
          f"{time.monotonic() - started:.0f} s")


def test_cancelled_batch_job_recovered_by_lpad_and_qlaunch(
    slurm_cluster, cluster_site, haml_settings, job_store
):
    started = time.monotonic()
    launchpad = make_launchpad(haml_settings)
    database = connect(haml_settings)
    run_id, commands = _submit(cluster_site)
    qlaunch = _QueueLauncher(cluster_site, commands["qlaunch"])
    qlaunch.start()
    deadline = time.monotonic() + 400
    killed = None
    try:
        while killed is None:
            assert time.monotonic() < deadline, f"cycle 2 never ran: {_states(launchpad, run_id)}"
            states = _states(launchpad, run_id)
            running = [n for n in CYCLE_2_STAGES if states.get(n) == "RUNNING"]
            # not while FireWorks holds the workflow lock (a job killed inside it
            # leaves the lock behind, which `haml resume --unlock` handles)
            if running and not launchpad.workflows.find_one({"locked": True}):
                killed = running[0]
            else:
                time.sleep(0.1)
        qlaunch.stop()  # the login session that ran qlaunch is gone too
        (job_id,) = slurm_cluster.jobs()
        slurm_cluster.scancel(job_id)
        end = time.monotonic() + 60
        while slurm_cluster.jobs() and time.monotonic() < end:
            time.sleep(0.5)
        assert not slurm_cluster.jobs(), "the cancelled batch job did not end"
    finally:
        qlaunch.stop()

    # the dead job's stage is left RUNNING: FireWorks cannot know it died
    assert launchpad.fireworks.find_one({"spec.haml_run_id": run_id, "name": killed})[
        "state"] == "RUNNING"
    assert _cycle_counts(database, haml_settings.DOCS_COLLECTION, run_id) == {1: 1}
    stored_before = {(d["uuid"], d["index"]) for d in database[
        haml_settings.DOCS_COLLECTION].find({}, {"uuid": 1, "index": 1})}

    detect = subprocess.run(commands["lpad"], env=cluster_site.env, cwd=cluster_site.directory,
                            capture_output=True, text=True, timeout=120)
    assert detect.returncode == 0, detect.stdout + detect.stderr
    assert launchpad.fireworks.find_one({"spec.haml_run_id": run_id, "name": killed})[
        "state"] == "READY"

    _run_to_completion(slurm_cluster, cluster_site, qlaunch, launchpad, run_id)

    _assert_finished_once(cluster_site, haml_settings, job_store, launchpad, run_id)
    assert len(_batch_jobs(cluster_site)) == 2, _batch_jobs(cluster_site)
    stored_after = {(d["uuid"], d["index"]) for d in database[
        haml_settings.DOCS_COLLECTION].find({}, {"uuid": 1, "index": 1})}
    assert stored_before <= stored_after, "documents stored before the cancel were lost"
    print(f"batch job cancelled during {killed!r}; recovered and completed in "
          f"{time.monotonic() - started:.0f} s")
