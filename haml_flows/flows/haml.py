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

from jobflow import Flow, Maker, OutputReference, Response, job
from pymatgen.core import Structure

from haml_flows.engines.choice import stage_makers
from haml_flows.engines.mlpmd import MlpMdMaker
from haml_flows.engines.reference import AimdSegmentMaker, GeometryOptimizationMaker
from haml_flows.engines.training import MtpTrainMaker
from haml_flows.schemas import CycleDoc, RunDoc, RunSummaryDoc, StageCost
from haml_flows.spec import RunSpec

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
    optimization: GeometryOptimizationMaker | None,
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
) -> CycleDoc:
    """Gather one cycle's numbers into its CycleDoc and report progress."""
    doc = CycleDoc(
        run_id=run_id,
        cycle=cycle,
        aimd_steps=aimd["n_steps"],
        aimd_fs=aimd["simulated_fs"],
        mlpmd_steps=mlpmd["n_steps"],
        mlpmd_fs=mlpmd["simulated_fs"],
        gamma_at_stop=mlpmd["gamma_at_stop"],
        gamma_max=mlpmd["gamma_max"],
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
        continued=continued,
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
    logger.info(
        head + " | MLP-MD %d steps (%s, gamma %.2f) %.1f s | %.3f ps",
        *args,
        doc.mlpmd_steps,
        doc.stop_reason,
        doc.gamma_at_stop,
        doc.mlpmd_cost.wall_seconds,
        doc.cumulative_ps,
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
@job
def trained_potential(training_job: str) -> dict:
    """The potential and training set of ``training_job``, as references to its output.

    jobflow resolves references inside a stored output, so a continued cycle
    reads them without holding their text and without a reference to a job
    outside its own flow (which jobflow refuses in a FireWorks replacement).
    """
    trained = OutputReference(training_job)
    return {"potential": trained.potential, "training_set": trained.training_set}


_LAST_TRAINING_FIELDS = ("training_set_size", "energy_rmse", "force_rmse")
_MLPMD_FIELDS = (
    "n_steps", "simulated_fs", "gamma_at_stop", "gamma_max", "stop_reason",
    "temperature_start", "temperature_end", "cost", "gamma_seconds", "collapse",
)


@dataclass
class HamlCycleMaker(Maker):
    """One HAML cycle job; it replaces itself with the cycle and the next one.

    The loop ends at the first cycle job that finds ``max_cycles`` done or
    ``total_time_fs`` simulated; that job's output is the RunSummaryDoc.
    """

    name: str = "haml cycle"
    run_id: str = ""
    aimd_maker: AimdSegmentMaker = field(default_factory=AimdSegmentMaker)
    train_maker: MtpTrainMaker = field(default_factory=MtpTrainMaker)
    mlpmd_maker: MlpMdMaker = field(default_factory=MlpMdMaker)
    max_cycles: int = 10
    total_time_fs: float = 10_000.0
    fallback_aimd_factor: float = 2.0
    continue_trusted: bool = True

    @job
    def make(
        self,
        structure: Structure,
        cycle: int = 1,
        simulated_fs: float = 0.0,
        training_set: str | None = None,
        potential: str | None = None,
        training_fallback: dict | None = None,
        previous_stop: str | None = None,
        last_training: dict | None = None,
    ) -> Response:
        """Stop, or run cycle ``cycle`` and queue cycle ``cycle + 1``.

        After a training that kept the previous potential (``training_fallback``)
        the AIMD segment is ``fallback_aimd_factor`` times longer. When the
        previous MLP-MD segment ran to max_steps (``previous_stop``) with
        nothing untrusted, the cycle only continues the MLP-MD with the same
        potential (``continue_trusted``); ``last_training`` carries that
        potential's training numbers and job into the cycle's record.
        """
        if cycle > self.max_cycles or simulated_fs >= self.total_time_fs:
            reason = "max_cycles" if cycle > self.max_cycles else "total_time"
            logger.info(
                "run %s finished: %d cycles, %.3f ps (%s)",
                self.run_id, cycle - 1, simulated_fs / 1000, reason,
            )
            return Response(
                output=RunSummaryDoc(
                    run_id=self.run_id,
                    cycles=cycle - 1,
                    simulated_fs=simulated_fs,
                    stop_reason=reason,
                    structure=structure,
                )
            )
        if (
            self.continue_trusted
            and previous_stop == "max_steps"
            and potential is not None
            and last_training is not None
        ):
            return self._continuation(
                structure, cycle, simulated_fs, training_set, potential, last_training
            )
        aimd_maker = self.aimd_maker
        if training_fallback:
            longer = math.ceil(aimd_maker.n_steps * self.fallback_aimd_factor)
            aimd_maker = dataclasses.replace(aimd_maker, n_steps=longer)
            logger.info("cycle %d: previous training kept its potential; AIMD %d steps",
                        cycle, longer)
        aimd = aimd_maker.make(structure)
        aimd.set_uuid(stage_uuid(self.run_id, cycle, "aimd"))
        train = self.train_maker.make(aimd.output.trajectory, training_set, potential)
        train.set_uuid(stage_uuid(self.run_id, cycle, "training"))
        mlpmd = self.mlpmd_maker.make(
            aimd.output.structure, train.output.potential, train.output.training_set
        )
        mlpmd.set_uuid(stage_uuid(self.run_id, cycle, "mlpmd"))
        record = record_cycle(
            self.run_id,
            cycle,
            simulated_fs,
            {k: getattr(aimd.output, k) for k in _AIMD_FIELDS},
            {k: getattr(train.output, k) for k in _TRAINING_FIELDS},
            {k: getattr(mlpmd.output, k) for k in _MLPMD_FIELDS},
            {"aimd": aimd.uuid, "training": train.uuid, "mlpmd": mlpmd.uuid},
        )
        record.set_uuid(stage_uuid(self.run_id, cycle, "record"))
        next_cycle = self.make(
            mlpmd.output.structure,
            cycle + 1,
            record.output.cumulative_fs,
            train.output.training_set,
            train.output.potential,
            train.output.fallback,
            mlpmd.output.stop_reason,
            {
                **{k: getattr(train.output, k) for k in _LAST_TRAINING_FIELDS},
                "job": train.uuid,
            },
        )
        stages = (
            (aimd, "aimd"), (train, "training"), (mlpmd, "mlpmd"), (record, "record")
        )
        return self._replacement(cycle, stages, next_cycle)

    def _continuation(
        self,
        structure: Structure,
        cycle: int,
        simulated_fs: float,
        training_set: str,
        potential: str,
        last_training: dict,
    ) -> Response:
        """MLP-MD only, from the trusted segment's last state, same potential.

        Potential and training set reach the MLP-MD through ``trained_potential``
        (references to the training job's output), so that no job input carries
        their text.
        """
        link = trained_potential(last_training["job"])
        link.set_uuid(stage_uuid(self.run_id, cycle, "potential"))
        potential, training_set = link.output["potential"], link.output["training_set"]
        mlpmd = self.mlpmd_maker.make(structure, potential, training_set)
        mlpmd.set_uuid(stage_uuid(self.run_id, cycle, "mlpmd"))
        no_cost = StageCost(wall_seconds=0.0, cpu_seconds=0.0)
        record = record_cycle(
            self.run_id,
            cycle,
            simulated_fs,
            {
                "n_steps": 0, "simulated_fs": 0.0, "temperature_start": None,
                "temperature_end": None, "cost": no_cost, "corrections": [],
            },
            {
                **{k: last_training[k] for k in _LAST_TRAINING_FIELDS},
                "cost": no_cost,
                "fallback": None,
            },
            {k: getattr(mlpmd.output, k) for k in _MLPMD_FIELDS},
            {"aimd": None, "training": last_training["job"], "mlpmd": mlpmd.uuid},
            continued=True,
        )
        record.set_uuid(stage_uuid(self.run_id, cycle, "record"))
        next_cycle = self.make(
            mlpmd.output.structure,
            cycle + 1,
            record.output.cumulative_fs,
            training_set,
            potential,
            None,
            mlpmd.output.stop_reason,
            last_training,
        )
        stages = ((link, "potential"), (mlpmd, "mlpmd"), (record, "record"))
        return self._replacement(cycle, stages, next_cycle)

    def _replacement(self, cycle: int, stages, next_cycle) -> Response:
        """Name and tag the cycle's jobs; replace this job with them and the next cycle."""
        for stage_job, stage in stages:
            stage_job.name = f"{stage} {cycle}"
            stage_job.metadata.update(run_id=self.run_id, cycle=cycle, stage=stage)
        next_cycle.name = f"{self.name} {cycle + 1}"
        next_cycle.metadata.update(run_id=self.run_id, cycle=cycle + 1, stage="cycle")
        jobs = [stage_job for stage_job, _ in stages]
        return Response(replace=Flow([*jobs, next_cycle], output=next_cycle.output))


@dataclass
class HamlMaker(Maker):
    """A whole HAML run: optimization and run document, then the cycle loop."""

    name: str = "haml"
    run_id: str = ""
    spec: dict = field(default_factory=dict)
    optimization: GeometryOptimizationMaker | None = field(
        default_factory=GeometryOptimizationMaker
    )
    cycle_maker: HamlCycleMaker = field(default_factory=HamlCycleMaker)

    def make(self, structure: Structure) -> Flow:
        """The run's flow; its output is the RunSummaryDoc."""
        run_id = self.run_id or new_run_id(self.name)
        self.cycle_maker.run_id = run_id
        start = start_run(structure, run_id, self.name, self.spec, self.optimization)
        start.name = "start run"
        first = self.cycle_maker.make(start.output.structure)
        first.name = f"{self.cycle_maker.name} 1"
        for stage_job, stage in ((start, "start"), (first, "cycle")):
            stage_job.metadata.update(run_id=run_id, cycle=0 if stage == "start" else 1,
                                      stage=stage)
        return Flow([start, first], output=first.output, name=f"haml {run_id}")

    @classmethod
    def from_spec(cls, spec: RunSpec, run_id: str | None = None) -> HamlMaker:
        """Makers with the spec's settings."""
        ref = spec.reference
        aimd, train, mlpmd = stage_makers(spec)
        opt = spec.optimization
        optimization = (
            # production references pre-relax on GFN1-xTB
            GeometryOptimizationMaker(
                engine=ref.engine if ref.engine == "lj" else "xtb",
                fmax=opt.fmax,
                steps=opt.steps,
            )
            if opt.enabled
            else None
        )
        return cls(
            name=spec.name,
            run_id=run_id or new_run_id(spec.name),
            spec=spec.model_dump(mode="json"),
            optimization=optimization,
            cycle_maker=HamlCycleMaker(
                aimd_maker=aimd,
                train_maker=train,
                mlpmd_maker=mlpmd,
                max_cycles=spec.stop.max_cycles,
                total_time_fs=spec.stop.total_time_ps * 1000.0,
                continue_trusted=spec.mlpmd.continue_trusted,
            ),
        )
