"""MLP-MD seam: ASE Nose-Hoover dynamics on the MTP, stopped by the grade.

The extrapolation grade gamma comes from the calculator as a by-product of
each force call (basis values per neighbourhood against the MaxVol active set
of the training set); the segment stops at the first evaluated step whose
gamma exceeds ``gamma_break``, at the first failing in-segment reference
check (``audit.check_every_fs``), when a collapse guard fires, or at
``max_steps``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
from ase import units
from ase.md.npt import NPT
from jobflow import Maker, job
from pymatgen.core import Structure
from pymatgen.core.trajectory import Trajectory

from haml_flows.engines.frames import (
    atoms_with_velocities,
    measure_cost,
    mlpmd_start,
    standard_frame,
    structure_with_velocities,
)
from haml_flows.engines.audit import labelled_trajectory
from haml_flows.engines.checks import ReferenceCheck
from haml_flows.faults.collapse import CollapseGuard
from haml_flows.mtp.frames import cfg_to_frames
from haml_flows.engines.selection import SelectedFrames
from haml_flows.mtp.grade import ActiveSet, GradeError, candidate_active_set, mtp_calculator
from haml_flows.progress import StageProgress, current_stage, link_job_folder
from haml_flows.schemas import ActiveSetDoc, MlpMdDoc
from haml_flows.spec import ACTIVE_SET_FRAMES, AuditSpec, MlpMdSpec

logger = logging.getLogger(__name__)


def segment_active_set(
    potential: str,
    training_frames: list,
    active_set: dict | ActiveSetDoc | None = None,
    slots: list[list[int]] | None = None,
) -> ActiveSet | None:
    """The grade's active set of the training job, rebuilt from its slots.

    A training document stored before it kept its active set gets one built
    here, as MLIP builds it. None when the potential is broken (derivatives
    not finite): the collapse guard then stops the segment at its first
    force call.
    """
    try:
        if active_set is not None and slots is not None:
            doc = ActiveSetDoc.model_validate(active_set)
            return ActiveSet.from_slots(potential, training_frames, slots, mode=doc.mode)
        return candidate_active_set(
            potential, training_frames, max_frames=ACTIVE_SET_FRAMES
        )[0]
    except GradeError as exc:
        logger.warning("MLP-MD without a grade: %s", exc)
        return None


@dataclass
class MlpMdMaker(Maker):
    """One NVT Nose-Hoover MLP-MD segment that hands back at gamma > gamma_break.

    ``mlpmd`` is the spec's section (time step, step limit, gamma, thermostat,
    saving, collapse guard); ``seed`` seeds the active set's selection. With a
    ``reference`` (the run's AIMD segment maker) and ``check_every_fs``, the
    segment is checked against the reference while it runs
    (:class:`~haml_flows.engines.checks.ReferenceCheck`) and stops at the
    first check whose force RMSE exceeds ``check_force_rmse``.
    """

    name: str = "mlpmd segment"
    mlpmd: MlpMdSpec = field(default_factory=MlpMdSpec)
    seed: int = 0
    reference: Maker | None = None
    check_every_fs: float | None = None
    check_force_rmse: float = AuditSpec().max_force_rmse

    @job(data=["trajectory", "gamma_history", "selected"])
    def make(
        self,
        structure: Structure,
        potential: str,
        training_set: str,
        active_set: dict | None = None,
        active_set_slots: list[list[int]] | None = None,
    ) -> MlpMdDoc:
        """Run from the structure's positions and velocities until a stop rule.

        ``active_set`` and ``active_set_slots`` are the training job's (its
        ActiveSetDoc and slots); without them the active set is built here.
        """
        link_job_folder()
        motep_log = logging.getLogger("motep")
        motep_level = motep_log.level
        # motep warns at every step closer than min_dist; the grade reports it
        motep_log.setLevel(logging.ERROR)
        try:
            return self._run(
                structure, potential, training_set, active_set, active_set_slots
            )
        finally:
            motep_log.setLevel(motep_level)

    def _run(
        self,
        structure: Structure,
        potential: str,
        training_set: str,
        active_set_doc: dict | None = None,
        active_set_slots: list[list[int]] | None = None,
    ) -> MlpMdDoc:
        md = self.mlpmd
        structure, cooled_from = mlpmd_start(structure, md)
        with measure_cost() as meter:
            with measure_cost() as setup:
                training_frames = cfg_to_frames(training_set)
                active_set = segment_active_set(
                    potential, training_frames, active_set_doc, active_set_slots
                )
            # ASE's Nose-Hoover needs an upper-triangular cell; velocities turn too
            atoms = standard_frame(atoms_with_velocities(structure), "upper")
            calc = mtp_calculator(potential, active_set, every=md.gamma_every)
            atoms.calc = calc
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                dynamics = NPT(
                    atoms,
                    timestep=md.time_step * units.fs,
                    temperature_K=md.temperature,
                    ttime=md.thermostat_time * units.fs,
                    pfactor=None,
                )
            guard = CollapseGuard.for_training_set(
                atoms, training_frames, md.temperature, max_force=md.max_force,
                distance_margin=md.distance_margin,
                contact_tolerance=md.contact_tolerance,
                temperature_factor=md.temperature_factor,
                temperature_band=md.temperature_band,
                temperature_window=max(1, round(md.temperature_window_fs / md.time_step)),
            )

            def record(step: int) -> tuple[Structure, dict]:
                return structure_with_velocities(atoms), {
                    "step": step,
                    "energy": float(atoms.get_potential_energy()),
                    "temperature": float(atoms.get_temperature()),
                    "gamma": float(calc.last_gamma),
                    "velocities": atoms.get_velocities().tolist(),
                    # the step's own forces, kept by the calculator: no extra call
                    "forces": atoms.get_forces().tolist(),
                }

            checks = self._checks()
            selection = SelectedFrames(
                md.gamma_select, md.gamma_break, md.max_selected, md.save_interval
            )
            collapse = None
            saved: list[tuple[Structure, dict]] = []
            gamma_history: list[list[float]] = []
            seen_evaluations = 0
            stop_reason = "max_steps"
            step = 0
            progress = StageProgress(current_stage("MLP-MD"), md.max_steps)
            for step, _ in enumerate(dynamics.irun(steps=md.max_steps)):
                if step == 0 or progress.due():  # fields are built only for a line
                    progress.update(step, force=True, γ=f"{calc.last_gamma:.3g}",
                                    T=f"{atoms.get_temperature():.0f} K",
                                    **_check_field(checks))
                collapse = guard.check(step)
                if collapse:
                    stop_reason = "collapse"
                    break
                if calc.gamma_evaluations > seen_evaluations:
                    seen_evaluations = calc.gamma_evaluations
                    gamma_history.append([step, float(calc.last_gamma)])
                    selection.offer(step, float(calc.last_gamma), lambda: record(step))
                broke = calc.last_gamma > md.gamma_break
                if step % md.save_interval == 0 or broke or step == md.max_steps:
                    saved.append(record(step))
                if broke:
                    stop_reason = "gamma_break"
                    break
                if checks is not None and checks.due(step) and not checks.check(
                    atoms, step, float(calc.last_gamma)
                ):
                    stop_reason = "reference_check"
                    break
            progress.update(step, final=True, γ=f"{calc.last_gamma:.3g}",
                            T=f"{atoms.get_temperature():.0f} K", stop=stop_reason,
                            **_check_field(checks))
            if collapse or stop_reason == "reference_check":
                if collapse:
                    step = guard.rolled_back_to
                else:
                    step = checks.restore(atoms, guard.start)
                    logger.info(
                        "MLP-MD stopped by a reference check: force RMSE %.3f eV/A at step "
                        "%d (threshold %.3f); rolled back to step %d",
                        checks.records[-1].force_rmse, checks.records[-1].step,
                        checks.max_force_rmse, step,
                    )
                saved = [s for s in saved if s[1]["step"] < step] + [record(step)]
                gamma_history = [h for h in gamma_history if h[0] <= step]
                selection.drop_after(step)
        gammas = [g for _, g in gamma_history] or [float(calc.last_gamma)]
        properties = [p for _, p in saved]
        return MlpMdDoc(
            engine="ase+motep",
            structure=structure_with_velocities(atoms),
            trajectory=Trajectory.from_structures(
                [f for f, _ in saved], frame_properties=properties, constant_lattice=True
            ),
            gamma_history=gamma_history,
            n_steps=step,
            time_step_fs=md.time_step,
            simulated_fs=step * md.time_step,
            stop_reason=stop_reason,
            gamma_at_stop=float(calc.last_gamma),
            gamma_max=float(np.max(gammas)),
            grade_mode=active_set.mode if active_set is not None else None,
            gamma_select=md.gamma_select,
            selected=selection.trajectory(),
            n_selected=len(selection),
            temperature_start=float(properties[0]["temperature"]),
            temperature_end=float(properties[-1]["temperature"]),
            start_cooled_from=cooled_from,
            cost=meter.cost,
            gamma_seconds=float(getattr(calc, "gamma_seconds", 0.0)),
            collapse=collapse or [],
            rolled_back_to_step=(
                step if stop_reason == "reference_check" else guard.rolled_back_to
            ),
            guard_seconds=guard.seconds,
            active_set_cost=setup.cost,
            reference_checks=checks.records if checks is not None else [],
            checked=labelled_trajectory(checks.failed) if checks is not None else None,
            check_seconds=checks.seconds if checks is not None else 0.0,
        )

    def _checks(self) -> ReferenceCheck | None:
        """The segment's reference checks, None without a reference or an interval."""
        if self.reference is None or self.check_every_fs is None:
            return None
        every = max(1, round(self.check_every_fs / self.mlpmd.time_step))
        return ReferenceCheck(self.reference, every, self.check_force_rmse)


def _check_field(checks: ReferenceCheck | None) -> dict:
    """The progress line's field of the newest reference check, if any."""
    rmse = checks.latest_rmse if checks is not None else None
    return {} if rmse is None else {"check": f"{rmse:.3f} eV/A"}

