"""bench/screen_scale.py on a screen that real workers ran, stopped and finished.

``haml screen`` submits two candidates (undoped and Se-doped bulk Li6PS5Cl,
the Lennard-Jones reference, a level-6 MTP, geometry optimization and audits
on, three cycles each) to the session's embedded server. A ``haml worker`` is
SIGKILLed while a stage of cycle 2 runs, as a deadline stops a screen, and
the script measures the stopped screen; ``haml resume --screen --no-launch``
and a second worker, under ``/usr/bin/time -v`` when it is installed
(Debian's ``time``; .ci/run installs it), finish it, and the script measures
it again. Its figures are checked against the stored documents, FireWorks'
launch records and the worker's log, each recomputed here by another route
than the script's (raw collections, the CycleDocs' job uuids, numpy's fit).
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench/screen_scale.py"
sys.path.insert(0, str(ROOT / "tests/faults"))
from fault_helpers import (  # noqa: E402
    env_for,
    haml_command,
    kill_group,
    run_haml,
    start,
    wait_for,
    write_spec,
)

SCREEN = "scale_screen"
CYCLES = 3
TIME = Path("/usr/bin/time")
AFTER_AIMD_2 = [f"{stage} 2" for stage in ("training", "mlpmd", "audit", "record")]


@pytest.fixture(scope="module")
def bench(load_bench_script):
    return load_bench_script("screen_scale")


@pytest.fixture(scope="module")
def screen_run(embedded_db, tmp_path_factory, bench):
    """The screen stopped by a killed worker (measured then), then run to its end by
    a second worker, on a database of its own."""
    from haml_flows.cli._common import clients
    from haml_flows.database.stores import connect
    from haml_flows.settings import HamlSettings

    settings = HamlSettings(DATABASE=f"scale_{uuid.uuid4().hex[:10]}")
    directory = tmp_path_factory.mktemp("screen_scale")
    write_spec(directory / "base.yaml", system__builder="li6ps5cl", system__parameters={},
               stop__max_cycles=CYCLES, audit__enabled=True, optimization__enabled=True)
    screen = {"name": SCREEN, "base": "base.yaml", "vary": "system.parameters",
              "dopants": ["Se"], "concentrations": [0.25], "seeds": [1],
              "include_undoped": True}
    (directory / "screen.yaml").write_text(yaml.safe_dump({"screen": screen}))
    env = env_for(settings, OMP_NUM_THREADS="1")
    submitted = run_haml("screen", str(directory / "screen.yaml"), env=env, cwd=directory)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    db = connect(settings)

    worker = start(haml_command("worker", "--screen", SCREEN, "--sleep", "1"), env,
                   directory / "first", directory / "first.log")
    try:
        # a stage after cycle 2's AIMD is running (its launch claimed, not between two
        # Fireworks), past FireWorks' checkout, which holds the workflow lock
        try:
            wait_for(lambda: _worker_alive(worker)
                     and db.outputs.find_one({"metadata.stage": "aimd", "metadata.cycle": 2})
                     and db.fireworks.find_one({"name": {"$in": AFTER_AIMD_2},
                                                "state": "RUNNING"}),
                     timeout=600, what="a stage after the AIMD of cycle 2 to run")
            wait_for(lambda: not db.workflows.find_one({"locked": True}), timeout=30,
                     what="the workflow lock to be released")
        except AssertionError as error:  # say where the screen stood, not only that it timed out
            states = sorted((fw["name"], fw["state"]) for fw in db.fireworks.find())
            raise AssertionError(f"{error}; Fireworks: {states}; worker log ends:\n"
                                 f"{(directory / 'first.log').read_text()[-2000:]}") from None
    finally:
        kill_group(worker)
    stopped = bench.measure(clients(settings), SCREEN)
    stored_when_stopped = {s.run_id: _stored(db, s.run_id) for s in stopped[0]}
    recorded = {d["uuid"] for d in db.outputs.find({"output.doc_type": "haml_cycle"})}

    resumed = run_haml("resume", "--screen", SCREEN, "--lost-after", "0", "--no-launch",
                       env=env, cwd=directory)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    command = haml_command("worker", "--screen", SCREEN, "--sleep", "1")
    if TIME.exists():
        command = [str(TIME), "-v", *command]
    log = directory / "worker.log"
    (directory / "second").mkdir()
    with log.open("w") as out:  # the worker's own lines, then time's report
        finished = subprocess.run(command, cwd=directory / "second", env=env, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=600)
    assert finished.returncode == 0, log.read_text()[-3000:]
    yield SimpleNamespace(settings=settings, env=env, log=log, dir=directory, db=db,
                          stopped=stopped, stored_when_stopped=stored_when_stopped,
                          recorded_when_stopped=recorded)
    db.client.drop_database(settings.DATABASE)
    db.client.close()


def _worker_alive(worker) -> bool:
    """True while the first worker runs; its exit before the kill fails the set-up at once."""
    if worker.poll() is not None:
        raise AssertionError(f"the first worker exited ({worker.returncode}) before the kill")
    return True


def _time(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _stored(db, run_id: str) -> dict:
    """A run's figures recomputed from the raw collections, as far as its cycles are
    recorded (a running cycle's finished stages are not counted)."""
    import bson

    cycles = sorted(db.outputs.find({"output.doc_type": "haml_cycle", "output.run_id": run_id}),
                    key=lambda d: d["output"]["cycle"])
    cycles = [d["output"] for d in cycles]
    last = cycles[-1]["cycle"]
    finished = db.outputs.find_one({"output.doc_type": "haml_run_summary",
                                    "output.run_id": run_id}) is not None
    run = db.outputs.find_one({"output.doc_type": "haml_run", "output.run_id": run_id})["output"]
    audits = {d["metadata"]["cycle"]: d["output"]["cost"] for d in db.outputs.find(
        {"output.doc_type": "mlpmd_audit", "metadata.run_id": run_id})
        if d["metadata"]["cycle"] <= last}
    assert sorted(audits) == [c["cycle"] for c in cycles if c.get("audit_job")]
    stage_cpu = {k: sum(c[f"{k}_cost"]["cpu_seconds"] for c in cycles)
                 for k in ("aimd", "training", "mlpmd")}
    stage_wall = sum(c[f"{k}_cost"]["wall_seconds"] for c in cycles
                     for k in ("aimd", "training", "mlpmd"))
    stepped = [c for c in cycles if c["mlpmd_steps"] > 0]
    documents = list(db.outputs.find({"metadata.run_id": run_id}))
    job_uuids = {c[k] for c in cycles for k in ("aimd_job", "training_job", "mlpmd_job",
                                                   "audit_job") if c.get(k)}
    files = list(db["outputs_data.files"].find({"metadata.job_uuid": {"$in": list(job_uuids)}}))
    cycle_of = {fw["fw_id"]: fw["spec"]["cycle"]
                for fw in db.fireworks.find({"spec.haml_run_id": run_id})}
    launches = list(db.launches.find({"fw_id": {"$in": list(cycle_of)}}))
    completed = [lau for lau in launches if lau["state"] == "COMPLETED"]
    if finished:  # every Firework completed once, whatever was lost on the way
        assert sorted(lau["fw_id"] for lau in completed) == sorted(cycle_of)
    busy = sum((_time(lau["time_end"]) - _time(lau["time_start"])).total_seconds()
               for lau in completed if finished or cycle_of[lau["fw_id"]] <= last)
    audit_wall = sum(a["wall_seconds"] for a in audits.values())
    optimization = run["optimization_cost"]
    trained = [(c["training_set_size"], c["training_cost"]["cpu_seconds"])
               for c in cycles if not c.get("continued")]
    return {
        "cycles": cycles,
        "finished": finished,
        "cpu": {**stage_cpu, "audit": sum(a["cpu_seconds"] for a in audits.values()),
                "optimization": optimization["cpu_seconds"]},
        "wall": stage_wall + audit_wall + optimization["wall_seconds"],
        "orchestration": busy - stage_wall - audit_wall - optimization["wall_seconds"],
        "busy": busy,
        "not_completed": len(launches) - len(completed),
        "total_ps": cycles[-1]["cumulative_fs"] / 1000,
        "aimd_ps": sum(c["aimd_fs"] for c in cycles) / 1000,
        "us_per_atom_step": 1e6 * sum(c["mlpmd_cost"]["cpu_seconds"] for c in stepped)
        / (sum(c["mlpmd_steps"] for c in stepped) * run["n_atoms"]),
        "trained": trained,
        "documents": len(documents),
        "document_bytes": sum(len(bson.encode(d)) for d in documents),
        "file_bytes": sum(f["length"] for f in files),
        "files": len(files),
    }


def _check_costs(scale, stored: dict) -> None:
    """The script's cost figures of one candidate against those recomputed."""
    assert scale.finished == stored["finished"]
    assert scale.cycles == len(stored["cycles"])
    assert stored["cpu"]["audit"] > 0 and stored["cpu"]["optimization"] > 0
    for part, cpu in stored["cpu"].items():
        assert scale.cpu_s[part] == pytest.approx(cpu), part
    # the stages' CPU is the CycleDocs' stage costs, the audits' and the optimization's
    assert scale.measured_cpu_s == pytest.approx(sum(stored["cpu"].values()))
    assert scale.measured_wall_s == pytest.approx(stored["wall"])
    assert 0 < scale.cpu_s["orchestration"] < stored["busy"]
    assert scale.cpu_s["orchestration"] == pytest.approx(stored["orchestration"])
    assert scale.unfinished_launches == stored["not_completed"]
    assert scale.total_ps == pytest.approx(stored["total_ps"])
    aimd_cpu_h_per_ps = stored["cpu"]["aimd"] / 3600 / stored["aimd_ps"]
    assert scale.cost["aimd_cpu_h_per_ps"] == pytest.approx(aimd_cpu_h_per_ps)
    all_cpu = sum(stored["cpu"].values()) + stored["orchestration"]
    assert scale.haml_all_cpu_h_per_ps == pytest.approx(all_cpu / 3600 / stored["total_ps"])
    assert scale.speedup_all == pytest.approx(
        aimd_cpu_h_per_ps / (all_cpu / 3600 / stored["total_ps"]))
    assert scale.us_per_atom_step == pytest.approx(stored["us_per_atom_step"])
    assert scale.training == stored["trained"]


@pytest.mark.slow
def test_a_stopped_screen_counts_only_recorded_cycles(screen_run):
    """At the kill, cycle 2 of one candidate had run its AIMD, its next stage was running:
    neither counts (no CycleDoc yet), the lost launch is reported, cycle 1 is measured."""
    scales, _ = screen_run.stopped
    killed = [s for s in scales if not s.finished and s.unfinished_launches]
    assert len(killed) == 1, [(s.label, s.cycles, s.unfinished_launches) for s in scales]
    (scale,) = killed
    assert scale.cycles == 1
    stored = screen_run.stored_when_stopped[scale.run_id]
    assert stored["not_completed"] == 1
    _check_costs(scale, stored)
    for other in scales:
        _check_costs(other, screen_run.stored_when_stopped[other.run_id])


@pytest.mark.slow
def test_figures_equal_the_stored_documents(bench, screen_run):
    from haml_flows.cli._common import clients

    db = screen_run.db
    scales, left = bench.measure(clients(screen_run.settings), SCREEN)
    assert left == []
    run_ids = sorted(c["run_id"] for c in db.haml_screen_candidates.find({"screen": SCREEN}))
    assert sorted(s.run_id for s in scales) == run_ids and len(run_ids) == 2
    for scale in scales:
        stored = _stored(db, scale.run_id)
        assert stored["finished"] and scale.cycles == CYCLES
        _check_costs(scale, stored)
        assert [c.cycle for c in scale.cycles_launches] == list(range(1, CYCLES + 1))
        per_cycle = sum(c.orchestration_s for c in scale.cycles_launches)
        assert 0 < per_cycle < scale.cpu_s["orchestration"]  # start run, last cycle job outside
        xs, ys = zip(*stored["trained"], strict=True)
        assert bench.fit_slope(scale.training).per_100_frames == pytest.approx(
            100 * np.polyfit(xs, ys, 1)[0])
        assert scale.storage.documents == stored["documents"]
        assert scale.storage.document_bytes == stored["document_bytes"]
        assert scale.storage.files == stored["files"] > 0
        assert scale.storage.file_bytes == stored["file_bytes"]
    # nothing of the database left uncounted: it holds this screen alone
    assert sum(s.storage.documents for s in scales) == db.outputs.count_documents({})
    bucket = sum(f["length"] for f in db["outputs_data.files"].find({}, {"length": 1}))
    assert sum(s.storage.file_bytes for s in scales) == bucket


@pytest.mark.slow
def test_worker_memory_and_cpu_from_its_time_log(bench, screen_run):
    if not TIME.exists():
        pytest.skip("/usr/bin/time is not installed (Debian package time)")
    text = screen_run.log.read_text()
    assert "Rocket finished" in text.split("Command being timed")[0]  # the worker's own lines
    usage = bench.worker_usage(screen_run.log)
    assert usage.max_rss_kb == int(re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                                             text).group(1))
    assert usage.max_rss_kb > 50_000 and usage.ended == "0"
    assert "haml_flows.cli.main worker --screen" in usage.command
    # the stages of the cycles recorded after the kill ran inside this worker: its CPU
    # holds theirs
    later = [d["output"] for d in screen_run.db.outputs.find({"output.doc_type": "haml_cycle"})
             if d["uuid"] not in screen_run.recorded_when_stopped]
    assert later
    stages = sum(c[f"{k}_cost"]["cpu_seconds"] for c in later
                 for k in ("aimd", "training", "mlpmd"))
    assert usage.user_s + usage.system_s >= stages


