"""Documents a HAML run stores: one per segment, one per cycle, one per run.

Segment documents keep trajectories, training sets and potentials in fields
that the job decorators route to the GridFS ``data`` store; cycle and run
documents are small and queryable without loading any of them. A
``CycleState`` is what one cycle job hands the next.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from jobflow import OutputReference
from pydantic import BaseModel, Field
from pymatgen.core import Structure
from pymatgen.core.trajectory import Trajectory


def _now() -> datetime:
    return datetime.now(timezone.utc)


class StageCost(BaseModel):
    """Wall and CPU time of one stage of a cycle."""

    wall_seconds: float = Field(description="Elapsed wall-clock seconds.")
    cpu_seconds: float = Field(
        description="CPU seconds of the process (all threads) during the stage."
    )
    cores: int | None = Field(
        None, description="Cores an external engine reported (VASP's OUTCAR); None = local."
    )


class FaultCorrection(BaseModel):
    """One firing of a fault handler (custodian style): what it found, what it did."""

    handler: str = Field(description="Handler class that fired, e.g. 'BadForcesHandler'.")
    step: int | None = Field(
        None, description="MD step at which it fired; None outside an MD loop."
    )
    errors: list[str] = Field(description="What the handler found.")
    actions: list[str] = Field(description="What was done about it.")


class AimdSegmentDoc(BaseModel):
    """Output of one AIMD segment on the reference engine."""

    doc_type: Literal["aimd_segment"] = Field(
        "aimd_segment", description="Document kind."
    )
    engine: str = Field(description="Reference engine, e.g. 'GFN1-xTB'.")
    structure: Structure = Field(
        description="Final structure; site property 'velocities' in ASE units."
    )
    trajectory: Trajectory = Field(
        description="Frames with energy, forces, stress, velocities, temperature."
    )
    n_steps: int = Field(description="MD steps run.")
    time_step_fs: float = Field(
        description="Time step requested, fs (a correction may have shortened it; "
        "simulated_fs counts the steps actually taken)."
    )
    simulated_fs: float = Field(description="Simulated time in fs.")
    temperature_start: float = Field(description="Temperature of the first frame, K.")
    temperature_end: float = Field(description="Temperature of the last frame, K.")
    cost: StageCost = Field(description="Wall and CPU time of the segment.")
    attempts: int = Field(
        1, description="Runs of the segment, 1 + corrections that led to a rerun."
    )
    corrections: list[FaultCorrection] = Field(
        default_factory=list,
        description="Error-handler corrections applied before the segment completed.",
    )


class ActiveSetDoc(BaseModel):
    """The extrapolation grade's MaxVol active set of one potential (MLIP's state.als).

    Its rows are the derivatives of energies with respect to every MTP
    parameter; the (frame, atom) of each row is the training document's
    ``active_set_slots`` (in the data store).
    """

    mode: Literal["neighborhood", "configuration"] = Field(
        description="Rows of site energies ('neighborhood') or configuration energies."
    )
    n_params: int = Field(description="Parameters of the potential: rows of the matrix.")
    candidate_frames: list[int] = Field(
        description="Training-set indices of the frames the set was chosen from."
    )
    n_candidates: int = Field(description="Candidate rows (neighbourhoods or frames).")
    shortfall: int = Field(
        description="Rows missing to span the parameters the candidates excite (0: "
        "spanned); a short set makes MD break as soon as it leaves the training frames."
    )
    uncovered: int = Field(
        description="Parameters no candidate row covers; they keep MLIP's 1e-6 start "
        "row, so a configuration exciting them grades far above any threshold."
    )
    uncovered_blocks: dict[str, int] = Field(
        default_factory=dict,
        description="Uncovered parameters per block, e.g. {'radial Se-Cl': 24}.",
    )
    cost: StageCost = Field(description="Wall and CPU time of choosing the set.")


class TrainingDoc(BaseModel):
    """Output of one MTP training on all reference frames gathered so far."""

    doc_type: Literal["mtp_training"] = Field(
        "mtp_training", description="Document kind."
    )
    engine: str = Field(description="Training engine, e.g. 'motep'.")
    potential: str = Field(description="Trained potential, MLIP .mtp text.")
    training_set: str = Field(
        description="All reference frames so far, MLIP .cfg text."
    )
    level: int = Field(description="MTP lev_max.")
    cutoff: float = Field(description="Radial cutoff in Angstrom.")
    training_set_size: int = Field(description="Frames in the training set.")
    n_train: int = Field(description="Frames fitted.")
    n_test: int = Field(description="Held-out frames (spread over the run, never the newest).")
    energy_rmse: float = Field(description="Energy RMSE on held-out frames, eV/atom.")
    force_rmse: float = Field(description="Force RMSE on held-out frames, eV/Angstrom.")
    warm_started: bool = Field(description="Started from the previous potential.")
    cost: StageCost = Field(description="Wall and CPU time of the training.")
    active_set: ActiveSetDoc | None = Field(
        None,
        description="The grade's active set of the potential; None when the "
        "potential's derivatives are not finite (or in a run stored before it was kept).",
    )
    active_set_slots: list[list[int]] | None = Field(
        None,
        description="[training frame, atom] of each row of the active set's matrix "
        "(atom -1 in configuration mode; [-1, -1] for a 1e-6 start row).",
    )
    fallback: FaultCorrection | None = Field(
        None,
        description="Set when the fit failed and the previous potential was kept "
        "(its errors are then those of the previous potential on these frames).",
    )


class ReferenceCheckDoc(BaseModel):
    """One in-segment reference check: the running frame's MLP forces against the reference."""

    step: int = Field(description="MLP-MD step of the checked frame.")
    gamma: float | None = Field(None, description="Extrapolation grade at the frame.")
    force_rmse: float | None = Field(
        None, description="RMS of the force-component errors, eV/Angstrom; None: no label."
    )
    force_max_error: float | None = Field(
        None, description="Largest force-component error, eV/Angstrom."
    )
    energy_error: float | None = Field(None, description="MLP minus reference, eV/atom.")
    passed: bool | None = Field(
        description="Force RMSE within audit.max_force_rmse; None: the reference failed."
    )
    error: str | None = Field(None, description="The reference's failure, when it failed.")


