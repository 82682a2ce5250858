"""Two worker processes (FireWorks' rapidfire) finish a small screen together.

The screen is real: bulk Li6PS5Cl doped with Se and O, two seeds each, two
HAML cycles per candidate on the Lennard-Jones reference (the analytic test
double of the AIMD engine) with a level-6 MTP. The workers are ``haml
worker`` processes (FireWorks' ``rapidfire`` on the id-safe LaunchPad of
haml_flows.database.launchpad) reading a launchpad.yaml and a
my_fworker.yaml derived from the shipped ones.
"""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from haml_flows.cli.main import app
from haml_flows.screening.ranking import candidate_rows, rank_rows
from haml_flows.screening.status import screen_status
from haml_flows.screening.submit import submit_screen

ROOT = Path(__file__).parents[2]
runner = CliRunner()


def _worker_files(tmp_path: Path, settings, names: list[str]) -> tuple[Path, list[Path]]:
    launchpad = yaml.safe_load((ROOT / "launchpad.yaml").read_text())
    launchpad.update(host=settings.mongodb_uri, name=settings.DATABASE)
    lp_file = tmp_path / "launchpad.yaml"
    lp_file.write_text(yaml.safe_dump(launchpad))
    worker_files = []
    for name in names:
        worker = yaml.safe_load((ROOT / "my_fworker.yaml").read_text())
        worker.update(name=name, query='{"spec.haml_screen": "lj_screen"}')
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(worker))
        worker_files.append(path)
    return lp_file, worker_files


@pytest.mark.slow
def test_two_workers_finish_a_screen_once(tmp_path, screen_file, clients, monkeypatch):
    settings, store, launchpad, db = clients
    base_dir = tmp_path / "screen"
    base_dir.mkdir()
    path = screen_file(base_dir)
    base = yaml.safe_load((base_dir / "base.yaml").read_text())
    base["stop"]["max_cycles"] = 2
    (base_dir / "base.yaml").write_text(yaml.safe_dump(base))
    report = submit_screen(path, store, launchpad, db, settings.DOCS_COLLECTION)
    assert len(report.added) == 4

    names = ["worker_a", "worker_b"]
    lp_file, worker_files = _worker_files(tmp_path, settings, names)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    processes = []
    for name, worker_file in zip(names, worker_files, strict=True):
        workdir = tmp_path / name
        workdir.mkdir()
        command = [sys.executable, "-m", "haml_flows.cli.main", "worker",
                   "-l", str(lp_file), "-w", str(worker_file), "--sleep", "1"]
        log = (workdir / "worker.log").open("w")
        processes.append(
            subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        )
    for process in processes:
        assert process.wait(timeout=600) == 0

    fireworks = list(launchpad.fireworks.find({}, {"fw_id": 1, "state": 1, "spec": 1, "name": 1}))
    assert Counter(fw["state"] for fw in fireworks) == {"COMPLETED": len(fireworks)}
    # per candidate: start run, cycle 1, then per cycle jobflow's store_inputs,
    # aimd, training, mlpmd, record and the next cycle job
    assert len(fireworks) == 4 * (2 + 2 * 6)
    launches = list(launchpad.launches.find({}, {"fw_id": 1, "state": 1, "fworker.name": 1}))
    per_fw = Counter(launch["fw_id"] for launch in launches)
    assert set(per_fw) == {fw["fw_id"] for fw in fireworks}
    assert set(per_fw.values()) == {1}, "a Firework was launched more than once"
    by_worker = Counter(launch["fworker"]["name"] for launch in launches)
    assert set(by_worker) == set(names), by_worker  # both workers took part

    # every job stored its output once; every run has cycles 1 and 2 and a summary
    outputs = list(store.docs_store.query({}, properties=["uuid", "index", "output.doc_type",
                                                          "output.run_id", "output.cycle"]))
    keys = Counter((d["uuid"], d["index"]) for d in outputs)
    assert set(keys.values()) == {1}
    job_uuids = {fw["spec"]["_tasks"][0]["job"]["uuid"] for fw in fireworks}
    assert job_uuids == {d["uuid"] for d in outputs}
    cycles = Counter(
        (d["output"]["run_id"], d["output"]["cycle"])
        for d in outputs if (d.get("output") or {}).get("doc_type") == "haml_cycle"
    )
    run_ids = {c["metadata"]["run_id"] for c in launchpad.workflows.find({}, {"metadata": 1})}
    assert cycles == Counter({(r, n): 1 for r in run_ids for n in (1, 2)})

    status = screen_status(db, launchpad, "lj_screen", settings.DOCS_COLLECTION)
    assert status.states == {"COMPLETED": 4}
    assert all(c.finished and c.cycles == 2 and c.simulated_ps > 0 for c in status.candidates)
    assert all(not c.failures for c in status.candidates)

    rows = rank_rows(candidate_rows(db, launchpad, "lj_screen", settings.DOCS_COLLECTION),
                     "similarity")
    assert [r.rank for r in rows] == [1, 2, 3, 4]
    assert all(0 < r.similarity <= 1 and r.speedup is not None for r in rows)
    assert [r.similarity for r in rows] == sorted((r.similarity for r in rows), reverse=True)

    monkeypatch.setenv("HAML_DATABASE", settings.DATABASE)
    shown = runner.invoke(app, ["status", "--screen", "lj_screen"])
    assert shown.exit_code == 0, shown.output
    assert "4 candidates (COMPLETED 4)" in shown.output


ID_TAKER = """
import sys
from haml_flows.database.launchpad import AtomicIdLaunchPad
lp = AtomicIdLaunchPad.from_file(sys.argv[1])
ids = [lp.get_new_fw_id() for _ in range(150)] + [lp.get_new_launch_id() for _ in range(150)]
print(" ".join(map(str, ids)))
"""


def test_ids_stay_unique_with_two_processes_taking_them(tmp_path, clients):
    """Firework and launch ids handed to two processes at once never repeat."""
    settings = clients[0]
    lp_file, _ = _worker_files(tmp_path, settings, [])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen([sys.executable, "-c", ID_TAKER, str(lp_file)], env=env,
                         stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    taken = [list(map(int, p.communicate(timeout=120)[0].split())) for p in processes]
    fw_ids = taken[0][:150] + taken[1][:150]
    launch_ids = taken[0][150:] + taken[1][150:]
    assert sorted(fw_ids) == list(range(1, 301))
    assert sorted(launch_ids) == list(range(1, 301))
