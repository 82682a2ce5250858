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
    assert train.function_args[1:] == ("frames", "potential", [])
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


def _audited_maker(**changes) -> HamlCycleMaker:
    from haml_flows.engines.audit import AuditMaker

    maker = _maker(**changes)
    return HamlCycleMaker(
        **{**{f: getattr(maker, f) for f in ("aimd_maker", "train_maker", "mlpmd_maker",
                                              "max_cycles")},
           "audit_maker": AuditMaker(reference=maker.aimd_maker), **changes},
    )


def test_the_audit_follows_the_mlpmd_and_feeds_the_next_training():
    earlier = OutputReference("an-earlier-audit").trajectory
    jobs = _cycle(_audited_maker(), _state(pending=[earlier])).replace.jobs
    assert [j.name for j in jobs] == ["aimd 2", "training 2", "mlpmd 2", "audit 2",
                                      "record 2", "haml cycle 3"]
    train, mlpmd, audit = jobs[1], jobs[2], jobs[3]
    assert train.function_args[3] == [earlier]  # the frames relabelled since the last fit
    assert audit.function_args[0].uuid == audit.function_args[1].uuid == mlpmd.uuid
    assert audit.function_args[2].uuid == train.uuid
    (after,) = jobs[-1].function_args
    assert [p.uuid for p in after.pending] == [audit.uuid] and after.aimd_steps == 3


@pytest.mark.parametrize(
    "untrusted",
    [{"audit_passed": False, "audit_force_rmse": 0.4}, {"stop_reason": "collapse"}],
)
def test_a_failed_audit_or_a_guard_lengthens_the_next_aimd_up_to_the_cap(untrusted):
    maker = _audited_maker(longest_aimd=10)
    previous = _cycle_doc(1, **untrusted)
    aimd = _cycle(maker, _state(previous=previous)).replace.jobs[0]
    assert aimd.maker.n_steps == 6
    again = _cycle(maker, _state(previous=previous, aimd_steps=6)).replace.jobs[0]
    assert again.maker.n_steps == 10  # 12, capped
    clean = _cycle(maker, _state(aimd_steps=10)).replace.jobs[0]
    assert clean.maker.n_steps == 3


def test_a_segment_whose_audit_failed_is_not_continued():
    failed = _cycle_doc(1, stop_reason="max_steps", audit_passed=False, audit_force_rmse=0.3)
    jobs = _cycle(_audited_maker(), _state(previous=failed)).replace.jobs
    assert jobs[0].name == "aimd 2"
    passed = _cycle_doc(1, stop_reason="max_steps", audit_passed=True, training_job="t1")
    pending = [OutputReference("audit-1").trajectory]
    jobs = _cycle(_audited_maker(), _state(previous=passed, pending=pending)).replace.jobs
    assert [j.name for j in jobs] == ["potential 2", "mlpmd 2", "audit 2", "record 2",
                                      "haml cycle 3"]
    (after,) = jobs[-1].function_args
    # no training in a continued cycle: its audit's frames wait with the earlier ones
    assert [p.uuid for p in after.pending] == ["audit-1", jobs[2].uuid]


def test_a_run_whose_cycles_keep_firing_guards_says_so(caplog):
    from haml_flows.schemas import CycleTally

    tally = CycleTally(cycles=3, guarded=2, audits_failed=0)
    with caplog.at_level("WARNING", logger="haml_flows.progress"):
        summary = _cycle(_maker(), _state(cycle=4, tally=tally, previous=_cycle_doc(
            3, stop_reason="collapse"))).output
    assert (summary.cycles_guarded, summary.audits_failed) == (3, 0)
    assert "guards stopped the MLP-MD in 3 of 4 cycles" in caplog.text


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
    data["audit"] = {"enabled": True, "frames": 2}
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
    # cycle 1's audited frames join cycle 2's training, after a resume as well
    assert docs[0].audit_frames > 0
    assert resumed[1].training_set_size == docs[1].training_set_size == (
        docs[0].training_set_size + docs[0].audit_frames + docs[1].aimd_steps + 1
    )
    assert resumed[1].cumulative_fs == pytest.approx(
        resumed[0].cumulative_fs + resumed[1].aimd_fs + resumed[1].mlpmd_fs
    )
    assert run_summary(memory_store, run.run_id).cycles == 2


def test_the_last_cycle_stops_at_the_runs_total_time():
    # 8 fs simulated, 12 fs asked for: a lengthened AIMD of 6 steps is cut to 4,
    # and the MLP-MD after it (0.5 fs steps) gets no steps past the target
    kept = FaultCorrection(handler="NoImprovementHandler", errors=["worse"], actions=["keep"])
    maker = _maker(total_time_fs=12.0)
    state = _state(simulated_fs=8.0, previous=_cycle_doc(1, training_fallback=kept))
    jobs = _cycle(maker, state).replace.jobs
    assert jobs[0].maker.n_steps == 4
    assert jobs[2].maker.mlpmd.max_steps == 1  # nothing left after the AIMD: one step
    roomy = _cycle(_maker(total_time_fs=100.0), _state(simulated_fs=8.0)).replace.jobs
    assert roomy[0].maker.n_steps == 3 and roomy[2].maker.mlpmd.max_steps == 10
    short = _cycle(_maker(total_time_fs=13.0), _state(simulated_fs=8.0)).replace.jobs
    # 3 fs of AIMD, then 2 fs left: 4 MLP-MD steps of 0.5 fs
    assert short[0].maker.n_steps == 3 and short[2].maker.mlpmd.max_steps == 4
    assert maker.mlpmd_maker.mlpmd.max_steps == 10  # the maker itself is unchanged