class MlpMdDoc(BaseModel):
    """Output of one MLP-MD segment watched by the extrapolation grade."""

    doc_type: Literal["mlpmd_segment"] = Field(
        "mlpmd_segment", description="Document kind."
    )
    engine: str = Field(description="MD engine and potential, e.g. 'ase+motep'.")
    structure: Structure = Field(
        description="Final structure; site property 'velocities' in ASE units."
    )
    trajectory: Trajectory = Field(
        description="Saved frames (every save_interval steps, and the last one)."
    )
    gamma_history: list[list[float]] = Field(
        description="[step, gamma] at every step where gamma was evaluated."
    )
    n_steps: int = Field(description="MD steps run.")
    time_step_fs: float = Field(description="Time step in fs.")
    simulated_fs: float = Field(description="Simulated time in fs.")
    stop_reason: Literal["gamma_break", "max_steps", "collapse", "reference_check"] = Field(
        description="Why the segment ended; 'collapse': the collapse guard fired "
        "and the segment was rolled back to its last trusted frame; "
        "'reference_check': a reference check found the force RMSE over the audit's "
        "threshold and the segment was rolled back to the last check that passed."
    )
    gamma_at_stop: float = Field(description="Extrapolation grade of the last step.")
    gamma_max: float = Field(description="Largest grade seen during the segment.")
    grade_mode: Literal["neighborhood", "configuration"] | None = Field(
        None,
        description="Rows the grade was computed over (all MTP parameters); None: "
        "stored before the mode was recorded, or no grade (a broken potential).",
    )
    gamma_select: float | None = Field(
        None, description="Selection threshold of the segment (MLIP's select:threshold)."
    )
    selected: Trajectory | None = Field(
        None,
        description="Frames graded above gamma_select and not above gamma_break "
        "(frame property 'gamma'), for the next cycle to label.",
    )
    n_selected: int = Field(0, description="Frames in 'selected'.")
    temperature_start: float = Field(description="Temperature of the first frame, K.")
    temperature_end: float = Field(description="Temperature of the last frame, K.")
    start_cooled_from: float | None = Field(
        None,
        description="Temperature (K) of the incoming frame when it was hotter than "
        "mlpmd.start_temperature_factor x the target and its velocities were scaled "
        "down to the target; None: started from the incoming velocities.",
    )
    cost: StageCost = Field(description="Wall and CPU time of the segment.")
    gamma_seconds: float = Field(
        description="Wall seconds spent on the grade (part of cost)."
    )
    collapse: list[FaultCorrection] = Field(
        default_factory=list,
        description="Collapse-guard handlers that fired (empty: no collapse).",
    )
    rolled_back_to_step: int | None = Field(
        None,
        description="Step restored after a collapse or a failed reference check; "
        "n_steps equals it.",
    )
    guard_seconds: float = Field(
        0.0, description="Wall seconds spent on the collapse guard (part of cost)."
    )
    active_set_cost: StageCost | None = Field(
        None,
        description=(
            "Wall and CPU time of building the MaxVol active set from the "
            "training set before the first step (part of cost)."
        ),
    )
    reference_checks: list[ReferenceCheckDoc] = Field(
        default_factory=list,
        description="In-segment reference checks (audit.check_every_fs), in step order.",
    )
    checked: Trajectory | None = Field(
        None,
        description="The frame whose check failed, with the reference's energy, forces "
        "and stress: training data for the next cycle.",
    )
    check_seconds: float = Field(
        0.0, description="Wall seconds spent on reference checks (part of cost)."
    )


