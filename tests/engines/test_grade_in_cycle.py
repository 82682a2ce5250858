"""The grade in a cycle: the training job's active set, reused by MLP-MD; selection."""

from __future__ import annotations

import numpy as np
import pytest

from haml_flows.engines.mlpmd import MlpMdMaker
from haml_flows.engines.reference import LennardJonesAimdSegmentMaker
from haml_flows.engines.selection import SelectedFrames
from haml_flows.engines.training import MtpTrainMaker
from haml_flows.mtp.frames import cfg_to_frames
from haml_flows.mtp.grade import ActiveSet
from haml_flows.spec import MlpMdSpec, MtpSpec
from haml_flows.systems import li_lpsc_mini


@pytest.fixture(scope="module")
def trained():
    """Two AIMD segments on the analytic reference, an MTP trained on them."""
    maker = LennardJonesAimdSegmentMaker(n_steps=40, mb_velocity_seed=3)
    aimd = LennardJonesAimdSegmentMaker.make.original(maker, li_lpsc_mini(li_layers=1))
    train = MtpTrainMaker(mtp=MtpSpec(level=6, radial_iterations=10, active_set_frames=30))
    return aimd, MtpTrainMaker.make.original(train, aimd.trajectory)


def test_training_keeps_the_active_set_of_its_potential(trained):
    aimd, doc = trained
    active = doc.active_set
    assert active.mode == "neighborhood" and doc.training_set_size == 41
    # at most active_set_frames candidates: the newest half and older ones spread
    assert len(active.candidate_frames) == 30
    assert active.candidate_frames[-15:] == list(range(26, 41))
    assert len(doc.active_set_slots) == active.n_params
    used = {frame for frame, _ in doc.active_set_slots if frame >= 0}
    assert used <= set(active.candidate_frames)
    assert active.uncovered == sum(active.uncovered_blocks.values())
    assert active.cost.wall_seconds > 0
    rebuilt = ActiveSet.from_slots(
        doc.potential, cfg_to_frames(doc.training_set), doc.active_set_slots
    )
    frames = cfg_to_frames(doc.training_set)
    assert max(rebuilt.grade_frames([frames[i] for i in active.candidate_frames])) <= 1.001


def test_mlpmd_grades_with_the_training_jobs_active_set(trained):
    aimd, doc = trained
    maker = MlpMdMaker(mlpmd=MlpMdSpec(max_steps=12, gamma_break=float("inf"), save_interval=1))
    out = MlpMdMaker.make.original(
        maker, aimd.structure, doc.potential, doc.training_set,
        doc.active_set.model_dump(), doc.active_set_slots,
    )
    assert out.grade_mode == "neighborhood"
    # every step graded against the rows the training job chose
    active = ActiveSet.from_slots(
        doc.potential, cfg_to_frames(doc.training_set), doc.active_set_slots
    )
    frames = [s.to_ase_atoms() for s in out.trajectory]
    np.testing.assert_allclose(
        [g for _, g in out.gamma_history], active.grade_frames(frames), rtol=1e-8
    )
    assert out.gamma_history[0][1] <= 1.001  # the start is the last training frame
    # a training stored without an active set: the segment builds one itself
    legacy = MlpMdMaker.make.original(maker, aimd.structure, doc.potential, doc.training_set)
    assert legacy.grade_mode == "neighborhood" and legacy.gamma_history[0][1] <= 1.001


def test_segment_keeps_frames_between_gamma_select_and_gamma_break(trained):
    aimd, doc = trained
    md = MlpMdSpec(
        max_steps=200, gamma_break=1e9, gamma_select=1.05, max_selected=4,
        save_interval=5, temperature=1500.0, temperature_band=None, contact_tolerance=None,
    )
    out = MlpMdMaker.make.original(
        MlpMdMaker(mlpmd=md), aimd.structure, doc.potential, doc.training_set,
        doc.active_set.model_dump(), doc.active_set_slots,
    )
    graded = dict((int(s), g) for s, g in out.gamma_history)
    above = [s for s, g in graded.items() if 1.05 < g <= 1e9]
    assert len(above) > 4  # more qualify than the segment keeps
    assert out.n_selected == 4 == len(out.selected)
    steps = [p["step"] for p in out.selected.frame_properties]
    assert steps == sorted(steps) and min(np.diff(steps)) >= 5
    for props in out.selected.frame_properties:
        assert props["gamma"] == pytest.approx(graded[props["step"]])
        assert 1.05 < props["gamma"] <= 1e9
    kept = sorted(props["gamma"] for props in out.selected.frame_properties)
    # the highest graded of the spaced candidates are the ones kept
    assert kept[0] >= sorted(graded[s] for s in above)[len(above) // 2 - 1]


def test_configuration_mode_reaches_the_segment(trained):
    aimd, _ = trained
    frames_doc = MtpTrainMaker.make.original(
        MtpTrainMaker(mtp=MtpSpec(level=4, radial_iterations=5, grade_mode="configuration")),
        aimd.trajectory,
    )
    assert frames_doc.active_set.mode == "configuration"
    assert {atom for _, atom in frames_doc.active_set_slots} <= {-1}
    out = MlpMdMaker.make.original(
        MlpMdMaker(mlpmd=MlpMdSpec(max_steps=5, gamma_break=float("inf"))),
        aimd.structure, frames_doc.potential, frames_doc.training_set,
        frames_doc.active_set.model_dump(), frames_doc.active_set_slots,
    )
    assert out.grade_mode == "configuration"


def _frame(step):
    return lambda: (f"structure {step}", {"energy": float(step)})


def test_selection_is_bounded_spaced_and_keeps_the_highest():
    selection = SelectedFrames(gamma_select=2.0, gamma_break=10.0, limit=3, spacing=5)
    for step, gamma in [(0, 1.5), (1, 3.0), (3, 4.0), (10, 2.5), (20, 12.0), (21, 9.0),
                        (30, 2.2), (40, 8.0)]:
        selection.offer(step, gamma, _frame(step))
    kept = [(k[0], k[1]) for k in selection.kept]
    # 1.5 below the threshold, 12 above the break; step 3 replaced step 1 (closer
    # than 5 steps, graded higher); 2.2 lost to higher grades once three were kept
    assert sorted(kept) == [(3, 4.0), (21, 9.0), (40, 8.0)]
    selection.drop_after(30)
    assert [k[0] for k in selection.kept] == [3, 21]
    assert SelectedFrames(2.0, 10.0, limit=0).trajectory() is None
