"""Running a spec: validate, build the flow, run it locally or on FireWorks."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jobflow import Flow, JobStore, run_locally
from pymatgen.core import Structure

from haml_flows.flows.haml import HamlMaker
from haml_flows.spec import RunSpec, SpecError, load_spec


@dataclass
class PreparedRun:
    """A validated spec, its structure and the flow that runs it."""

    spec: RunSpec
    structure: Structure
    flow: Flow
    run_id: str


def prepare_run(spec_path: str | Path, run_id: str | None = None) -> PreparedRun:
    """Validate the spec and build structure and flow; nothing runs yet."""
    spec_path = Path(spec_path)
    spec = load_spec(spec_path)
    structure = spec.system.build(base_dir=spec_path.parent)
    spec.check_against(structure)
    _check_no_overlaps(structure)
    maker = HamlMaker.from_spec(spec, run_id=run_id)
    flow = maker.make(structure)
    flow.update_config({"manager_config": {"haml_run_id": maker.run_id}})
    return PreparedRun(spec=spec, structure=structure, flow=flow, run_id=maker.run_id)


def _check_no_overlaps(structure: Structure, minimum: float = 0.5) -> None:
    distances = structure.distance_matrix
    for i in range(len(structure)):
        for j in range(i + 1, len(structure)):
            if distances[i, j] < minimum:
                raise SpecError(
                    f"system: atoms {i} ({structure[i].specie}) and {j} "
                    f"({structure[j].specie}) are {distances[i, j]:.2f} A apart "
                    f"(minimum {minimum} A)"
                )


@contextmanager
def _working_directory(path: Path):
    path.mkdir(parents=True, exist_ok=True)
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(previous)


def run_prepared_locally(run: PreparedRun, store: JobStore, workdir: Path) -> None:
    """Run the flow in this process with jobflow's local manager."""
    with _working_directory(workdir):
        run_locally(
            run.flow, store=store, create_folders=True, log=False, ensure_success=True
        )


def run_prepared_on_fireworks(
    run: PreparedRun, store: JobStore, launchpad, workdir: Path
) -> None:
    """Add the flow to the LaunchPad and launch this run's Fireworks here."""
    from fireworks import FWorker
    from fireworks.core.rocket_launcher import rapidfire
    from jobflow.managers.fireworks import flow_to_workflow

    launchpad.add_wf(flow_to_workflow(run.flow, store=store))
    worker = FWorker(name="haml-local", query={"spec.haml_run_id": run.run_id})
    with _working_directory(workdir):
        rapidfire(launchpad, fworker=worker, nlaunches=0, sleep_time=0, max_loops=1)
