"""The HAML loop: geometry optimization, then AIMD -> MTP training -> MLP-MD cycles.

Each cycle job replaces itself with the cycle's jobs and the next cycle job,
so the loop runs unchanged under ``run_locally`` and under FireWorks, where
each replacement becomes a detour.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import uuid
from dataclasses import dataclass, field

from jobflow import CURRENT_JOB, Flow, Job, Maker, OutputReference, Response, job
from pymatgen.core import Structure

from haml_flows.engines.audit import AuditMaker
from haml_flows.engines.commands import COMMANDS, MLP
from haml_flows.engines.mlpmd import MlpMdMaker
from haml_flows.engines.reference import (
    AimdSegmentMaker,
    GeometryOptimization,
    LennardJonesAimdSegmentMaker,
)
from haml_flows.engines.training import MtpTrainMaker
from haml_flows.schemas import CycleDoc, CycleState, RunDoc, RunSummaryDoc, StageCost
from haml_flows.settings import HamlSettings, get_settings
from haml_flows.spec import AuditSpec, MlpMdSpec, ReferenceSpec, RunSpec, SpecError, StopSpec

logger = logging.getLogger("haml_flows.progress")


def new_run_id(name: str) -> str:
    """A unique, readable run id."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def stage_uuid(run_id: str, cycle: int, stage: str) -> str:
    """The job uuid of one stage of one cycle, the same every time it is built.

    jobflow upserts outputs on (uuid, index), so a stage that runs again (a
    FireWorks rerun after a lost worker, or ``haml resume``) replaces its
    output: no cycle is stored twice.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"haml-flows:{run_id}/{cycle}/{stage}"))


@job
def start_run(
    structure: Structure,
    run_id: str,
    name: str,
    spec: dict,
    optimization: GeometryOptimization | None,
) -> RunDoc:
    """Optimize the geometry (fixed cell) and write the run document."""
    if optimization is None:
        optimized, cost = structure, StageCost(wall_seconds=0.0, cpu_seconds=0.0)
    else:
        optimized, cost = optimization.optimize(structure)
    logger.info(
        "run %s: %s, %d atoms, optimization %.1f s",
        run_id,
        structure.composition.reduced_formula,
        len(structure),
        cost.wall_seconds,
    )
    return RunDoc(
        run_id=run_id,
        name=name,
        spec=spec,
        formula=structure.composition.reduced_formula,
        n_atoms=len(structure),
        initial_structure=structure,
        structure=optimized,
        optimization_cost=cost,
    )


@job
def record_cycle(
    run_id: str,
    cycle: int,
    previous_fs: float,
    aimd: dict,
    training: dict,
    mlpmd: dict,
    jobs: dict,
    continued: bool = False,
    audit: dict | None = None,
) -> CycleDoc:
    """Gather one cycle's numbers into its CycleDoc and report progress."""
    audit = audit or {}
    doc = CycleDoc(
        run_id=run_id,
        cycle=cycle,
        aimd_steps=aimd["n_steps"],
        aimd_fs=aimd["simulated_fs"],
        mlpmd_steps=mlpmd["n_steps"],
        mlpmd_fs=mlpmd["simulated_fs"],
        gamma_at_stop=mlpmd["gamma_at_stop"],
        gamma_max=mlpmd["gamma_max"],
        grade_mode=mlpmd.get("grade_mode"),
        n_selected=mlpmd.get("n_selected") or 0,
        stop_reason=mlpmd["stop_reason"],
        training_set_size=training["training_set_size"],
        energy_rmse=training["energy_rmse"],
        force_rmse=training["force_rmse"],
        aimd_cost=aimd["cost"],
        training_cost=training["cost"],
        mlpmd_cost=mlpmd["cost"],
        mlpmd_gamma_seconds=mlpmd["gamma_seconds"],
        cumulative_fs=previous_fs + aimd["simulated_fs"] + mlpmd["simulated_fs"],
        temperature_aimd_start=aimd["temperature_start"],
        temperature_aimd_end=aimd["temperature_end"],
        temperature_mlpmd_start=mlpmd["temperature_start"],
        temperature_mlpmd_end=mlpmd["temperature_end"],
        aimd_job=jobs["aimd"],
        training_job=jobs["training"],
        mlpmd_job=jobs["mlpmd"],
        aimd_corrections=aimd.get("corrections") or [],
        training_fallback=training.get("fallback"),
        mlpmd_collapse=mlpmd.get("collapse") or [],
        reference_checks=mlpmd.get("reference_checks") or [],
        continued=continued,
        audit_force_rmse=audit.get("force_rmse"),
        audit_force_max_error=audit.get("force_max_error"),
        audit_energy_error=audit.get("energy_error"),
        audit_gamma_max=audit.get("gamma_max"),
        audit_frames=len(audit.get("frames") or []),
        audit_passed=audit.get("passed"),
        audit_job=jobs.get("audit"),
        audit_cost=audit.get("cost"),
    )
    if continued:
        head = "cycle %d | continued (previous segment trusted to max_steps), MTP of %d frames"
        args = [doc.cycle, doc.training_set_size]
    else:
        head = "cycle %d | AIMD %d steps %.1f s | MTP %d frames, F-RMSE %.3f eV/A, %.1f s"
        args = [
            doc.cycle,
            doc.aimd_steps,
            doc.aimd_cost.wall_seconds,
            doc.training_set_size,
            doc.force_rmse,
            doc.training_cost.wall_seconds,
        ]
    audited = (
        f" | audit F-RMSE {doc.audit_force_rmse:.3f} eV/A "
        f"({'pass' if doc.audit_passed else 'fail'})"
        if doc.audit_force_rmse is not None else ""
    )
    logger.info(
        head + " | MLP-MD %d steps (%s, gamma %.3g) %.1f s%s | %.3f ps",
        *args,
        doc.mlpmd_steps,
        doc.stop_reason,
        doc.gamma_at_stop,
        doc.mlpmd_cost.wall_seconds,
        audited,
        doc.cumulative_ps,
        extra={"haml_cycle": doc.cycle, "haml_ps": doc.cumulative_ps},
    )
    faults = [("AIMD", c) for c in doc.aimd_corrections]
    faults += [("training", doc.training_fallback)] if doc.training_fallback else []
    faults += [("MLP-MD", c) for c in doc.mlpmd_collapse]
    for stage, fault in faults:
        logger.warning(
            "cycle %d | %s: %s -> %s", doc.cycle, stage, "; ".join(fault.errors),
            fault.handler,
        )
    return doc


