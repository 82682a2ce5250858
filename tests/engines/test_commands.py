"""Engine commands are read inside the job, on the worker, from its own FireWorker."""

from __future__ import annotations

import contextlib
import sys

import pytest
from jobflow import job

from haml_flows.engines.commands import LMP, VASP, CommandError, EngineError, run_command


@job
def commands_seen_by_the_job() -> dict:
    """What a job running on a worker resolves (a job of this test module)."""
    return {"lmp": LMP.resolve(), "vasp": VASP.resolve()}


def test_a_job_reads_its_workers_settings_and_fireworker(
    haml_settings, job_store, tmp_path, monkeypatch
):
    from fireworks import FWorker, fw_config
    from fireworks.core.rocket_launcher import rapidfire
    from jobflow.managers.fireworks import flow_to_workflow

    from haml_flows.database.stores import make_launchpad

    default = tmp_path / "default_fworker.yaml"
    default.write_text("name: default\nenv:\n  lmp_cmd: lmp-of-the-default-file\n")
    monkeypatch.setattr(fw_config, "FWORKER_LOC", str(default))
    monkeypatch.setenv("HAML_LMP_CMD", ">>lmp_cmd<<")
    monkeypatch.setenv("HAML_VASP_CMD", "vasp-of-the-submitter")
    launchpad = make_launchpad(haml_settings)
    launchpad.reset("", require_password=False)
    seen = commands_seen_by_the_job()
    launchpad.add_wf(flow_to_workflow(seen, store=job_store))

    # the worker has its own settings and was started with its own worker file
    monkeypatch.setenv("HAML_VASP_CMD", "vasp-of-the-worker")
    worker = FWorker(name="w", env={"lmp_cmd": "lmp-of-this-worker"})
    with contextlib.chdir(tmp_path):
        rapidfire(launchpad, fworker=worker, nlaunches=0, sleep_time=0, max_loops=1)
    assert job_store.get_output(seen.uuid) == {
        "lmp": "lmp-of-this-worker", "vasp": "vasp-of-the-worker"
    }
    # outside FireWorks, FireWorks' default worker file
    assert LMP.resolve() == "lmp-of-the-default-file"


def test_missing_commands_say_where_to_set_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HAML_CONFIG_FILE", str(tmp_path / "none.yaml"))
    monkeypatch.delenv("HAML_LMP_CMD", raising=False)
    with pytest.raises(EngineError, match="HAML_LMP_CMD is not set"):
        LMP.require()
    worker = tmp_path / "my_fworker.yaml"
    worker.write_text("name: w\nenv: {}\n")
    with pytest.raises(EngineError, match="env.lmp_cmd of my_fworker.yaml"):
        LMP.require(">>lmp_cmd<<", worker)
    assert LMP.require("srun lmp") == "srun lmp"


def test_run_command_quotes_the_tail_and_keeps_the_output(tmp_path):
    script = "import sys; print('out'); print('line 1\\nline 2', file=sys.stderr); sys.exit(3)"
    with pytest.raises(CommandError, match="exit status 3:\nline 1\nline 2"):
        run_command([sys.executable, "-c", script], tmp_path, keep_output_as="prog")
    assert (tmp_path / "prog.out").read_text() == "out\n"
    with pytest.raises(CommandError, match="could not start"):
        run_command(["no-such-program-here"], tmp_path)
    ok = run_command([sys.executable, "-c", script], tmp_path, allowed_status=(3,))
    assert ok.returncode == 3
