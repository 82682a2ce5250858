"""Running a spec: build the flow, run it locally or on FireWorks, resume it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from jobflow import Flow, JobStore, run_locally
from pymatgen.core import Structure
from pymatgen.core.trajectory import Trajectory

from haml_flows.database.launchpad import ensure_initialized
from haml_flows.database.stores import store_outage
from haml_flows.flows.haml import HamlCycleMaker, HamlMaker
from haml_flows.queries import cycle_docs, run_doc, run_summary
from haml_flows.schemas import CycleState
from haml_flows.spec import RunSpec, load_spec, parse_spec
from haml_flows.systems import build_system


@dataclass
class PreparedRun:
    """A validated spec, its structure and the flow that runs it."""

    spec: RunSpec
    structure: Structure
    flow: Flow
    run_id: str


def build_run(
    spec: RunSpec, structure: Structure, run_id: str | None = None, **manager_config
) -> PreparedRun:
    """Check the structure against the spec and build the run's flow; nothing runs yet.

    Every Firework of the flow carries ``spec.haml_run_id`` and the
    ``manager_config`` given (a screen adds ``haml_screen``, ``_category``).
    """
    spec.check_against(structure)
    maker = HamlMaker.from_spec(spec, run_id=run_id)
    flow = maker.make(structure)
    flow.update_config({"manager_config": {"haml_run_id": maker.run_id, **manager_config}})
    return PreparedRun(spec=spec, structure=structure, flow=flow, run_id=maker.run_id)


def prepare_run(spec_path: str | Path, run_id: str | None = None) -> PreparedRun:
    """Validate a spec file, build its structure and its run (:func:`build_run`)."""
    spec_path = Path(spec_path)
    spec = load_spec(spec_path)
    return build_run(spec, build_system(spec.system, base_dir=spec_path.parent), run_id)


@contextlib.contextmanager
def _working_directory(path: Path):
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(path):
        yield path


def run_prepared_locally(run: PreparedRun, store: JobStore, workdir: Path) -> None:
    """Run the flow in this process with jobflow's local manager."""
    _run_flow_locally(run.flow, store, workdir)


def _run_flow_locally(flow: Flow, store: JobStore, workdir: Path) -> None:
    """``run_locally``; a database outage surfaces as DatabaseUnavailableError.

    jobflow logs a failed job and raises a bare RuntimeError; when the job
    failed because the store gave up retrying, that error is the one to show.
    """
    with _working_directory(workdir):
        try:
            run_locally(
                flow, store=store, create_folders=True, log=False, ensure_success=True
            )
        except RuntimeError:
            outage = store_outage(store)
            if outage is not None:
                raise outage from None
            raise


def submit_to_fireworks(run: PreparedRun, store: JobStore, launchpad) -> None:
    """Add the run's flow to the LaunchPad; workers query ``spec.haml_run_id``.

    The store serializes to database and collection names only: the Firework
    specs carry no URI or password, and each worker connects with its own
    settings (HAML_* environment or config file).
    """
    from jobflow.managers.fireworks import flow_to_workflow

    ensure_initialized(launchpad)
    launchpad.add_wf(flow_to_workflow(run.flow, store=store))


def run_prepared_on_fireworks(
    run: PreparedRun, store: JobStore, launchpad, workdir: Path
) -> None:
    """Add the flow to the LaunchPad and launch this run's Fireworks here."""
    submit_to_fireworks(run, store, launchpad)
    launch_run_fireworks(run.run_id, launchpad, workdir)


class ResumeError(RuntimeError):
    """A run that cannot be resumed; the message says why and what to do."""


@dataclass
class ResumeReport:
    """What ``resume`` found and did."""

    run_id: str
    manager: str
    cycles_done: int
    lost_fireworks: list[int]
    rerun_fireworks: list[int]
    next_cycle: int | None = None
    unreserved_fireworks: list[int] = field(default_factory=list)


def _fireworks_query(run_id: str) -> dict:
    return {"spec.haml_run_id": run_id}