_AIMD_FIELDS = (
    "n_steps", "simulated_fs", "temperature_start", "temperature_end", "cost",
    "corrections",
)
_TRAINING_FIELDS = ("training_set_size", "energy_rmse", "force_rmse", "cost", "fallback")
_MLPMD_FIELDS = (
    "n_steps", "simulated_fs", "gamma_at_stop", "gamma_max", "stop_reason",
    "temperature_start", "temperature_end", "cost", "gamma_seconds", "collapse",
    "grade_mode", "n_selected", "reference_checks",
)
CYCLE_JOB = "haml cycle"
"""Cycle jobs are named ``haml cycle N``."""
_STOP = StopSpec()
_REFERENCE = ReferenceSpec()
_AUDIT_FIELDS = (
    "force_rmse", "force_max_error", "energy_error", "gamma_max", "frames", "passed", "cost",
)


@job
def trained_potential(training_job: str) -> dict:
    """The potential, training set and active set of ``training_job``, as references.

    jobflow resolves references inside a stored output, so a continued cycle
    reads them without holding their text and without a reference to a job
    outside its own flow (which jobflow refuses in a FireWorks replacement).
    A training stored before it kept its active set gives None for it (the
    MLP-MD then builds one).
    """
    trained = OutputReference(training_job)
    store = CURRENT_JOB.store
    kept = store is not None and store.query_one(
        {"uuid": training_job, "output.active_set_slots": {"$exists": True}}, ["uuid"]
    )
    return {
        "potential": trained.potential,
        "training_set": trained.training_set,
        "active_set": trained.active_set if kept else None,
        "active_set_slots": trained.active_set_slots if kept else None,
    }


def _own(maker: Maker) -> Maker:
    """A copy of ``maker`` for one job: jobflow renames a job's maker with the job."""
    return dataclasses.replace(maker)


