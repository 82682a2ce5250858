"""The audit of an MLP-MD segment: its own frames relabelled by the reference engine.

γ bounds extrapolation, not error: a segment whose grade stayed low can
still drift where the potential is wrong. Every segment therefore has a few
of its saved frames (evenly spaced, the frame handed over always among
them) and its highest-graded selected frames relabelled with the run's
reference engine, in a job of their own. The potential's errors on the
sampled frames are the audit's numbers (``AuditDoc``); every relabelled
frame joins the next training set. A frame the reference engine fails on is
recorded and skipped; the run goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from dataclasses import dataclass, field

import numpy as np
from jobflow import Maker, job
from pymatgen.core import Structure
from pymatgen.core.trajectory import Trajectory

from haml_flows.engines.frames import atoms_with_velocities, bare_structure, measure_cost
from haml_flows.mtp.grade import mtp_calculator
from haml_flows.mtp.sampling import evenly_spaced
from haml_flows.schemas import AuditDoc, AuditedFrame, FaultCorrection
from haml_flows.spec import AuditSpec
from haml_flows.progress import link_job_folder

logger = logging.getLogger(__name__)


def audit_picks(trajectory: Trajectory, selected: Trajectory | None, audit: AuditSpec):
    """(index, kind) of the frames to relabel: sampled saved frames, then selected ones.

    The sample is ``audit.frames`` saved frames evenly spaced with the last one
    (the frame the segment hands over) included; the selection is the
    ``audit.selected_frames`` highest-graded selected frames at steps the
    sample does not already hold.
    """
    sample = [(i, "sample") for i in evenly_spaced(len(trajectory), audit.frames)]
    if selected is None or audit.selected_frames == 0:
        return sample, []
    sampled_steps = {trajectory.frame_properties[i]["step"] for i, _ in sample}
    ranked = sorted(
        range(len(selected)),
        key=lambda i: selected.frame_properties[i].get("gamma", 0.0),
        reverse=True,
    )
    chosen = [i for i in ranked if selected.frame_properties[i]["step"] not in sampled_steps]
    return sample, [(i, "selected") for i in sorted(chosen[: audit.selected_frames])]


def reference_calculator(maker):
    """The ASE calculator of an ASE-based reference (quiet), None for an external engine."""
    if not hasattr(maker, "_get_calculator"):
        return None
    kwargs = getattr(maker, "calculator_kwargs", None)
    if isinstance(kwargs, dict) and "verbosity" in kwargs:
        maker = dataclasses.replace(maker, calculator_kwargs={**kwargs, "verbosity": 0})
    return maker._get_calculator()


def reference_single_point(maker, structure: Structure, calculator=None) -> dict:
    """Energy, forces and stress (ASE's convention) of ``structure`` on the reference.

    ASE-based references (GFN1-xTB, Lennard-Jones) call their calculator
    (``calculator``, or a new one); an external engine (VASP, CP2K) runs a
    one-step segment in a scratch folder, whose first frame is the input
    structure's.
    """
    atoms = atoms_with_velocities(bare_structure(structure))
    calculator = calculator or reference_calculator(maker)
    if calculator is not None:
        atoms.calc = calculator
        energy = float(atoms.get_potential_energy())
        forces = atoms.get_forces()
        stress = atoms.get_stress() if atoms.cell.rank == 3 and all(atoms.pbc) else None
        return {"energy": energy, "forces": forces, "stress": stress}
    one_step = dataclasses.replace(maker, n_steps=1)
    with tempfile.TemporaryDirectory(prefix="haml_audit_") as scratch, contextlib.chdir(scratch):
        segment = one_step.make.original(one_step, structure)
    first = segment.trajectory.frame_properties[0]
    return {
        "energy": float(first["energy"]),
        "forces": np.asarray(first["forces"]),
        "stress": None if first.get("stress") is None else np.asarray(first["stress"]),
    }


@dataclass
class AuditMaker(Maker):
    """Relabel an MLP-MD segment's frames with the reference engine; measure the MLP's error.

    ``reference`` is the run's AIMD segment maker (its engine and settings);
    ``audit`` the spec's section.
    """

    name: str = "mlpmd audit"
    audit: AuditSpec = field(default_factory=AuditSpec)
    reference: Maker | None = None

    @job(data=["trajectory"])
    def make(
        self, trajectory: Trajectory, selected: Trajectory | None, potential: str
    ) -> AuditDoc:
        """Audit the segment's saved ``trajectory`` (and ``selected`` frames) on ``potential``."""
        link_job_folder()
        engine = getattr(self.reference, "engine_name", type(self.reference).__name__)
        with measure_cost() as meter:
            sample, chosen = audit_picks(trajectory, selected, self.audit)
            records, labelled, failures = [], [], []
            calc = mtp_calculator(potential)
            try:
                reference = reference_calculator(self.reference)
            except Exception:  # noqa: BLE001 - each frame then records the failure
                reference = None
            for source, picks in ((trajectory, sample), (selected, chosen)):
                for index, kind in picks:
                    props = source.frame_properties[index]
                    structure = bare_structure(source[index])
                    try:
                        label = reference_single_point(self.reference, structure, reference)
                    except Exception as exc:  # noqa: BLE001 - a failed label is recorded
                        failures.append(FaultCorrection(
                            handler="AuditReferenceFailure", step=int(props["step"]),
                            errors=[f"{type(exc).__name__}: {exc}"],
                            actions=["frame left out of the audit and the training set"],
                        ))
                        continue
                    atoms = atoms_with_velocities(structure)
                    atoms.calc = calc
                    error = atoms.get_forces() - label["forces"]
                    records.append(AuditedFrame(
                        step=int(props["step"]),
                        kind=kind,
                        gamma=props.get("gamma"),
                        force_rmse=float(np.sqrt(np.mean(error**2))),
                        force_max_error=float(np.abs(error).max()),
                        energy_error=float(
                            (atoms.get_potential_energy() - label["energy"]) / len(atoms)
                        ),
                    ))
                    labelled.append((structure, {
                        **label,
                        "forces": np.asarray(label["forces"]).tolist(),
                        "stress": None if label["stress"] is None
                        else np.asarray(label["stress"]).tolist(),
                        "step": int(props["step"]), "kind": kind, "gamma": props.get("gamma"),
                    }))
        return self._doc(engine, records, labelled, failures, meter.cost)

    def _doc(self, engine, records, labelled, failures, cost) -> AuditDoc:
        sampled = [r for r in records if r.kind == "sample"]
        for failure in failures:
            logger.warning("audit: reference failed at step %s: %s", failure.step,
                           failure.errors[0])
        if not sampled:
            return AuditDoc(
                engine=engine, frames=records, max_force_rmse=self.audit.max_force_rmse,
                trajectory=labelled_trajectory(labelled), failures=failures, cost=cost,
            )
        # RMS over every force component of every sampled frame (frames are alike in size)
        force_rmse = float(np.sqrt(np.mean([r.force_rmse**2 for r in sampled])))
        gammas = [r.gamma for r in sampled if r.gamma is not None and np.isfinite(r.gamma)]
        return AuditDoc(
            engine=engine,
            frames=records,
            trajectory=labelled_trajectory(labelled),
            force_rmse=force_rmse,
            force_max_error=max(r.force_max_error for r in sampled),
            energy_error=float(np.sqrt(np.mean([r.energy_error**2 for r in sampled]))),
            gamma_max=max(gammas) if gammas else None,
            max_force_rmse=self.audit.max_force_rmse,
            passed=force_rmse <= self.audit.max_force_rmse,
            failures=failures,
            cost=cost,
        )


def labelled_trajectory(labelled: list[tuple[Structure, dict]]) -> Trajectory | None:
    """Reference-labelled frames (structure, properties) as a Trajectory; None when none."""
    if not labelled:
        return None
    return Trajectory.from_structures(
        [s for s, _ in labelled], frame_properties=[p for _, p in labelled],
        constant_lattice=True,
    )
