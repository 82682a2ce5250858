"""Reference-engine failures: custodian handlers and job for an AIMD segment.

An AIMD segment runs as a custodian ``Job`` (in process) under
``custodian.Custodian``, the way custodian drives VASP, in the directory of
the jobflow job that runs it, so a failed segment's files stay with the job
(outside a job, in a scratch directory):

- ``aimd_settings.json`` holds the segment's inputs (time step, steps left,
  calculator settings, restart frame); handlers change it with custodian's
  ``Modder`` actions, exactly as ``VaspModder`` changes an INCAR;
- ASE's MD writes every completed step to ``aimd_segment.traj`` (the
  ``trajectory`` argument of ASE's dynamics), so a crash leaves the frames
  before it;
- a failed attempt leaves ``aimd_error.json`` (exception type and message).

Handlers, in order: :class:`XtbScfHandler` (SCF not converged: more
iterations, more damping) and :class:`AimdRestartHandler` (failed after it
made progress: keep the good frames, restart from the last one with half the
time step). :class:`AimdCompletedValidator` turns any failure no handler can
fix into custodian's ``ValidationError``. VASP segments get custodian's own
VASP handlers through atomate2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read
from atomate2.ase.utils import TrajectoryObserver
from custodian.ansible.actions import DictActions, FileActions
from custodian.ansible.interpreter import Modder
from custodian.custodian import Custodian, CustodianError, ErrorHandler, Job, Validator
from pymatgen.core import Structure
from pymatgen.core.trajectory import Trajectory

from haml_flows.engines.frames import structure_with_velocities
from haml_flows.files import write_atomic
from haml_flows.progress import StageProgress, count_calculations, current_stage
from haml_flows.schemas import FaultCorrection

SETTINGS_FILE = "aimd_settings.json"
TRAJECTORY_FILE = "aimd_segment.traj"
ERROR_FILE = "aimd_error.json"
PART_FILE = "aimd_part_{}.traj"

MAX_CORRECTIONS = 6
"""Corrections (each followed by a rerun) before a segment is given up."""


def _read_json(directory: str, name: str) -> dict:
    return json.loads((Path(directory) / name).read_text())


def _write_json(directory: str, name: str, data: dict) -> None:
    write_atomic(Path(directory) / name, json.dumps(data, indent=1))


def _frames(path: Path) -> list[Atoms]:
    """Completed steps in an ASE trajectory file (none if it was never written)."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    return list(read(path, ":"))


class AimdSegmentJob(Job):
    """One AIMD segment of an atomate2 ASE MD maker, as a custodian job."""

    def __init__(self, maker, structure: Structure) -> None:
        self.maker = maker
        self.structure = structure
        self.result = None
        self.attempts = 0

    def setup(self, directory: str = "./") -> None:
        """Write the first attempt's inputs."""
        _write_json(
            directory,
            SETTINGS_FILE,
            {
                "time_step": self.maker.time_step,
                "n_steps": self.maker.n_steps,
                "calculator_kwargs": dict(self.maker.calculator_kwargs),
                "restart_from": None,
                "parts": [],
            },
        )

    def run(self, directory: str = "./") -> None:
        """Run the steps left; a failure is written to the error file, not raised."""
        self.attempts += 1
        directory = Path(directory)
        settings = _read_json(directory, SETTINGS_FILE)
        (directory / ERROR_FILE).unlink(missing_ok=True)
        (directory / TRAJECTORY_FILE).unlink(missing_ok=True)
        start = self.structure
        if settings["restart_from"]:
            start = structure_with_velocities(_frames(directory / settings["restart_from"])[-1])
        maker = dataclasses.replace(
            self.maker,
            time_step=settings["time_step"],
            n_steps=settings["n_steps"],
            calculator_kwargs=settings["calculator_kwargs"],
            ase_md_kwargs={
                **(self.maker.ase_md_kwargs or {}),
                "trajectory": str(directory / TRAJECTORY_FILE),
            },
        )
        progress = StageProgress(current_stage("AIMD"), settings["n_steps"])
        maker._calculator = count_calculations(maker.calculator, progress)
        try:
            self.result = maker.run_ase(start)
            progress.update(settings["n_steps"], final=True)
        except Exception as exc:  # noqa: BLE001 - every failure goes to the handlers
            self.result = None
            _write_json(
                directory, ERROR_FILE, {"type": type(exc).__name__, "message": str(exc)}
            )

    def postprocess(self, directory: str = "./") -> None:
        """Nothing to clean: the files stay with the job."""

    @property
    def name(self) -> str:
        return "aimd segment"