def _tag(stage_job: Job, state: CycleState, stage: str) -> Job:
    """Give a stage job its fixed uuid (before any job refers to it), name and tags."""
    stage_job.set_uuid(stage_uuid(state.run_id, state.cycle, stage))
    stage_job.name = f"{stage} {state.cycle}"
    stage_job.metadata.update(run_id=state.run_id, cycle=state.cycle, stage=stage)
    return stage_job


def aimd_maker(reference: ReferenceSpec) -> Maker:
    """The AIMD segment maker of a spec's ``reference`` section."""
    if reference.engine == "vasp":
        from haml_flows.engines.vasp import VaspAimdSegmentMaker

        return VaspAimdSegmentMaker.from_spec(reference)
    if reference.engine == "cp2k":
        from haml_flows.engines.cp2k import Cp2kAimdSegmentMaker

        return Cp2kAimdSegmentMaker.from_spec(reference)
    if reference.engine == "lj":
        return LennardJonesAimdSegmentMaker.from_spec(reference)
    return AimdSegmentMaker.from_spec(reference)


def mlpmd_maker(
    mlpmd: MlpMdSpec, reference: Maker | None = None, audit: AuditSpec | None = None
) -> Maker:
    """The MLP-MD segment maker of a spec's ``mlpmd`` section.

    With the run's ``reference`` maker and an ``audit`` section whose
    ``check_every_fs`` is set, the ASE segment runs in-segment reference checks.
    """
    if mlpmd.engine == "lammps":
        from haml_flows.engines.lammps import LammpsMlpMdMaker

        return LammpsMlpMdMaker(mlpmd=mlpmd)
    if reference is None or audit is None or audit.check_every_fs is None:
        return MlpMdMaker(mlpmd=mlpmd)
    return MlpMdMaker(
        mlpmd=mlpmd, reference=reference, check_every_fs=audit.check_every_fs,
        check_force_rmse=audit.max_force_rmse,
    )


def check_commands(spec: RunSpec, settings: HamlSettings | None = None) -> None:
    """Fail at submission when an external engine of ``spec`` has no usable command.

    The jobs read their commands on the worker; this catches, before any job
    exists, a spec whose engine has no command configured at all.
    """
    settings = get_settings(settings)
    mtp_engine = spec.mtp.engine or ("mlip" if MLP.setting_value(settings=settings) else None)
    needed = [
        COMMANDS.get(("reference.engine", spec.reference.engine)),
        COMMANDS.get(("mtp.engine", mtp_engine)),
        COMMANDS.get(("mlpmd.engine", spec.mlpmd.engine)),
    ]
    for command in filter(None, needed):
        problem = command.submission_problem(settings)
        if problem:
            raise SpecError(problem)
    if spec.mlpmd.engine == "lammps":
        # MLIP builds the active set (state.als) that LAMMPS loads
        problem = MLP.submission_problem(settings)
        if problem:
            raise SpecError(f"mlpmd.engine 'lammps' needs MLIP's mlp too: {problem}")