class AuditedFrame(BaseModel):
    """One MLP-MD frame relabelled with the reference engine: the MLP's error there."""

    step: int = Field(description="MLP-MD step of the frame.")
    kind: Literal["sample", "selected"] = Field(
        description="'sample': evenly spaced over the segment (the audit's numbers); "
        "'selected': graded above gamma_select (added for training)."
    )
    gamma: float | None = Field(None, description="Extrapolation grade at the frame.")
    force_rmse: float = Field(description="RMS of the force-component errors, eV/Angstrom.")
    force_max_error: float = Field(
        description="Largest force-component error, eV/Angstrom."
    )
    energy_error: float = Field(description="MLP minus reference energy, eV/atom.")


class AuditDoc(BaseModel):
    """The audit of one MLP-MD segment: its frames relabelled by the reference engine."""

    doc_type: Literal["mlpmd_audit"] = Field("mlpmd_audit", description="Document kind.")
    engine: str = Field(description="Reference engine that relabelled the frames.")
    frames: list[AuditedFrame] = Field(description="Every relabelled frame and its errors.")
    trajectory: Trajectory | None = Field(
        None,
        description="The relabelled frames with the reference's energy, forces and "
        "stress (step, kind, gamma as frame properties): training data.",
    )
    force_rmse: float | None = Field(
        None, description="Force RMSE over the sampled frames, eV/Angstrom; None: none audited."
    )
    force_max_error: float | None = Field(
        None, description="Largest force-component error over the sampled frames."
    )
    energy_error: float | None = Field(
        None, description="RMS energy error over the sampled frames, eV/atom."
    )
    gamma_max: float | None = Field(
        None, description="Largest grade among the sampled frames."
    )
    max_force_rmse: float = Field(description="The audit's threshold (audit.max_force_rmse).")
    passed: bool | None = Field(
        None,
        description="force_rmse <= max_force_rmse; None when no frame could be audited.",
    )
    failures: list[FaultCorrection] = Field(
        default_factory=list,
        description="Frames the reference engine failed on (recorded; the run goes on).",
    )
    cost: StageCost = Field(description="Wall and CPU time of the audit.")