def recover_fireworks(
    run_id: str, store: JobStore, launchpad, lost_after: float, unlock: bool = False
) -> ResumeReport | None:
    """Make a run's lost and fizzled Fireworks READY again; None when it has none.

    Fireworks still RUNNING but silent for ``lost_after`` seconds are lost (their
    worker died) and go back to READY, as ``lpad detect_lostruns --rerun`` does;
    FIZZLED Fireworks are rerun. Completed stages stay completed, so the run
    continues from the last completed stage.

    A worker killed while FireWorks updated the workflow leaves the workflow
    locked; ``unlock`` releases it as ``lpad admin unlock`` does (only when no
    worker of this run is alive).
    """
    from fireworks.core.launchpad import WFLock

    query = _fireworks_query(run_id)
    fw_ids = launchpad.get_fw_ids(query=query)
    if not fw_ids:
        return None
    if unlock:
        for workflow in launchpad.workflows.find(
            {"nodes": {"$in": fw_ids}, "locked": True}, {"nodes": 1}
        ):
            with WFLock(launchpad, workflow["nodes"][0], expire_secs=0, kill=True):
                pass
    unreserved = release_stale_reservations(launchpad, fw_ids, lost_after)
    _, lost, _ = launchpad.detect_lostruns(
        expiration_secs=lost_after, rerun=True, refresh=True, query=query
    )
    fizzled = launchpad.get_fw_ids(query={**query, "state": "FIZZLED"})
    for fw_id in fizzled:
        launchpad.rerun_fw(fw_id)
    return ResumeReport(
        run_id=run_id,
        manager="fireworks",
        cycles_done=len(cycle_docs(store, run_id)),
        lost_fireworks=list(lost),
        rerun_fireworks=list(fizzled),
        unreserved_fireworks=unreserved,
    )


def release_stale_reservations(launchpad, fw_ids: list[int], older_than: float) -> list[int]:
    """Put this run's Fireworks left RESERVED for ``older_than`` s back to READY.

    A worker that died (or lost the database) between checking a Firework
    out and starting it leaves it RESERVED, and nothing ever runs it. FireWorks'
    ``detect_unreserved`` finds stale reservations that have a launch; a
    checkout cut short before its launch was written leaves a RESERVED
    Firework without one, found here by its ``updated_on``. Both are rerun
    (``rerun_fw``), as ``lpad detect_unreserved --rerun`` and ``lpad
    rerun_fws`` would; other runs' Fireworks are not touched.
    """
    import datetime

    ours = set(fw_ids)
    stale_launches = set(launchpad.detect_unreserved(expiration_secs=older_than))
    cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
        seconds=older_than)
    released = []
    for fw in launchpad.fireworks.find(
        {"fw_id": {"$in": sorted(ours)}, "state": "RESERVED"},
        {"fw_id": 1, "launches": 1, "updated_on": 1},
    ):
        updated = fw.get("updated_on")
        if isinstance(updated, str):
            updated = datetime.datetime.fromisoformat(updated)
        if updated is not None and updated.tzinfo is None:
            updated = updated.replace(tzinfo=datetime.timezone.utc)
        has_stale_launch = bool(stale_launches & set(fw.get("launches") or []))
        if has_stale_launch or updated is None or updated <= cutoff:
            launchpad.rerun_fw(fw["fw_id"])
            released.append(fw["fw_id"])
    return released


def unfinished_reason(store: JobStore, launchpad, run_id: str) -> str | None:
    """None when the run has its summary; otherwise what is left, in one line.

    Names the cycles stored, the workflow's state and the Fireworks that are
    not COMPLETED (by name and state), so a command that was asked to finish
    the run can say why it did not.
    """
    if run_summary(store, run_id) is not None:
        return None
    stored = len(cycle_docs(store, run_id))
    left = [
        f"{fw['name']} {fw['state']}"
        for fw in launchpad.fireworks.find(
            {**_fireworks_query(run_id), "state": {"$ne": "COMPLETED"}},
            {"name": 1, "state": 1, "fw_id": 1}, sort=[("fw_id", 1)],
        )
    ]
    shown = ", ".join(left[:6]) + (f" and {len(left) - 6} more" if len(left) > 6 else "")
    return (
        f"run {run_id} is unfinished: {stored} cycles stored, "
        + (f"Fireworks left: {shown}" if left else "no Firework is left to run")
    )