@dataclass
class HamlCycleMaker(Maker):
    """One HAML cycle job; it replaces itself with the cycle and the next one.

    The job takes a :class:`CycleState` and hands the next cycle job the
    next one. The loop ends at the first cycle job that finds ``max_cycles``
    done or ``total_time_fs`` simulated; that job's output is the
    RunSummaryDoc. Jobs are named per cycle (``haml cycle N``, ``aimd N``, ...)
    from copies of the makers, so no maker changes between cycles.
    """

    name: str = CYCLE_JOB
    aimd_maker: Maker = field(default_factory=AimdSegmentMaker)
    train_maker: MtpTrainMaker = field(default_factory=MtpTrainMaker)
    mlpmd_maker: Maker = field(default_factory=MlpMdMaker)
    audit_maker: AuditMaker | None = None
    max_cycles: int = _STOP.max_cycles
    total_time_fs: float = _STOP.total_time_ps * 1000.0
    lengthen_factor: float = _REFERENCE.lengthen_factor
    longest_aimd: int = _REFERENCE.longest
    continue_trusted: bool = MlpMdSpec().continue_trusted

    @classmethod
    def from_spec(cls, spec: RunSpec, settings: HamlSettings | None = None) -> HamlCycleMaker:
        """The cycle of a spec's engines and stop rules.

        Checks every external engine's command first (:func:`check_commands`),
        so that a spec that cannot run fails before any job exists.
        """
        check_commands(spec, settings)
        reference = aimd_maker(spec.reference)
        return cls(
            aimd_maker=reference,
            train_maker=MtpTrainMaker(mtp=spec.mtp),
            mlpmd_maker=mlpmd_maker(spec.mlpmd, reference, spec.audit),
            audit_maker=(
                AuditMaker(audit=spec.audit, reference=reference)
                if spec.audit.enabled else None
            ),
            max_cycles=spec.stop.max_cycles,
            total_time_fs=spec.stop.total_time_ps * 1000.0,
            lengthen_factor=spec.reference.lengthen_factor,
            longest_aimd=spec.reference.longest,
            continue_trusted=spec.mlpmd.continue_trusted,
        )

    def cycle_job(self, state: CycleState) -> Job:
        """The job of cycle ``state.cycle``, named and tagged with it."""
        cycle_job = _own(self).make(state)
        cycle_job.name = f"{CYCLE_JOB} {state.cycle}"
        cycle_job.metadata.update(run_id=state.run_id, cycle=state.cycle, stage="cycle")
        return cycle_job

    def aimd_steps(self, state: CycleState) -> int:
        """Steps of this cycle's AIMD: longer after a cycle that taught too little.

        After a cycle whose audit failed, whose MLP-MD a guard stopped or
        whose training kept the previous potential, ``lengthen_factor`` times
        the last segment (at most ``longest_aimd``); otherwise the spec's steps.
        """
        base = self.aimd_maker.n_steps
        previous = state.previous
        if previous is None or not _untrusted(previous):
            return self._within_total(base, state.simulated_fs)
        last = max(base, state.aimd_steps or base)
        return self._within_total(
            min(max(base, self.longest_aimd), math.ceil(last * self.lengthen_factor)),
            state.simulated_fs,
        )

    def _within_total(self, steps: int, simulated_fs: float) -> int:
        """``steps`` of AIMD, cut so that the segment ends at ``total_time_fs``.

        The last cycle's AIMD (after failed audits lengthened to hundreds or
        thousands of steps) then stops at the run's target instead of running
        past it.
        """
        left = self.total_time_fs - simulated_fs
        dt = self.aimd_maker.time_step or 1.0
        return max(1, min(steps, math.ceil(left / dt - 1e-9)))

    def _mlpmd_within_total(self, maker, after_fs: float):
        """The MLP-MD maker with ``max_steps`` cut to end at ``total_time_fs``."""
        md = maker.mlpmd
        left = self.total_time_fs - after_fs
        steps = max(1, min(md.max_steps, math.ceil(left / md.time_step - 1e-9)))
        if steps != md.max_steps:
            maker.mlpmd = md.model_copy(update={"max_steps": steps})
        return maker

    @job
    def make(self, state: CycleState) -> Response:
        """Stop, or run cycle ``state.cycle`` and queue the next one.

        When the previous MLP-MD segment ran to max_steps with nothing
        untrusted (no guard, an audit that passed), the cycle only continues
        the MLP-MD with the same potential (``continue_trusted``).
        """
        cycle, previous = state.cycle, state.previous
        state = state.model_copy(update={"tally": state.tally.after(previous)})
        if cycle > self.max_cycles or state.simulated_fs >= self.total_time_fs:
            return Response(output=self._finish(state))
        if (
            self.continue_trusted
            and previous is not None
            and previous.stop_reason == "max_steps"
            and previous.audit_passed is not False
            and state.potential is not None
        ):
            return self._continuation(state)
        aimd_maker = _own(self.aimd_maker)
        aimd_maker.n_steps = self.aimd_steps(state)
        if previous is not None and aimd_maker.n_steps != self.aimd_maker.n_steps:
            logger.info("cycle %d: %s; AIMD %d steps", cycle, _why_longer(previous),
                        aimd_maker.n_steps)
        aimd = _tag(aimd_maker.make(state.structure), state, "aimd")
        train = _tag(
            _own(self.train_maker).make(
                aimd.output.trajectory, state.training_set, state.potential, state.pending
            ),
            state, "training",
        )
        after_aimd = state.simulated_fs + aimd_maker.n_steps * (aimd_maker.time_step or 1.0)
        mlpmd = _tag(
            self._mlpmd_within_total(_own(self.mlpmd_maker), after_aimd).make(
                aimd.output.structure, train.output.potential, train.output.training_set,
                train.output.active_set, train.output.active_set_slots,
            ),
            state, "mlpmd",
        )
        audit = self._audit(state, mlpmd, train.output.potential)
        record = _tag(record_cycle(
            state.run_id,
            cycle,
            state.simulated_fs,
            {k: getattr(aimd.output, k) for k in _AIMD_FIELDS},
            {k: getattr(train.output, k) for k in _TRAINING_FIELDS},
            {k: getattr(mlpmd.output, k) for k in _MLPMD_FIELDS},
            {"aimd": aimd.uuid, "training": train.uuid, "mlpmd": mlpmd.uuid,
             "audit": audit.uuid if audit else None},
            audit={k: getattr(audit.output, k) for k in _AUDIT_FIELDS} if audit else None,
        ), state, "record")
        stages = [aimd, train, mlpmd, *([audit] if audit else []), record]
        return self._replacement(
            state, stages, train.output.training_set, train.output.potential,
            pending=self._labelled(mlpmd, audit),
            aimd_steps=aimd_maker.n_steps,
        )

    def _labelled(self, mlpmd: Job, audit: Job | None) -> list:
        """The cycle's reference-labelled MLP-MD frames, for the next training.

        The audit's relabelled frames and, when the segment runs reference
        checks, the frame whose check failed.
        """
        labelled = [audit.output.trajectory] if audit else []
        if getattr(self.mlpmd_maker, "check_every_fs", None) is not None:
            labelled.append(mlpmd.output.checked)
        return labelled

    def _audit(self, state: CycleState, mlpmd: Job, potential) -> Job | None:
        if self.audit_maker is None:
            return None
        return _tag(
            _own(self.audit_maker).make(mlpmd.output.trajectory, mlpmd.output.selected, potential),
            state, "audit",
        )

    def _finish(self, state: CycleState) -> RunSummaryDoc:
        cycle = state.cycle
        reason = "max_cycles" if cycle > self.max_cycles else "total_time"
        logger.info(
            "run %s finished: %d cycles, %.3f ps (%s)",
            state.run_id, cycle - 1, state.simulated_fs / 1000, reason,
        )
        tally = state.tally
        if tally.cycles and (tally.guarded + tally.audits_failed) * 2 >= tally.cycles:
            logger.warning(
                "run %s: guards stopped the MLP-MD in %d of %d cycles and %d audits "
                "failed: the potential is not yet trusted along its own trajectory",
                state.run_id, tally.guarded, tally.cycles, tally.audits_failed,
            )
        if tally.checked:
            logger.info(
                "run %s: reference checks stopped the MLP-MD in %d of %d cycles",
                state.run_id, tally.checked, tally.cycles,
            )
        return RunSummaryDoc(
            run_id=state.run_id,
            cycles=cycle - 1,
            simulated_fs=state.simulated_fs,
            stop_reason=reason,
            structure=state.structure,
            cycles_guarded=tally.guarded,
            audits_failed=tally.audits_failed,
            cycles_checked=tally.checked,
        )

    def _continuation(self, state: CycleState) -> Response:
        """MLP-MD only, from the trusted segment's last state, same potential.

        Potential and training set reach the MLP-MD through ``trained_potential``
        (references to the training job's output), so that no job input carries
        their text. The audit's relabelled frames wait for the next training.
        """
        cycle, previous = state.cycle, state.previous
        link = _tag(trained_potential(previous.training_job), state, "potential")
        potential, training_set = link.output["potential"], link.output["training_set"]
        mlpmd = _tag(
            self._mlpmd_within_total(_own(self.mlpmd_maker), state.simulated_fs).make(
                state.structure, potential, training_set,
                link.output["active_set"], link.output["active_set_slots"],
            ),
            state, "mlpmd",
        )
        audit = self._audit(state, mlpmd, potential)
        no_cost = StageCost(wall_seconds=0.0, cpu_seconds=0.0)
        record = _tag(record_cycle(
            state.run_id,
            cycle,
            state.simulated_fs,
            {
                "n_steps": 0, "simulated_fs": 0.0, "temperature_start": None,
                "temperature_end": None, "cost": no_cost, "corrections": [],
            },
            {
                "training_set_size": previous.training_set_size,
                "energy_rmse": previous.energy_rmse,
                "force_rmse": previous.force_rmse,
                "cost": no_cost,
                "fallback": None,
            },
            {k: getattr(mlpmd.output, k) for k in _MLPMD_FIELDS},
            {"aimd": None, "training": previous.training_job, "mlpmd": mlpmd.uuid,
             "audit": audit.uuid if audit else None},
            continued=True,
            audit={k: getattr(audit.output, k) for k in _AUDIT_FIELDS} if audit else None,
        ), state, "record")
        stages = [link, mlpmd, *([audit] if audit else []), record]
        return self._replacement(
            state, stages, training_set, potential,
            pending=[*state.pending, *self._labelled(mlpmd, audit)],
            aimd_steps=state.aimd_steps,
        )

    def _replacement(
        self, state: CycleState, stages: list[Job], training_set, potential, *,
        pending: list, aimd_steps: int | None,
    ) -> Response:
        """Replace this job with the cycle's jobs and the next cycle job.

        ``stages`` holds the MLP-MD job and ends with the record job: the
        next cycle starts from the MLP-MD's last frame, after the record's
        CycleDoc.
        """
        mlpmd = next(j for j in stages if j.metadata.get("stage") == "mlpmd")
        record = stages[-1]
        next_cycle = self.cycle_job(
            CycleState(
                run_id=state.run_id,
                cycle=state.cycle + 1,
                structure=mlpmd.output.structure,
                training_set=training_set,
                potential=potential,
                previous=record.output,
                pending=pending,
                aimd_steps=aimd_steps,
                tally=state.tally,
            )
        )
        return Response(replace=Flow([*stages, next_cycle], output=next_cycle.output))