class CycleDoc(BaseModel):
    """One HAML cycle: AIMD, MTP training and MLP-MD, with their costs."""

    doc_type: Literal["haml_cycle"] = Field("haml_cycle", description="Document kind.")
    run_id: str = Field(description="Run this cycle belongs to.")
    cycle: int = Field(description="Cycle index, starting at 1.")
    aimd_steps: int = Field(description="AIMD steps in this cycle.")
    aimd_fs: float = Field(description="Simulated AIMD time in this cycle, fs.")
    mlpmd_steps: int = Field(description="MLP-MD steps in this cycle.")
    mlpmd_fs: float = Field(description="Simulated MLP-MD time in this cycle, fs.")
    gamma_at_stop: float = Field(description="Grade at the last MLP-MD step.")
    gamma_max: float = Field(description="Largest grade in the MLP-MD segment.")
    grade_mode: str | None = Field(
        None, description="Rows of the grade ('neighborhood', 'configuration'); None: unknown."
    )
    n_selected: int = Field(
        0, description="MLP-MD frames graded above gamma_select, kept for labelling."
    )
    stop_reason: str = Field(description="Why the MLP-MD segment ended.")
    training_set_size: int = Field(description="Frames the MTP was trained on.")
    energy_rmse: float = Field(description="Held-out energy RMSE, eV/atom.")
    force_rmse: float = Field(description="Held-out force RMSE, eV/Angstrom.")
    aimd_cost: StageCost = Field(description="Cost of the AIMD segment.")
    training_cost: StageCost = Field(description="Cost of the MTP training.")
    mlpmd_cost: StageCost = Field(description="Cost of the MLP-MD segment.")
    mlpmd_gamma_seconds: float = Field(description="Wall seconds spent on the grade.")
    cumulative_fs: float = Field(description="Simulated time of the run so far, fs.")
    temperature_aimd_start: float | None = Field(
        description="AIMD first frame, K; None in a continued cycle."
    )
    temperature_aimd_end: float | None = Field(
        description="AIMD last frame, K; None in a continued cycle."
    )
    temperature_mlpmd_start: float = Field(description="MLP-MD first frame, K.")
    temperature_mlpmd_end: float = Field(description="MLP-MD last frame, K.")
    aimd_job: str | None = Field(
        description="uuid of the AIMD job (its trajectory); None in a continued cycle."
    )
    training_job: str = Field(
        description="uuid of the training job whose potential the MLP-MD used."
    )
    mlpmd_job: str = Field(description="uuid of the MLP-MD job (its trajectory).")
    aimd_corrections: list[FaultCorrection] = Field(
        default_factory=list,
        description="Reference-engine failures corrected during the AIMD segment.",
    )
    training_fallback: FaultCorrection | None = Field(
        None, description="Set when training failed and the previous potential was kept."
    )
    mlpmd_collapse: list[FaultCorrection] = Field(
        default_factory=list,
        description="Collapse-guard firings; the MLP-MD was rolled back and handed "
        "over to AIMD early.",
    )
    reference_checks: list[ReferenceCheckDoc] = Field(
        default_factory=list,
        description="The MLP-MD's in-segment reference checks (audit.check_every_fs); "
        "stop_reason 'reference_check' when the last one failed.",
    )
    continued: bool = Field(
        False,
        description="MLP-MD only: the previous segment reached max_steps trusted, so "
        "this cycle continued it with the same potential (no AIMD, no training).",
    )
    audit_force_rmse: float | None = Field(
        None, description="Audited force RMSE along the MLP-MD, eV/Angstrom; None: no audit."
    )
    audit_force_max_error: float | None = Field(
        None, description="Largest audited force-component error, eV/Angstrom."
    )
    audit_energy_error: float | None = Field(
        None, description="RMS audited energy error, eV/atom."
    )
    audit_gamma_max: float | None = Field(
        None, description="Largest grade among the audited frames."
    )
    audit_frames: int = Field(0, description="Frames the reference engine relabelled.")
    audit_passed: bool | None = Field(
        None, description="The audit's verdict; None: no audit (or none possible)."
    )
    audit_job: str | None = Field(None, description="uuid of the audit job.")
    audit_cost: StageCost | None = Field(
        None,
        description="Wall and CPU time of the audit (reference single points and the "
        "MLP's forces on the audited frames); part of HAML's cost. None: no audit.",
    )
    completed_at: datetime = Field(default_factory=_now, description="UTC time.")

    @property
    def cumulative_ps(self) -> float:
        """Simulated time of the run so far, ps."""
        return self.cumulative_fs / 1000.0


class CycleTally(BaseModel):
    """Counts over the cycles of a run so far: what went untrusted."""

    cycles: int = Field(0, description="Cycles recorded.")
    guarded: int = Field(0, description="Cycles whose MLP-MD a guard stopped.")
    audits_failed: int = Field(0, description="Cycles whose audit failed.")
    checked: int = Field(0, description="Cycles whose MLP-MD a reference check stopped.")

    def after(self, doc: CycleDoc | None) -> CycleTally:
        """The counts with one more recorded cycle (none: unchanged)."""
        if doc is None:
            return self
        return CycleTally(
            cycles=self.cycles + 1,
            guarded=self.guarded + (doc.stop_reason == "collapse"),
            audits_failed=self.audits_failed + (doc.audit_passed is False),
            checked=self.checked + (doc.stop_reason == "reference_check"),
        )