class _FailureHandler(ErrorHandler):
    """A handler that reads the failed attempt's error file."""

    is_monitor = False

    def _error(self, directory: str) -> dict | None:
        path = Path(directory) / ERROR_FILE
        return json.loads(path.read_text()) if path.exists() else None


class XtbScfHandler(_FailureHandler):
    """SCF not converged (tblite): more iterations and stronger mixer damping."""

    def __init__(
        self, iteration_factor: int = 4, max_iterations_cap: int = 2000,
        damping_factor: float = 0.5, min_damping: float = 0.05,
    ) -> None:
        self.iteration_factor = iteration_factor
        self.max_iterations_cap = max_iterations_cap
        self.damping_factor = damping_factor
        self.min_damping = min_damping

    def check(self, directory: str = "./") -> bool:
        error = self._error(directory)
        return error is not None and "SCF not converged" in error["message"]

    def correct(self, directory: str = "./") -> dict:
        settings = _read_json(directory, SETTINGS_FILE)
        calc = settings["calculator_kwargs"]
        iterations = int(calc.get("max_iterations") or 250)
        damping = float(calc.get("mixer_damping") or 0.4)
        new = {
            "calculator_kwargs->max_iterations": min(
                self.max_iterations_cap, iterations * self.iteration_factor
            ),
            "calculator_kwargs->mixer_damping": max(
                self.min_damping, damping * self.damping_factor
            ),
        }
        if new["calculator_kwargs->max_iterations"] == iterations and (
            new["calculator_kwargs->mixer_damping"] == damping
        ):
            return {"errors": [self._error(directory)["message"]], "actions": None}
        actions = [{"dict": SETTINGS_FILE, "action": {"_set": new}}]
        _apply(directory, actions)
        return {"errors": [self._error(directory)["message"]], "actions": actions}


class AimdRestartHandler(_FailureHandler):
    """A segment that failed after completing steps restarts from its last frame.

    The completed frames are kept (the trajectory file becomes a part), the
    steps left are run from the last completed frame (positions and
    velocities) with the time step times ``time_step_factor``.
    """

    def __init__(self, time_step_factor: float = 0.5, min_time_step: float = 0.05) -> None:
        self.time_step_factor = time_step_factor
        self.min_time_step = min_time_step

    def check(self, directory: str = "./") -> bool:
        if self._error(directory) is None:
            return False
        return len(_frames(Path(directory) / TRAJECTORY_FILE)) >= 2

    def correct(self, directory: str = "./") -> dict:
        settings = _read_json(directory, SETTINGS_FILE)
        done = len(_frames(Path(directory) / TRAJECTORY_FILE)) - 1
        part = PART_FILE.format(len(settings["parts"]) + 1)
        time_step = max(self.min_time_step, settings["time_step"] * self.time_step_factor)
        actions = [
            {"file": TRAJECTORY_FILE, "action": {"_file_move": {"dest": part}}},
            {
                "dict": SETTINGS_FILE,
                "action": {
                    "_set": {
                        "restart_from": part,
                        "n_steps": settings["n_steps"] - done,
                        "time_step": time_step,
                    },
                    "_push": {"parts": {"file": part, "time_step": settings["time_step"]}},
                },
            },
        ]
        _apply(directory, actions)
        return {
            "errors": [f"failed after {done} of {settings['n_steps']} steps"],
            "actions": actions,
        }


class AimdCompletedValidator(Validator):
    """Fails when the last attempt left an error no handler could fix."""

    def check(self, directory: str = "./") -> bool:
        return (Path(directory) / ERROR_FILE).exists()


def _apply(directory: str, actions: list[dict]) -> None:
    """custodian's Modder on our settings file and on files, as VaspModder does."""
    for action in actions:
        if "dict" in action:
            data = _read_json(directory, action["dict"])
            Modder(actions=[DictActions]).modify(action["action"], data)
            _write_json(directory, action["dict"], data)
        else:
            Modder(actions=[FileActions], directory=directory).modify(
                action["action"], action["file"]
            )