@pytest.mark.slow
def test_script_prints_its_section_and_leaves_docs_alone(screen_run, tmp_path, bench):
    figures = tmp_path / "figures"
    before = {p: p.stat().st_mtime for p in (ROOT / "docs/figures").glob("screen_scale_*")}
    logs = ["--time-logs", str(screen_run.log)] if TIME.exists() else []
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--screen", SCREEN, *logs, "--no-write",
         "--figures", str(figures)],
        env=screen_run.env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert bench.HEADING in done.stdout
    assert "python bench/screen_scale.py --screen scale_screen" in done.stdout
    assert "Largest share at this size" in done.stdout
    if logs:
        assert "Peak memory of a worker: **" in done.stdout
    for name in bench.FIGURES.values():
        assert (figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    after = {p: p.stat().st_mtime for p in (ROOT / "docs/figures").glob("screen_scale_*")}
    assert after == before


def test_no_database_is_started(tmp_path, unused_port, embedded_db):
    """With nothing at the configured address it names the address and starts no server."""
    port = unused_port()
    env = env_for(embedded_db, HAML_DB_PORT=str(port), HAML_DB_DIR=str(tmp_path / "db"))
    done = subprocess.run([sys.executable, str(SCRIPT), "--no-write"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"127.0.0.1:{port}" in done.stdout + done.stderr
    assert not (tmp_path / "db").exists()


def test_time_log_parsing_and_growth_verdict(bench, tmp_path):
    log = tmp_path / "w.log"
    log.write_text(
        "worker output\n\tCommand being timed: \"haml worker\"\n"
        "\tUser time (seconds): 3600.50\n\tSystem time (seconds): 12.25\n"
        "\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.5\n"
        "\tMaximum resident set size (kbytes): 812345\n\tExit status: 0\n"
    )
    usage = bench.worker_usage(log)
    assert (usage.max_rss_kb, usage.user_s, usage.system_s) == (812345, 3600.5, 12.25)
    assert usage.elapsed_s == pytest.approx(3723.5)
    assert usage.ended == "0"
    log.write_text(log.read_text().replace("worker output\n", "Command terminated by signal 15\n"))
    assert bench.worker_usage(log).ended == "signal 15"  # a worker stopped at the deadline
    (tmp_path / "empty.log").write_text("no report\n")
    with pytest.raises(ValueError, match="no /usr/bin/time -v report"):
        bench.worker_usage(tmp_path / "empty.log")

    caps = {"linear_frames": 100, "radial_frames": 20, "active_set_frames": 300}
    flat = [(300 + 100 * i, 50.0 + (-0.3, 0.2, 0.1, -0.2, 0.3)[i]) for i in range(5)]
    rising = [(300 + 100 * i, 50.0 + 4.0 * i + (-0.3, 0.2, 0.1, -0.2, 0.3)[i]) for i in range(5)]
    assert "**bounded by the caps**" in bench.growth_verdict(flat, caps)
    assert "**not bounded by the caps**" in bench.growth_verdict(rising, caps)
    assert "too few" in bench.growth_verdict(rising[:2], caps)
    assert "`mtp.radial_frames`" in bench.growth_verdict(flat, {**caps, "radial_frames": None})
