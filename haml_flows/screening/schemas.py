"""Documents a screen stores: one per candidate, one result per finished candidate."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field


def _now() -> datetime:
    return datetime.now(timezone.utc)


class CandidateMetadata(BaseModel):
    """Labels of one candidate; also the FireWorks workflow's ``metadata``."""

    screen: str = Field(description="Screen name (the screen file's screen.name).")
    candidate: str = Field(description="Candidate name, also its RunSpec name.")
    system: str = Field(description="Name of the base RunSpec the screen varies.")
    dopant: str | None = Field(description="Dopant element; None for the undoped baseline.")
    host: str | None = Field(description="Host site family replaced, e.g. S_4d.")
    concentration: float | None = Field(
        description="Fraction of the host family replaced; None when undoped."
    )
    seed: int = Field(description="reference.seed: seed of the first velocity draw.")
    spec_hash: str = Field(description="sha256 of the resolved RunSpec (canonical JSON).")
    run_id: str = Field(description="Run id of the candidate's HAML run.")


class CandidateDoc(CandidateMetadata):
    """A submitted (or being submitted) candidate, collection ``haml_screen_candidates``.

    ``_id`` is ``<screen>:<spec_hash>``, so a second submission of the same
    candidate collides with the first instead of adding it twice.
    """

    doc_type: Literal["screen_candidate"] = Field(
        "screen_candidate", description="Document kind."
    )
    formula: str = Field(description="Reduced formula of the built structure.")
    n_atoms: int = Field(description="Atoms in the simulation cell.")
    spec: dict = Field(description="The resolved RunSpec the workflow was made from.")
    source: str = Field(description="Screen file the candidate came from.")
    submitted: bool = Field(
        description="False while the workflow is being added; True once it is on "
        "the LaunchPad."
    )
    fw_ids: list[int] = Field(
        default_factory=list, description="Firework ids of the workflow as added."
    )
    submitted_at: datetime = Field(default_factory=_now, description="UTC time.")


GUARD_KINDS: dict[str, str] = {
    "temperature_band": "TemperatureBandHandler",
    "close_contact": "CloseContactHandler",
    "bad_forces": "BadForcesHandler",
    "overheating": "OverheatingHandler",
}
"""Guard kind -> the collapse-guard handler (haml_flows.faults.collapse) it counts."""


class RunAudit(BaseModel):
    """How far a run's trajectory can be trusted: its audits and the guards that fired.

    Sums over the run's CycleDocs (``audit_*``, ``mlpmd_collapse``,
    ``training_fallback``, ``aimd_corrections``), made in the database.
    """

    audited_cycles: int = Field(0, description="Cycles whose MLP-MD was audited.")
    audits_failed: int = Field(
        0, description="Audits whose force RMSE was above audit.max_force_rmse."
    )
    audit_force_rmse_max: float | None = Field(
        None, description="Largest audited force RMSE of the run, eV/Angstrom; None: no audit."
    )
    audit_force_rmse_last: float | None = Field(
        None, description="Audited force RMSE of the last audited cycle, eV/Angstrom."
    )
    audit_last_cycle: int | None = Field(None, description="The last audited cycle.")
    cycles_guarded: int = Field(
        0, description="Cycles whose MLP-MD a collapse guard stopped (stop_reason collapse)."
    )
    guards: dict[str, int] = Field(
        default_factory=dict,
        description="Guard kind (GUARD_KINDS, and 'other') -> firings over the run.",
    )
    training_fallbacks: int = Field(
        0, description="Cycles whose training failed and kept the previous potential."
    )
    aimd_corrections: int = Field(
        0, description="Reference-engine failures corrected during AIMD segments."
    )


class CandidateResultDoc(BaseModel):
    """Structural change and cost of a finished candidate, collection ``haml_screen_results``.

    Computed once from the stored RunDoc (structure after optimization),
    RunSummaryDoc (final structure) and CycleDocs, then reused: a finished
    run does not change. ``_id`` is the run id.
    """

    doc_type: Literal["screen_result"] = Field("screen_result", description="Document kind.")
    run_id: str = Field(description="Run id of the candidate.")
    screen: str = Field(description="Screen name.")
    candidate: str = Field(description="Candidate name.")
    similarity: float = Field(
        description="Structure similarity in [0, 1] of the final to the optimized "
        "structure (haml_flows.analysis.similarity); 1 = unchanged."
    )
    bonds_initial: dict[str, int] = Field(description="Bond counts per pair, optimized structure.")
    bonds_final: dict[str, int] = Field(description="Bond counts per pair, final structure.")
    bond_change: dict[str, int] = Field(description="Final minus initial bond counts per pair.")
    bond_change_total: int = Field(description="Sum of |bond_change| over all pairs.")
    totals: dict[str, float] = Field(
        description="Sums over the run's CycleDocs: cycles, simulated_fs (the last "
        "cumulative_fs), aimd_fs, aimd_cpu_s, training_cpu_s, mlpmd_cpu_s."
    )
    audit: RunAudit | None = Field(
        None, description="Audits and guards of the run; None in results stored before "
        "they were kept (the next ranking adds them)."
    )
    summary_completed_at: datetime = Field(
        description="completed_at of the RunSummaryDoc this result was computed from."
    )
    computed_at: datetime = Field(default_factory=_now, description="UTC time.")


class CandidateRow(BaseModel):
    """One line of ``haml results``: labels, progress, structural change and cost."""

    rank: int | None = Field(description="1 = best by the rank key; None if not ranked.")
    screen: str = Field(description="Screen name.")
    candidate: str = Field(description="Candidate name.")
    run_id: str = Field(description="Run id.")
    dopant: str | None = Field(description="Dopant element; None = undoped.")
    host: str | None = Field(description="Host site family replaced.")
    concentration: float | None = Field(description="Fraction of the host family replaced.")
    seed: int = Field(description="reference.seed of the run.")
    state: str = Field(description="FireWorks workflow state.")
    cycles: int = Field(description="HAML cycles stored.")
    simulated_ps: float = Field(description="Simulated time so far, ps.")
    finished: bool = Field(description="True once the run's summary is stored.")
    similarity: float | None = Field(description="Final vs optimized structure, [0, 1].")
    bond_change_total: int | None = Field(description="Sum of |final - initial| bond counts.")
    bond_change: dict[str, int] = Field(
        default_factory=dict, description="Final minus initial bond counts per pair."
    )
    haml_cpu_h_per_ps: float | None = Field(description="HAML CPU hours per simulated ps.")
    aimd_cpu_h_per_ps: float | None = Field(description="AIMD CPU hours per AIMD ps.")
    speedup: float | None = Field(description="AIMD cost per ps over HAML cost per ps.")
    audit: RunAudit | None = Field(
        None, description="Audits and guards summed over the stored cycles; None: no cycle."
    )
