"""`haml submit`: a run added to the LaunchPad, nothing launched, lines that run it.

The SLURM half (qlaunch, scancel, lpad detect_lostruns) is tests/hpc/test_slurm.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from haml_flows.cli.main import app

DATA = Path(__file__).parent / "data"
DOCS = Path(__file__).parents[1] / "docs"
runner = CliRunner()
# loading a queue adapter as qlaunch does walks FireWorks' packages, its own
# tests included, whose marks this pytest does not know
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")


@pytest.fixture
def worker_files(haml_settings, monkeypatch, tmp_path):
    """This test's database in the environment, and a launchpad.yaml and my_fworker.yaml on it."""
    monkeypatch.setenv("HAML_DATABASE", haml_settings.DATABASE)
    launchpad = tmp_path / "launchpad.yaml"
    launchpad.write_text(yaml.safe_dump({
        "host": haml_settings.mongodb_uri, "name": haml_settings.DATABASE, "uri_mode": True}))
    fworker = tmp_path / "my_fworker.yaml"
    fworker.write_text(yaml.safe_dump({"name": "w", "category": "", "query": "{}"}))
    return launchpad, fworker


def _fireworks(haml_settings) -> list[dict]:
    from haml_flows.database.stores import make_launchpad

    return list(make_launchpad(haml_settings).fireworks.find({}, {"state": 1, "spec": 1}))


def test_submit_adds_launches_nothing_and_its_rlaunch_line_runs_it(
    haml_settings, job_store, worker_files, tmp_path
):
    from haml_flows.database.stores import connect
    from haml_flows.queries import run_summary

    launchpad, fworker = worker_files
    result = runner.invoke(app, ["submit", str(DATA / "lj_small.yaml"), "-l", str(launchpad),
                                 "-w", str(fworker), "-q", str(DOCS / "my_qadapter_slurm.yaml")])
    assert result.exit_code == 0, result.output
    run_id = re.search(r"^run (lj_small-[0-9a-f]+) added to the LaunchPad \((\d+) Fireworks",
                       result.output, re.M)
    fireworks = _fireworks(haml_settings)
    assert int(run_id[2]) == len(fireworks) > 0
    run_id = run_id[1]
    assert {fw["spec"]["haml_run_id"] for fw in fireworks} == {run_id}
    assert {fw["state"] for fw in fireworks} <= {"READY", "WAITING"}
    assert not (tmp_path / "haml_runs").exists()
    keys = [list(ix["key"]) for ix in connect(haml_settings)[
        haml_settings.DOCS_COLLECTION].list_indexes()]
    assert ["output.doc_type", "output.run_id"] in keys
    lines = [line.strip() for line in result.output.splitlines() if line.startswith("  ")]
    query = shlex.quote(json.dumps({"spec.haml_run_id": run_id}))
    assert lines == [
        f"qlaunch -q {DOCS / 'my_qadapter_slurm.yaml'} -l {launchpad} -w {fworker} "
        "rapidfire -m 1",
        f"rlaunch -l {launchpad} -w {fworker} rapidfire",
        f"lpad -l {launchpad} detect_lostruns --time 0 --rerun -q {query}",
    ]

    # the printed rlaunch line, run as printed, finishes the run
    done = subprocess.run(shlex.split(lines[1]), cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "HAML_DATABASE": haml_settings.DATABASE},
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {fw["state"] for fw in _fireworks(haml_settings)} == {"COMPLETED"}
    stored = connect(haml_settings)[haml_settings.DOCS_COLLECTION].count_documents(
        {"output.doc_type": "haml_cycle", "output.run_id": run_id})
    assert stored == 2
    assert run_summary(job_store, run_id).cycles == 2


def test_submit_without_files_names_what_the_workers_files_must_say(haml_settings,
                                                                    worker_files):
    result = runner.invoke(app, ["submit", str(DATA / "lj_small.yaml")])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert (f"launchpad.yaml must name host {haml_settings.mongodb_uri} and name "
            f"{haml_settings.DATABASE}") in out
    assert "qlaunch -q my_qadapter.yaml -l launchpad.yaml -w my_fworker.yaml rapidfire" in out
    assert "the embedded database listens on 127.0.0.1" in out
    assert len(_fireworks(haml_settings)) > 0


def test_a_worker_file_that_selects_none_of_the_run_is_named(haml_settings, worker_files):
    launchpad, fworker = worker_files
    fworker.write_text(yaml.safe_dump({"name": "w", "category": "vasp_nodes", "query": "{}"}))
    result = runner.invoke(app, ["submit", str(DATA / "lj_small.yaml"), "-l", str(launchpad),
                                 "-w", str(fworker)])
    assert result.exit_code == 0, result.output
    assert f"warning: {fworker} selects none of this run's READY jobs" in " ".join(
        result.output.split())


@pytest.mark.parametrize(("option", "content", "says"), [
    ("-q", None, "no such file"),
    ("-q", "host: mongodb://x\n", "not a valid file: missing key '_fw_name'"),
    ("-q", "_fw_name: CommonAdapter\n_fw_q_type: SLURM\n", "it has no rocket_launch"),
    ("-w", "name: [unclosed\n", "not a valid file"),
    ("-l", "host: mongodb://127.0.0.1:1/x\nuri_mode: true\nname: x\n",
     "no database answers at mongodb://127.0.0.1:1/x"),
])
def test_bad_files_and_specs_add_nothing(haml_settings, worker_files, tmp_path, option,
                                         content, says):
    path = tmp_path / "given.yaml"
    if content is not None:
        path.write_text(content)
    result = runner.invoke(app, ["submit", str(DATA / "lj_small.yaml"), option, str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert says in result.output
    assert _fireworks(haml_settings) == []


def test_bad_spec_adds_nothing(haml_settings, worker_files, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((DATA / "lj_small.yaml").read_text().replace("steps: 8", "steps: 0"))
    result = runner.invoke(app, ["submit", str(bad)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: invalid spec {bad}") and "reference.steps" in \
        result.output
    assert _fireworks(haml_settings) == []
