"""``haml submit SPEC``: add a run to the LaunchPad for cluster workers; launch nothing.

Registered in the main app with

    from haml_flows.cli.submit import submit_command
    app.command("submit")(submit_command)
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import typer

from haml_flows.cli._common import connect_store, fail, quiet_dependencies, show

#: what the printed lines call the worker files the user did not name
DEFAULT_FILES = {"launchpad": "launchpad.yaml", "fworker": "my_fworker.yaml",
                 "qadapter": "my_qadapter.yaml"}


@dataclass
class WorkerFiles:
    """The worker files named on the command line, loaded (None when not named)."""

    launchpad: object | None = None
    fworker: object | None = None
    qadapter: object | None = None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _load(option: str, path: Path | None, loader):
    """``loader(path)``, or leave with one line naming the option, the file and why."""
    if path is None:
        return None
    if not path.is_file():
        fail(f"{option} {path}: no such file", code=2)
    try:
        return loader(str(path))
    except KeyError as exc:  # FireWorks reads required keys by name
        fail(f"{option} {path}: not a valid file: missing key {exc}", code=2)
    except Exception as exc:  # YAML, FireWorks and type errors alike: name the file
        fail(f"{option} {path}: not a valid file: {_one_line(exc)}", code=2)


def _qadapter(path: str):
    """The queue adapter as qlaunch loads it; its batch script must render."""
    import tempfile

    from fireworks.utilities.fw_serializers import load_object_from_file

    adapter = load_object_from_file(path)
    if not adapter.get("rocket_launch"):
        raise ValueError("it has no rocket_launch (the command each batch job runs)")
    with tempfile.TemporaryDirectory() as launch_dir:
        adapter.get_script_str(launch_dir)
    return adapter


def load_worker_files(
    launchpad_file: Path | None, fworker_file: Path | None, qadapter_file: Path | None
) -> WorkerFiles:
    """Load the named files as rlaunch and qlaunch will; fail on the first bad one."""
    from fireworks import FWorker

    from haml_flows.database.launchpad import AtomicIdLaunchPad

    return WorkerFiles(
        launchpad=_load("--launchpad", launchpad_file, AtomicIdLaunchPad.from_file),
        fworker=_load("--fworker", fworker_file, FWorker.from_file),
        qadapter=_load("--qadapter", qadapter_file, _qadapter),
    )


def _launchpad_uri(launchpad) -> str:
    if launchpad.uri_mode:
        return str(launchpad.host)
    return f"mongodb://{launchpad.host}:{launchpad.port}"


def _check_answers(launchpad, launchpad_file: Path) -> None:
    from haml_flows.database.server import is_answering, mask_uri

    uri = _launchpad_uri(launchpad)
    if not is_answering(uri, timeout_ms=3000, **(launchpad.mongoclient_kwargs or {})):
        fail(f"--launchpad {launchpad_file}: no database answers at {mask_uri(uri)}", code=2)


def launch_lines(run_id: str, launchpad: str, fworker: str, qadapter: str) -> dict[str, str]:
    """The commands that run, and recover, a submitted run: qlaunch, rlaunch, lpad."""
    import json

    query = shlex.quote(json.dumps({"spec.haml_run_id": run_id}))
    lp, fw, qa = (shlex.quote(p) for p in (launchpad, fworker, qadapter))
    return {
        "qlaunch": f"qlaunch -q {qa} -l {lp} -w {fw} rapidfire -m 1",
        "rlaunch": f"rlaunch -l {lp} -w {fw} rapidfire",
        "lpad": f"lpad -l {lp} detect_lostruns --time 0 --rerun -q {query}",
    }


def _selects_none(launchpad, fworker, run_id: str) -> bool:
    """True when ``fworker``'s category and query select none of the run's READY jobs."""
    wanted = {"spec.haml_run_id": run_id, "state": "READY"}
    return launchpad.fireworks.find_one({"$and": [fworker.query, wanted]}, {"_id": 1}) is None


def submit_command(
    spec: Path = typer.Argument(..., metavar="SPEC", help="Run specification (YAML)."),
    launchpad_file: Path = typer.Option(
        None, "--launchpad", "-l",
        help="The launchpad.yaml the workers use: the run is added to the LaunchPad it "
        "names (default: the configured database).",
    ),
    fworker_file: Path = typer.Option(
        None, "--fworker", "-w",
        help="The workers' my_fworker.yaml: checked to select this run's jobs.",
    ),
    qadapter_file: Path = typer.Option(
        None, "--qadapter", "-q",
        help="The queue adapter (a copy of docs/my_qadapter_slurm.yaml): checked to "
        "load and render as qlaunch will.",
    ),
) -> None:
    """Add a run to the LaunchPad for workers; launch nothing.

    Validates the spec as haml run does, adds its workflow, and prints the run
    id with the qlaunch and rlaunch lines that run it and the lpad line that
    recovers it after a killed batch job. Each call adds a new run.
    """
    from haml_flows.runner import prepare_run
    from haml_flows.spec import SpecError

    files = load_worker_files(launchpad_file, fworker_file, qadapter_file)
    try:
        with quiet_dependencies():
            prepared = prepare_run(spec)
    except SpecError as exc:
        fail(f"invalid spec {spec}: {exc}", code=2)

    import logging

    from haml_flows.database.server import mask_uri
    from haml_flows.database.stores import connect, ensure_output_indexes, make_launchpad
    from haml_flows.runner import submit_to_fireworks
    from haml_flows.settings import get_settings

    settings = get_settings()
    store = connect_store(settings, start=True)
    ensure_output_indexes(connect(settings), settings.DOCS_COLLECTION)
    launchpad = files.launchpad
    if launchpad is None:
        launchpad = make_launchpad(settings)
    else:
        _check_answers(launchpad, launchpad_file)
    run_id = prepared.run_id
    logging.getLogger("launchpad").setLevel(logging.WARNING)  # "Added a workflow" is said below
    with quiet_dependencies():
        submit_to_fireworks(prepared, store, launchpad)
    n_fireworks = len(launchpad.get_fw_ids(query={"spec.haml_run_id": run_id}))
    where = f"database {launchpad.name} at {mask_uri(_launchpad_uri(launchpad))}"
    names = {key: str(path) if path is not None else DEFAULT_FILES[key] for key, path in
             (("launchpad", launchpad_file), ("fworker", fworker_file),
              ("qadapter", qadapter_file))}
    lines = launch_lines(run_id, **names)
    stop = prepared.spec.stop

    def say(text: str) -> None:
        show(text, markup=False, highlight=False, soft_wrap=True)

    say(f"run {run_id} added to the LaunchPad ({n_fireworks} Fireworks, {where}): "
        f"{len(prepared.structure)} atoms, up to {stop.max_cycles} cycles or "
        f"{stop.total_time_ps} ps; nothing was launched")
    if launchpad_file is None:
        say(f"the workers' {names['launchpad']} must name host "
            f"{mask_uri(_launchpad_uri(launchpad))} and name {launchpad.name}")
    if qadapter_file is None:
        say(f"{names['qadapter']}: a copy of docs/my_qadapter_slurm.yaml (or _pbs) with "
            "your paths, partition and account")
    say("launch it, one batch job at a time (a run's jobs follow one another; -m counts "
        "all your jobs in the adapter's partition):")
    say(f"  {lines['qlaunch']}")
    say("or on this machine:")
    say(f"  {lines['rlaunch']}")
    say(f"follow it with: haml cycles {run_id}. After a killed batch job, once squeue "
        "lists none of its jobs, put its lost job back and qlaunch again:")
    say(f"  {lines['lpad']}")
    say(f"(haml resume {run_id} --lost-after 0 does both, running the rest here)")
    if settings.uses_embedded_server:
        say("note: the embedded database listens on 127.0.0.1, so only batch jobs on this "
            "machine reach it; a cluster needs a MongoDB its nodes reach (docs/screening.md)")
    if files.fworker is not None and _selects_none(launchpad, files.fworker, run_id):
        say(f"warning: {fworker_file} selects none of this run's READY jobs (its category "
            "or query excludes them): its workers would not run it")
