"""Screens on the Lennard-Jones reference: small, fast, real flows."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

DATA = Path(__file__).parents[1] / "data"


def write_screen(directory: Path, **screen) -> Path:
    """A base spec (tests/data/lj_small.yaml on bulk doped Li6PS5Cl) and a screen file."""
    base = yaml.safe_load((DATA / "lj_small.yaml").read_text())
    base["name"] = "lj_lpsc"
    base["system"] = {"builder": "li6ps5cl", "parameters": {}}
    base["stop"]["max_cycles"] = 1
    (directory / "base.yaml").write_text(yaml.safe_dump(base))
    body = {"name": "lj_screen", "base": "base.yaml", "vary": "system.parameters",
            "dopants": ["Se", "O"], "concentrations": [0.25], "seeds": [1, 2]}
    body.update(screen)
    body = {k: v for k, v in body.items() if v is not None}
    path = directory / "screen.yaml"
    path.write_text(yaml.safe_dump({"screen": body}))
    return path


@pytest.fixture
def screen_file():
    """The function that writes a base spec and a screen file into a directory."""
    return write_screen


@pytest.fixture
def clients(haml_settings, job_store):
    """Settings, JobStore, a reset LaunchPad and the pymongo database of one test."""
    from haml_flows.database.stores import connect
    from haml_flows.database.stores import make_launchpad

    launchpad = make_launchpad(haml_settings)
    launchpad.reset("", require_password=False)
    db = connect(haml_settings)
    yield haml_settings, job_store, launchpad, db
    db.client.close()


class StoredRuns:
    """Writes what a run leaves behind, made through the package's schemas and
    written through the JobStore like a job's output, so that every query sees
    exactly what a finished (or running) run stores."""

    def __init__(self, store) -> None:
        self.store = store

    def output(self, output, name: str, job_uuid: str | None = None) -> str:
        """Store ``output`` as the output of a job; returns the job's uuid."""
        job_uuid = job_uuid or str(uuid.uuid4())
        self.store.update(
            {"uuid": job_uuid, "index": 1, "output": output, "name": name,
             "metadata": {}, "hosts": []},
            key=["uuid", "index"],
        )
        return job_uuid

    @staticmethod
    def cycles(run_id: str, n: int, aimd_cpu: float, mlpmd_cpu: float, *,
               aimd_steps: int = 20, mlpmd_steps: int = 200, **per_cycle) -> list:
        """``n`` CycleDocs (AIMD 1 fs, MLP-MD 0.5 fs steps); ``per_cycle``: field ->
        list of values, one per cycle (audits, guards, job uuids...)."""
        from haml_flows.schemas import CycleDoc, StageCost

        docs, total = [], 0.0
        for cycle in range(1, n + 1):
            total += aimd_steps + 0.5 * mlpmd_steps
            fields = dict(
                run_id=run_id, cycle=cycle, aimd_steps=aimd_steps, aimd_fs=float(aimd_steps),
                mlpmd_steps=mlpmd_steps, mlpmd_fs=0.5 * mlpmd_steps, gamma_at_stop=11.0,
                gamma_max=11.0, stop_reason="gamma_break", training_set_size=21 * cycle,
                energy_rmse=0.001, force_rmse=0.1,
                aimd_cost=StageCost(wall_seconds=aimd_cpu, cpu_seconds=aimd_cpu),
                training_cost=StageCost(wall_seconds=5.0, cpu_seconds=5.0),
                mlpmd_cost=StageCost(wall_seconds=mlpmd_cpu, cpu_seconds=mlpmd_cpu),
                audit_cost=StageCost(wall_seconds=2.0, cpu_seconds=2.0),
                mlpmd_gamma_seconds=0.1, cumulative_fs=total, temperature_aimd_start=300,
                temperature_aimd_end=300, temperature_mlpmd_start=300,
                temperature_mlpmd_end=300, aimd_job="a", training_job="t", mlpmd_job="m",
            )
            fields.update({k: v[cycle - 1] for k, v in per_cycle.items()})
            docs.append(CycleDoc(**fields))
        return docs

    def run(self, run_id: str, structure, final, cycles: list, finished: bool = True) -> None:
        """The RunDoc (``structure`` optimized), the CycleDocs and, if finished, the summary."""
        from haml_flows.schemas import RunDoc, RunSummaryDoc, StageCost

        self.output(RunDoc(
            run_id=run_id, name=run_id, spec={},
            formula=structure.composition.reduced_formula, n_atoms=len(structure),
            initial_structure=structure, structure=structure,
            optimization_cost=StageCost(wall_seconds=1.0, cpu_seconds=1.0),
        ), "start run")
        for doc in cycles:
            self.output(doc, f"record {doc.cycle}")
        if finished:
            self.output(RunSummaryDoc(
                run_id=run_id, cycles=len(cycles), simulated_fs=cycles[-1].cumulative_fs,
                stop_reason="max_cycles", structure=final,
            ), "haml cycle")

    def segments(self, frames: list, aimd_steps: int, mlpmd_steps: int,
                 save_interval: int) -> tuple[str, str]:
        """An AIMD segment (a frame per 1 fs step) and an MLP-MD segment (0.5 fs steps, a
        frame every ``save_interval``) whose trajectories are ``frames``, the hand-over
        frame in both; returns the two job uuids."""
        from pymatgen.core.trajectory import Trajectory

        from haml_flows.schemas import AimdSegmentDoc, MlpMdDoc, StageCost

        cost = StageCost(wall_seconds=1.0, cpu_seconds=1.0)
        aimd, mlpmd = frames[: aimd_steps + 1], frames[aimd_steps:]
        assert len(mlpmd) == mlpmd_steps // save_interval + 1
        aimd_job = self.output(AimdSegmentDoc(
            engine="test", structure=aimd[-1],
            trajectory=Trajectory.from_structures(
                aimd, constant_lattice=True,
                frame_properties=[{"temperature": 300.0} for _ in aimd]),
            n_steps=aimd_steps, time_step_fs=1.0, simulated_fs=float(aimd_steps),
            temperature_start=300, temperature_end=300, cost=cost,
        ), "aimd")
        mlpmd_job = self.output(MlpMdDoc(
            engine="test", structure=mlpmd[-1],
            trajectory=Trajectory.from_structures(
                mlpmd, constant_lattice=True,
                frame_properties=[{"step": i * save_interval, "temperature": 300.0}
                                  for i in range(len(mlpmd))]),
            gamma_history=[], n_steps=mlpmd_steps, time_step_fs=0.5,
            simulated_fs=0.5 * mlpmd_steps, stop_reason="gamma_break", gamma_at_stop=11.0,
            gamma_max=11.0, temperature_start=300, temperature_end=300, cost=cost,
            gamma_seconds=0.0,
        ), "mlpmd")
        return aimd_job, mlpmd_job