def default_handlers() -> list[ErrorHandler]:
    """SCF first, then the restart with a smaller time step."""
    return [XtbScfHandler(), AimdRestartHandler()]


class AimdSegmentFailed(RuntimeError):
    """The segment could not be completed within the corrections allowed."""


def _part_trajectory(path: Path, observer_atoms: Atoms) -> list[dict]:
    """Frames of a part file in atomate2's TrajectoryObserver format (all but the last)."""
    frames = _frames(path)[:-1]
    atoms = observer_atoms.copy()
    if not frames:
        return []
    probe = {"energy": 0.0, "forces": np.zeros((len(atoms), 3))}
    if "stress" in frames[0].calc.results:
        probe["stress"] = np.zeros(6)
    atoms.calc = SinglePointCalculator(atoms, **probe)
    observer = TrajectoryObserver(atoms, store_md_outputs=True)
    for frame in frames:
        atoms.set_cell(frame.cell)
        atoms.set_positions(frame.positions)
        atoms.set_momenta(frame.get_momenta())
        atoms.calc = SinglePointCalculator(atoms, **frame.calc.results)
        observer()
    trajectory = observer.to_pymatgen_trajectory(filename=None)
    return [(trajectory[i], trajectory.frame_properties[i]) for i in range(len(trajectory))]


@contextlib.contextmanager
def _segment_directory(maker) -> Iterator[str]:
    """The running job's own directory, or a scratch one when no job runs ``maker``."""
    from jobflow import CURRENT_JOB

    running = CURRENT_JOB.job
    if running is not None and running.maker is maker:
        yield str(Path.cwd())
        return
    with tempfile.TemporaryDirectory(prefix="haml_aimd_") as directory:
        yield directory


def run_segment(
    maker, structure: Structure, max_corrections: int = MAX_CORRECTIONS,
    handlers: list[ErrorHandler] | None = None,
) -> tuple[Trajectory, list[FaultCorrection], int, float]:
    """Run an AIMD segment under custodian.

    Returns the trajectory (frames of the corrected attempts, then the
    successful one), the corrections, the number of attempts and the
    simulated time in fs. Raises :class:`AimdSegmentFailed` naming the last
    error when custodian gives up.
    """
    with _segment_directory(maker) as directory:
        job = AimdSegmentJob(maker, structure)
        custodian = Custodian(
            handlers if handlers is not None else default_handlers(),
            [job],
            validators=[AimdCompletedValidator()],
            max_errors=max_corrections,
            directory=directory,
        )
        try:
            log = custodian.run()
        except CustodianError as exc:
            error = _last_error(directory)
            raise AimdSegmentFailed(
                f"AIMD segment on {getattr(maker, 'engine_name', 'the reference engine')} "
                f"failed: {error}; custodian: {exc}"
            ) from None
        corrections = [
            FaultCorrection(
                handler=type(c["handler"]).__name__,
                errors=[str(e) for e in c["errors"]],
                actions=[json.dumps(a, sort_keys=True) for a in c["actions"] or []],
            )
            for entry in log
            for c in entry["corrections"]
        ]
        settings = _read_json(directory, SETTINGS_FILE)
        final = job.result.trajectory
        atoms = final[0].to_ase_atoms()
        frames, simulated = [], 0.0
        for part in settings["parts"]:
            pieces = _part_trajectory(Path(directory) / part["file"], atoms)
            frames += pieces
            simulated += len(pieces) * part["time_step"]
        frames += [(final[i], final.frame_properties[i]) for i in range(len(final))]
        simulated += (len(final) - 1) * settings["time_step"]
        trajectory = Trajectory.from_structures(
            [f for f, _ in frames],
            frame_properties=[p for _, p in frames],
            constant_lattice=False,
        )
        return trajectory, corrections, job.attempts, simulated


def _last_error(directory: str) -> str:
    path = Path(directory) / ERROR_FILE
    if not path.exists():
        return "no error recorded"
    error = json.loads(path.read_text())
    return f"{error['type']}: {error['message']}"