def launch_run_fireworks(run_id: str, launchpad, workdir: Path) -> None:
    """Run this run's READY Fireworks here until none is left (``rapidfire``)."""
    launch_fireworks(_fireworks_query(run_id), launchpad, workdir)


def launch_fireworks(query: dict, launchpad, workdir: Path) -> None:
    """Run the READY Fireworks that ``query`` selects here until none is left.

    The local worker has the ``env`` of FireWorks' default ``my_fworker.yaml``
    (engine commands), as ``rlaunch`` without ``-w`` would.
    """
    from fireworks import FWorker
    from fireworks.core.rocket_launcher import rapidfire

    from haml_flows.engines.commands import fworker_file_env

    worker = FWorker(name="haml-local", query=query, env=fworker_file_env())
    with _working_directory(workdir):
        rapidfire(launchpad, fworker=worker, nlaunches=0, sleep_time=0, max_loops=1)


def resume_locally(run_id: str, store: JobStore, workdir: Path) -> ResumeReport:
    """Continue a run of ``haml run`` (no FireWorks) after its last stored cycle.

    The next cycle starts from the last MLP-MD frame (with velocities), the last
    potential and the training set of the last completed cycle, exactly as the
    interrupted loop would have (:meth:`CycleState.from_cycle_doc`). Stage jobs
    of that cycle have the same uuids as before, so outputs of a half-finished
    cycle are replaced, not duplicated.
    """
    start = run_doc(store, run_id)
    if start is None:
        raise ResumeError(
            f"run {run_id!r} has no run document: it never started (or the id is "
            "wrong); start it again with `haml run SPEC.yaml`"
        )
    if run_summary(store, run_id) is not None:
        raise ResumeError(f"run {run_id!r} has finished; nothing to resume")
    cycle_maker = HamlCycleMaker.from_spec(parse_spec(start.spec))
    done = cycle_docs(store, run_id)
    if done:
        last = done[-1]
        training = _output(store, last.training_job)
        state = CycleState.from_cycle_doc(
            last,
            structure=_structure(_output(store, last.mlpmd_job)["structure"]),
            training_set=training["training_set"],
            potential=training["potential"],
            pending=_pending_audits(store, done),
            earlier=done[:-1],
        )
    else:
        state = CycleState(run_id=run_id, structure=start.structure)
    next_job = cycle_maker.cycle_job(state)
    flow = Flow([next_job], output=next_job.output, name=f"haml {run_id}")
    flow.update_config({"manager_config": {"haml_run_id": run_id}})
    _run_flow_locally(flow, store, workdir)
    return ResumeReport(
        run_id=run_id,
        manager="local",
        cycles_done=len(done),
        lost_fireworks=[],
        rerun_fireworks=[],
        next_cycle=state.cycle,
    )


def _pending_audits(store: JobStore, done: list) -> list[Trajectory]:
    """The audits' relabelled frames since the last training (its cycle's and after)."""
    since = next(
        (i for i in range(len(done) - 1, -1, -1) if not done[i].continued), 0
    )
    pending = []
    for doc in done[since:]:
        if doc.audit_job is None:
            continue
        trajectory = _output(store, doc.audit_job).get("trajectory")
        if trajectory is not None:
            pending.append(
                trajectory if isinstance(trajectory, Trajectory)
                else Trajectory.from_dict(trajectory)
            )
    return pending


def _output(store: JobStore, uuid: str) -> dict:
    output = store.get_output(uuid, load=True)
    return output if isinstance(output, dict) else output.model_dump()


def _structure(value) -> Structure:
    return value if isinstance(value, Structure) else Structure.from_dict(value)