def _untrusted(doc: CycleDoc) -> bool:
    """The cycle's potential fell short: its fit was kept back, a guard fired, its audit failed."""
    return (
        doc.training_fallback is not None
        or doc.stop_reason == "collapse"
        or doc.audit_passed is False
    )


def _why_longer(doc: CycleDoc) -> str:
    reasons = []
    if doc.training_fallback is not None:
        reasons.append("previous training kept its potential")
    if doc.stop_reason == "collapse":
        reasons.append("a guard stopped the previous MLP-MD")
    if doc.audit_passed is False:
        reasons.append(f"the previous audit failed (F-RMSE {doc.audit_force_rmse:.3f} eV/A)")
    return "; ".join(reasons)


@dataclass
class HamlMaker(Maker):
    """A whole HAML run: optimization and run document, then the cycle loop."""

    name: str = "haml"
    run_id: str = ""
    spec: dict = field(default_factory=dict)
    optimization: GeometryOptimization | None = field(default_factory=GeometryOptimization)
    cycle_maker: HamlCycleMaker = field(default_factory=HamlCycleMaker)

    def make(self, structure: Structure) -> Flow:
        """The run's flow; its output is the RunSummaryDoc."""
        run_id = self.run_id or new_run_id(self.name)
        start = start_run(structure, run_id, self.name, self.spec, self.optimization)
        start.name = "start run"
        start.metadata.update(run_id=run_id, cycle=0, stage="start")
        first = self.cycle_maker.cycle_job(
            CycleState(run_id=run_id, structure=start.output.structure)
        )
        return Flow([start, first], output=first.output, name=f"haml {run_id}")

    @classmethod
    def from_spec(
        cls, spec: RunSpec, run_id: str | None = None, settings: HamlSettings | None = None
    ) -> HamlMaker:
        """Makers with the spec's settings; production references pre-relax on GFN1-xTB."""
        opt = spec.optimization
        return cls(
            name=spec.name,
            run_id=run_id or new_run_id(spec.name),
            spec=spec.model_dump(mode="json"),
            optimization=(
                GeometryOptimization(
                    engine="lj" if spec.reference.engine == "lj" else "xtb", settings=opt
                )
                if opt.enabled
                else None
            ),
            cycle_maker=HamlCycleMaker.from_spec(spec, settings),
        )