@pytest.fixture
def stored_runs(job_store):
    """A StoredRuns on this test's JobStore."""
    return StoredRuns(job_store)


def _summed_audit(docs) -> dict:
    """The audit columns of a run, summed here from its CycleDocs as stored."""
    from haml_flows.screening.schemas import GUARD_KINDS

    kinds = {handler: kind for kind, handler in GUARD_KINDS.items()}
    audited = [d for d in docs if d.audit_force_rmse is not None]
    guards = dict.fromkeys([*GUARD_KINDS, "other"], 0)
    for d in docs:
        for c in d.mlpmd_collapse:
            guards[kinds.get(c.handler, "other")] += 1
    return {
        "audited_cycles": len(audited),
        "audits_failed": sum(d.audit_passed is False for d in docs),
        "audit_force_rmse_max": max((d.audit_force_rmse for d in audited), default=None),
        "audit_force_rmse_last": audited[-1].audit_force_rmse if audited else None,
        "audit_last_cycle": audited[-1].cycle if audited else None,
        "cycles_guarded": sum(d.stop_reason == "collapse" for d in docs),
        "guards": guards,
        "training_fallbacks": sum(d.training_fallback is not None for d in docs),
        "aimd_corrections": sum(len(d.aimd_corrections) for d in docs),
    }


@pytest.fixture
def summed_audit():
    """The function that sums a run's CycleDocs into the audit columns."""
    return _summed_audit
