"""HamlCycleMaker and resume, fast: the Response a cycle job returns, and tiny runs
on jobflow's MemoryStore (no database server)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from jobflow import JobStore, OutputReference
from maggma.stores import MemoryStore

from haml_flows.engines.mlpmd import MlpMdMaker
from haml_flows.engines.reference import LennardJonesAimdSegmentMaker
from haml_flows.engines.training import MtpTrainMaker
from haml_flows.flows.haml import HamlCycleMaker, stage_uuid
from haml_flows.queries import cycle_docs, run_summary
from haml_flows.runner import build_run, resume_locally, run_prepared_locally
from haml_flows.schemas import CycleDoc, CycleState, FaultCorrection, StageCost
from haml_flows.spec import MlpMdSpec, MtpSpec, parse_spec
from haml_flows.systems import build_system, li_lpsc_mini

DATA = Path(__file__).parents[1] / "data"


def _maker(**changes) -> HamlCycleMaker:
    return HamlCycleMaker(
        aimd_maker=LennardJonesAimdSegmentMaker(n_steps=3),
        train_maker=MtpTrainMaker(mtp=MtpSpec(level=4, radial_iterations=0)),
        mlpmd_maker=MlpMdMaker(mlpmd=MlpMdSpec(max_steps=10, gamma_break=1e9)),
        **{"max_cycles": 3, **changes},
    )


def _cycle_doc(cycle: int = 1, **changes) -> CycleDoc:
    cost = StageCost(wall_seconds=1.0, cpu_seconds=1.0)
    return CycleDoc(
        **{
            "run_id": "r", "cycle": cycle, "aimd_steps": 3, "aimd_fs": 3.0,
            "mlpmd_steps": 10, "mlpmd_fs": 5.0, "gamma_at_stop": 4.0, "gamma_max": 4.0,
            "stop_reason": "gamma_break", "training_set_size": 4, "energy_rmse": 0.01,
            "force_rmse": 0.1, "aimd_cost": cost, "training_cost": cost,
            "mlpmd_cost": cost, "mlpmd_gamma_seconds": 0.1, "cumulative_fs": 8.0 * cycle,
            "temperature_aimd_start": 300.0, "temperature_aimd_end": 300.0,
            "temperature_mlpmd_start": 300.0, "temperature_mlpmd_end": 300.0,
            "aimd_job": "a", "training_job": "t", "mlpmd_job": "m", **changes,
        }
    )


def _state(**changes) -> CycleState:
    return CycleState(
        **{
            "run_id": "r", "cycle": 2, "structure": li_lpsc_mini(li_layers=1),
            "training_set": "frames", "potential": "potential",
            "previous": _cycle_doc(1), **changes,
        }
    )


def _cycle(maker: HamlCycleMaker, state: CycleState):
    return HamlCycleMaker.make.original(maker, state)


def test_a_cycle_is_its_stages_then_the_next_cycle():
    maker = _maker()
    jobs = _cycle(maker, _state()).replace.jobs
    assert [j.name for j in jobs] == ["aimd 2", "training 2", "mlpmd 2", "record 2",
                                      "haml cycle 3"]
    for job, stage in zip(jobs, ["aimd", "training", "mlpmd", "record"]):
        assert job.uuid == stage_uuid("r", 2, stage)
        assert job.metadata == {"run_id": "r", "cycle": 2, "stage": stage}
    train = jobs[1]
    assert train.function_args[1:] == ("frames", "potential")
    # the next cycle's state points at this cycle's outputs
    (after,) = jobs[-1].function_args
    assert isinstance(after, CycleState) and (after.run_id, after.cycle) == ("r", 3)
    assert after.structure.uuid == jobs[2].uuid and after.structure.attributes[-1][1] == (
        "structure"
    )
    assert after.previous == OutputReference(jobs[3].uuid)
    assert after.training_set.uuid == after.potential.uuid == train.uuid
    assert jobs[-1].metadata == {"run_id": "r", "cycle": 3, "stage": "cycle"}


def test_no_maker_changes_while_cycles_are_built():
    maker = _maker()
    names = (maker.name, maker.aimd_maker.name, maker.train_maker.name,
             maker.mlpmd_maker.name, maker.aimd_maker.n_steps)
    for cycle in (2, 3):
        _cycle(maker, _state(cycle=cycle, previous=_cycle_doc(
            cycle - 1, training_fallback=FaultCorrection(
                handler="NoImprovementHandler", errors=["worse"], actions=["keep"]
            ),
        )))
    assert (maker.name, maker.aimd_maker.name, maker.train_maker.name,
            maker.mlpmd_maker.name, maker.aimd_maker.n_steps) == names


def test_a_kept_potential_lengthens_the_next_aimd():
    kept = FaultCorrection(handler="NoImprovementHandler", errors=["worse"], actions=["keep"])
    aimd = _cycle(_maker(), _state(previous=_cycle_doc(1, training_fallback=kept))).replace.jobs[0]
    assert aimd.maker.n_steps == 6
    plain = _cycle(_maker(), _state()).replace.jobs[0]
    assert plain.maker.n_steps == 3


def test_a_trusted_segment_is_continued_with_the_same_potential():
    state = _state(previous=_cycle_doc(1, stop_reason="max_steps", training_job="t1"))
    jobs = _cycle(_maker(), state).replace.jobs
    assert [j.name for j in jobs] == ["potential 2", "mlpmd 2", "record 2", "haml cycle 3"]
    assert jobs[0].function_args == ("t1",)
    assert jobs[1].function_args[0] is state.structure
    (after,) = jobs[-1].function_args
    assert after.potential.uuid == after.training_set.uuid == jobs[0].uuid
    off = _cycle(_maker(continue_trusted=False), state).replace.jobs
    assert [j.name for j in off][0] == "aimd 2"


@pytest.mark.parametrize(
    ("changes", "reason", "cycles"),
    [({"cycle": 4}, "max_cycles", 3),
     ({"previous": _cycle_doc(2, cumulative_fs=20.0)}, "total_time", 1)],
)
def test_stop_rules(changes, reason, cycles):
    summary = _cycle(_maker(total_time_fs=20.0), _state(**changes)).output
    assert summary.stop_reason == reason and summary.cycles == cycles
    assert summary.run_id == "r"


def test_state_from_a_stored_cycle():
    doc = _cycle_doc(3)
    state = CycleState.from_cycle_doc(doc, li_lpsc_mini(li_layers=1), "frames", "pot")
    assert (state.run_id, state.cycle, state.previous) == ("r", 4, doc)
    assert state.simulated_fs == doc.cumulative_fs
    assert CycleState(run_id="r", structure=state.structure).simulated_fs == 0.0


@pytest.fixture
def memory_store():
    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    store.connect()
    return store


def _tiny_run(cycles: int):
    data = yaml.safe_load((DATA / "lj_small.yaml").read_text())
    data["reference"]["steps"] = 3
    data["mtp"].update(level=4, radial_iterations=0)
    data["mlpmd"].update(max_steps=10, continue_trusted=False)
    data["stop"]["max_cycles"] = cycles
    spec = parse_spec(data)
    return build_run(spec, build_system(spec.system))


def test_names_per_job_and_resume_on_a_memory_store(memory_store, tmp_path):
    run = _tiny_run(cycles=2)
    run_prepared_locally(run, memory_store, tmp_path / "run")
    docs = cycle_docs(memory_store, run.run_id)
    assert [d.cycle for d in docs] == [1, 2]
    names = {d["name"] for d in memory_store.docs_store.query({}, properties=["name"])}
    assert {"haml cycle 1", "haml cycle 2", "haml cycle 3", "aimd 2", "record 2"} <= names
    assert not [n for n in names if re.search(r"\d+ \d+", n)]

    # the run killed after cycle 1: resume continues from the stored CycleDoc
    memory_store.docs_store.remove_docs({"metadata.cycle": {"$gte": 2}})
    memory_store.docs_store.remove_docs({"output.doc_type": "haml_run_summary"})
    report = resume_locally(run.run_id, memory_store, tmp_path / "resume")
    assert (report.cycles_done, report.next_cycle) == (1, 2)
    resumed = cycle_docs(memory_store, run.run_id)
    assert [d.cycle for d in resumed] == [1, 2]
    assert resumed[1].training_set_size == 2 * resumed[0].training_set_size
    assert resumed[1].cumulative_fs == pytest.approx(
        resumed[0].cumulative_fs + resumed[1].aimd_fs + resumed[1].mlpmd_fs
    )
    assert run_summary(memory_store, run.run_id).cycles == 2