class CycleState(BaseModel):
    """What a cycle job starts from; it hands the next cycle job a new one.

    Built by the run's first job for cycle 1, by each cycle job for the next
    one, and by ``haml resume`` from the last stored CycleDoc. Until the job
    runs, a field may hold an OutputReference to the previous cycle's jobs;
    jobflow resolves it when the job starts.
    """

    run_id: str = Field(description="Run the cycle belongs to.")
    cycle: int = Field(1, description="Index of the cycle this state starts, from 1.")
    structure: Structure | OutputReference = Field(
        description="Start frame; site property 'velocities' (ASE units) after cycle 1."
    )
    training_set: str | None | OutputReference = Field(
        None, description="Reference frames so far, MLIP .cfg text; None before cycle 1."
    )
    potential: str | None | OutputReference = Field(
        None, description="Latest potential, MLIP .mtp text; None before cycle 1."
    )
    previous: CycleDoc | None | OutputReference = Field(
        None,
        description="The previous cycle's document: simulated time, stop reason, "
        "training fallback and the training job whose potential is the latest.",
    )
    pending: list[Trajectory | OutputReference | None] = Field(
        default_factory=list,
        description="Reference-labelled frames (audits) not yet in the training set; "
        "the next training adds them.",
    )
    aimd_steps: int | None = Field(
        None, description="Steps of the last AIMD segment run (lengthening starts there)."
    )
    tally: CycleTally = Field(
        default_factory=CycleTally,
        description="Counts up to the cycle before 'previous' (each cycle job adds it).",
    )

    @property
    def simulated_fs(self) -> float:
        """Simulated time of the run before this cycle, fs."""
        return self.previous.cumulative_fs if self.previous is not None else 0.0

    @classmethod
    def from_cycle_doc(
        cls,
        doc: CycleDoc,
        structure: Structure,
        training_set: str,
        potential: str,
        *,
        pending: list[Trajectory] | None = None,
        earlier: list[CycleDoc] | None = None,
    ) -> CycleState:
        """The state after the stored cycle ``doc``: its last frame, training set, potential.

        ``pending``: the audits' relabelled frames since the last training;
        ``earlier``: the cycles before ``doc``, for the tally and the length
        of the last AIMD segment.
        """
        before = earlier or []
        tally = CycleTally()
        for cycle in before:
            tally = tally.after(cycle)
        steps = [c.aimd_steps for c in [*before, doc] if c.aimd_steps]
        return cls(
            run_id=doc.run_id,
            cycle=doc.cycle + 1,
            structure=structure,
            training_set=training_set,
            potential=potential,
            previous=doc,
            pending=pending or [],
            aimd_steps=steps[-1] if steps else None,
            tally=tally,
        )


class RunDoc(BaseModel):
    """A HAML run: its spec and system, written when the run starts."""

    doc_type: Literal["haml_run"] = Field("haml_run", description="Document kind.")
    run_id: str = Field(description="Unique run identifier.")
    name: str = Field(description="Spec name.")
    spec: dict = Field(description="The resolved spec the run was made from.")
    formula: str = Field(description="Reduced formula of the system.")
    n_atoms: int = Field(description="Atoms in the simulation cell.")
    initial_structure: Structure = Field(description="Structure before optimization.")
    structure: Structure = Field(description="Structure after geometry optimization.")
    optimization_cost: StageCost = Field(description="Cost of the optimization.")
    created_at: datetime = Field(default_factory=_now, description="UTC time.")


class RunSummaryDoc(BaseModel):
    """Written when the cycle loop ends."""

    doc_type: Literal["haml_run_summary"] = Field(
        "haml_run_summary", description="Document kind."
    )
    run_id: str = Field(description="Run identifier.")
    cycles: int = Field(description="Cycles completed.")
    simulated_fs: float = Field(description="Total simulated time, fs.")
    stop_reason: Literal["total_time", "max_cycles"] = Field(
        description="Which stopping rule ended the loop."
    )
    structure: Structure = Field(description="Final structure with velocities.")
    cycles_guarded: int = Field(0, description="Cycles whose MLP-MD a guard stopped.")
    audits_failed: int = Field(0, description="Cycles whose audit failed.")
    cycles_checked: int = Field(
        0, description="Cycles whose MLP-MD a reference check stopped (audit.check_every_fs)."
    )
    completed_at: datetime = Field(default_factory=_now, description="UTC time.")
