"""The audit in the HAML loop, on the analytic reference against the embedded server:
its frames join the next training, a failed audit refuses continuation and
lengthens the next AIMD, the guards are counted."""

from pathlib import Path

import pytest
import yaml

from haml_flows.analysis.report import audit_analysis
from haml_flows.queries import cycle_docs, run_doc, run_summary
from haml_flows.runner import prepare_run, run_prepared_locally

DATA = Path(__file__).parents[1] / "data"


def _run(job_store, tmp_path: Path, audit: dict, **mlpmd) -> list:
    data = yaml.safe_load((DATA / "lj_small.yaml").read_text())
    data["audit"] = {"enabled": True, **audit}
    # no gamma break and loose collapse limits: every segment reaches max_steps
    data["mlpmd"].update(
        gamma_break=1e9, temperature_factor=50.0, max_force=1e4, distance_margin=0.1,
        start_temperature_factor=10.0, **mlpmd,
    )
    data["stop"].update(max_cycles=3, total_time_ps=100.0)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    run = prepare_run(path)
    run_prepared_locally(run, job_store, tmp_path / "work")
    return run.run_id, cycle_docs(job_store, run.run_id)


def test_a_passing_audit_lets_a_trusted_segment_continue(job_store, tmp_path):
    _, docs = _run(job_store, tmp_path, {"frames": 3, "selected_frames": 0, "max_force_rmse": 100.0})
    first, second, third = docs
    assert first.audit_passed and first.audit_frames == 3
    assert first.audit_force_rmse > 0 and first.audit_force_max_error >= first.audit_force_rmse
    assert second.continued and third.continued
    # continued cycles train nothing: their audits' frames wait for a training
    assert second.training_set_size == third.training_set_size == 9
    assert all(d.audit_job for d in docs)


def test_a_failed_audit_refuses_continuation_and_lengthens_the_aimd(job_store, tmp_path):
    # the audit alone (no in-segment checks): each segment runs to its limit
    run_id, docs = _run(job_store, tmp_path, {"frames": 2, "selected_frames": 0,
                                              "max_force_rmse": 1e-6, "check_every_fs": None})
    assert not any(d.reference_checks for d in docs), [d.stop_reason for d in docs]
    assert [d.audit_passed for d in docs] == [False, False, False]
    assert not any(d.continued for d in docs)
    assert [d.aimd_steps for d in docs] == [8, 16, 32]
    # the audited frames joined every next training set
    assert [d.training_set_size for d in docs] == [9, 9 + 2 + 17, 28 + 2 + 33]
    assert run_summary(job_store, run_id).audits_failed == 3


def test_the_band_guard_is_counted_in_the_run_summary(job_store, tmp_path):
    # the Lennard-Jones reference runs far hotter than a 50 K target
    run_id, docs = _run(
        job_store, tmp_path, {"frames": 2}, temperature=50.0, temperature_band=0.2,
        temperature_window_fs=4.0,
    )
    stopped = [d for d in docs if d.stop_reason == "collapse"]
    assert stopped and all(
        "TemperatureBandHandler" in {c.handler for c in d.mlpmd_collapse} for d in stopped
    )
    assert run_summary(job_store, run_id).cycles_guarded == len(stopped)
    assert [d.aimd_steps for d in docs][1] == 16  # a guard lengthens the next AIMD


def test_a_failing_reference_check_hands_over_and_its_frame_joins_the_training(
    job_store, tmp_path
):
    run_id, docs = _run(
        job_store, tmp_path,
        {"frames": 2, "selected_frames": 0, "max_force_rmse": 1e-6, "check_every_fs": 2.0},
    )
    for doc in docs:
        # the first check (step 4 of 0.5 fs) fails; the segment rolls back to its start
        assert doc.stop_reason == "reference_check" and doc.mlpmd_steps == 0
        assert [(c.step, c.passed) for c in doc.reference_checks] == [(4, False)]
        assert doc.reference_checks[0].force_rmse > 1e-6
        assert doc.audit_frames == 1  # the one frame left: the hand-over
    # each next training holds the audited frame and the checked frame
    assert [d.training_set_size for d in docs] == [9, 9 + 2 + 17, 28 + 2 + 33]
    assert [d.aimd_steps for d in docs] == [8, 16, 32]
    assert run_summary(job_store, run_id).cycles_checked == 3
    # the report counts the stops and places each check at its time, with its grade
    analysis = audit_analysis(job_store, docs, run_doc(job_store, run_id).spec)
    assert analysis.guards == {"ReferenceCheck": 3}
    checks = [i for i, kind in enumerate(analysis.kind) if kind == "check"]
    assert [analysis.cycle[i] for i in checks] == [1, 2, 3]
    for i, doc in zip(checks, docs):
        assert analysis.time_ps[i] == pytest.approx((doc.cumulative_fs + 4 * 0.5) / 1000.0)
        assert analysis.force_rmse[i] == doc.reference_checks[0].force_rmse
        assert analysis.gamma[i] == doc.reference_checks[0].gamma > 0
