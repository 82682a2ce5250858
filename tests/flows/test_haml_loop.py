"""The HAML loop on the analytic reference, against the embedded server."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from haml_flows.queries import cycle_docs, run_doc, run_summary, trajectory
from haml_flows.runner import (
    prepare_run,
    run_prepared_locally,
    run_prepared_on_fireworks,
)

DATA = Path(__file__).parents[1] / "data"


def _spec(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((DATA / "lj_small.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data[section][key] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_max_cycles_rule_and_stored_cycles(job_store, tmp_path):
    run = prepare_run(_spec(
        tmp_path, stop__max_cycles=3, stop__total_time_ps=100.0,
        mlpmd__continue_trusted=False, mlpmd__start_temperature_factor=10.0,
    ))
    run_prepared_locally(run, job_store, tmp_path / "work")

    docs = cycle_docs(job_store, run.run_id)
    assert [d.cycle for d in docs] == [1, 2, 3]
    summary = run_summary(job_store, run.run_id)
    assert summary.stop_reason == "max_cycles" and summary.cycles == 3
    assert summary.simulated_fs == pytest.approx(docs[-1].cumulative_fs)
    assert run_doc(job_store, run.run_id).n_atoms == len(run.structure)

    sizes = [d.training_set_size for d in docs]
    assert sizes == [9, 18, 27]  # every AIMD frame so far (8 steps + start)
    for doc in docs:
        assert doc.aimd_steps == 8 and doc.aimd_fs == pytest.approx(8.0)
        assert doc.mlpmd_fs == pytest.approx(0.5 * doc.mlpmd_steps)
        for cost in (doc.aimd_cost, doc.training_cost, doc.mlpmd_cost):
            assert cost.wall_seconds > 0 and cost.cpu_seconds > 0
    expected = np.cumsum([d.aimd_fs + d.mlpmd_fs for d in docs])
    assert [d.cumulative_fs for d in docs] == pytest.approx(list(expected))

    # velocities carry across every hand-over: the next segment starts at the
    # temperature the previous one ended with (the thermostat removes only the
    # centre-of-mass drift; the Lennard-Jones reference runs hot, so the
    # start cooling, tested in tests/engines, is set out of reach here)
    for doc in docs:
        assert doc.temperature_mlpmd_start == pytest.approx(
            doc.temperature_aimd_end, rel=0.03
        )
    for before, after in zip(docs, docs[1:]):
        assert after.temperature_aimd_start == pytest.approx(
            before.temperature_mlpmd_end, rel=0.03
        )

    aimd = trajectory(job_store, docs[1].aimd_job)
    assert len(aimd) == 9
    assert np.asarray(aimd.frame_properties[0]["forces"]).shape == (len(run.structure), 3)
    mlpmd = trajectory(job_store, docs[1].mlpmd_job)
    assert mlpmd.frame_properties[-1]["step"] == docs[1].mlpmd_steps

    # cycle documents are small: no trajectory or potential inside
    raw = job_store.docs_store.query_one(
        {"output.doc_type": "haml_cycle", "output.run_id": run.run_id}
    )
    assert "trajectory" not in raw["output"] and "potential" not in raw["output"]


def test_total_time_rule(job_store, tmp_path):
    run = prepare_run(
        _spec(tmp_path, stop__max_cycles=5, stop__total_time_ps=0.004)
    )
    run_prepared_locally(run, job_store, tmp_path / "work")
    docs = cycle_docs(job_store, run.run_id)
    assert len(docs) == 1
    summary = run_summary(job_store, run.run_id)
    assert summary.stop_reason == "total_time" and summary.cycles == 1


def test_fireworks_gives_the_same_cycles(haml_settings, job_store, tmp_path):
    from haml_flows.database.stores import make_launchpad

    launchpad = make_launchpad(haml_settings)
    launchpad.reset("", require_password=False)
    run = prepare_run(_spec(tmp_path, stop__max_cycles=2))
    run_prepared_on_fireworks(run, job_store, launchpad, tmp_path / "fw")

    docs = cycle_docs(job_store, run.run_id)
    assert [d.cycle for d in docs] == [1, 2]
    assert run_summary(job_store, run.run_id).stop_reason == "max_cycles"
    states = {fw["state"] for fw in launchpad.fireworks.find({}, {"state": 1})}
    assert states == {"COMPLETED"}


def _continued_spec(tmp_path: Path, **changes) -> Path:
    # no gamma break and a guard too loose to fire on this small potential:
    # every MLP-MD segment runs to max_steps and is trusted (and starts from
    # the previous one's velocities: no start cooling). Warm-started fits keep
    # three rounds: with one, this toy's level-6 fit on 18 frames can come out
    # worse on its held-out frames than the cycle before, and the training
    # fallback then keeps the old potential and lengthens the next AIMD.
    return _spec(
        tmp_path, mtp__warm_rounds=3,
        mlpmd__gamma_break=1e9, mlpmd__temperature_factor=50.0,
        mlpmd__max_force=1e4, mlpmd__distance_margin=0.1,
        mlpmd__start_temperature_factor=10.0,
        stop__max_cycles=3, stop__total_time_ps=100.0, **changes,
    )


def _assert_continued(docs):
    first, *rest = docs
    assert not first.continued and first.aimd_steps == 8
    assert first.stop_reason == "max_steps"
    for before, doc in zip(docs, rest):
        assert doc.continued
        assert doc.aimd_steps == 0 and doc.aimd_fs == 0.0 and doc.aimd_job is None
        assert doc.aimd_cost.cpu_seconds == 0.0 and doc.training_cost.cpu_seconds == 0.0
        # the same potential: the cycle-1 training job, its numbers carried over
        assert doc.training_job == first.training_job
        assert doc.training_set_size == first.training_set_size == 9
        assert doc.force_rmse == first.force_rmse
        assert doc.mlpmd_steps == 60 and doc.mlpmd_cost.cpu_seconds > 0
        assert doc.cumulative_fs == pytest.approx(before.cumulative_fs + 30.0)
        # the segment continues from the previous one's last state
        assert doc.temperature_mlpmd_start == pytest.approx(
            before.temperature_mlpmd_end, rel=0.03
        )


def test_trusted_segment_is_continued_without_aimd(job_store, tmp_path):
    from haml_flows.analysis.timeline import run_timeline

    run = prepare_run(_continued_spec(tmp_path))
    run_prepared_locally(run, job_store, tmp_path / "work")
    docs = cycle_docs(job_store, run.run_id)
    assert [d.cycle for d in docs] == [1, 2, 3]
    _assert_continued(docs)
    # the timeline skips the missing AIMD segments and stays in time order
    times = [frame.time_fs for frame in run_timeline(job_store, run.run_id)]
    assert np.all(np.diff(times) > 0)
    assert times[-1] == pytest.approx(docs[-1].cumulative_fs)
    stages = {(frame.cycle, frame.stage) for frame in run_timeline(job_store, run.run_id)}
    assert (2, "aimd") not in stages and (2, "mlpmd") in stages


def test_continuation_can_be_switched_off(job_store, tmp_path):
    run = prepare_run(_continued_spec(tmp_path, mlpmd__continue_trusted=False))
    run_prepared_locally(run, job_store, tmp_path / "work")
    docs = cycle_docs(job_store, run.run_id)
    assert [d.aimd_steps for d in docs] == [8, 8, 8]
    assert not any(d.continued for d in docs)
    assert [d.training_set_size for d in docs] == [9, 18, 27]


def test_continued_cycles_on_fireworks(haml_settings, job_store, tmp_path):
    from haml_flows.database.stores import make_launchpad

    launchpad = make_launchpad(haml_settings)
    launchpad.reset("", require_password=False)
    run = prepare_run(_continued_spec(tmp_path))
    run_prepared_on_fireworks(run, job_store, launchpad, tmp_path / "fw")
    docs = cycle_docs(job_store, run.run_id)
    assert [d.cycle for d in docs] == [1, 2, 3]
    _assert_continued(docs)
    states = {fw["state"] for fw in launchpad.fireworks.find({}, {"state": 1})}
    assert states == {"COMPLETED"}
