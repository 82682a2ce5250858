"""AIMD and MLP-MD segments on the analytic reference: velocities and the grade."""

import numpy as np
import pytest

from haml_flows.engines.mlpmd import MlpMdMaker
from haml_flows.engines.reference import LennardJonesAimdSegmentMaker
from haml_flows.engines.training import MtpTrainMaker
from haml_flows.spec import MlpMdSpec, MtpSpec
from haml_flows.systems import li_lpsc_mini


def _aimd(structure, **kwargs):
    maker = LennardJonesAimdSegmentMaker(n_steps=kwargs.pop("n_steps", 8), **kwargs)
    return LennardJonesAimdSegmentMaker.make.original(maker, structure)


@pytest.fixture(scope="module")
def trained():
    """One AIMD segment and an MTP trained on it."""
    aimd = _aimd(li_lpsc_mini(li_layers=1), n_steps=12, mb_velocity_seed=3)
    train = MtpTrainMaker(mtp=MtpSpec(level=6, radial_iterations=5))
    doc = MtpTrainMaker.make.original(train, aimd.trajectory)
    return aimd, doc


def test_first_segment_draws_maxwell_boltzmann_reproducibly():
    structure = li_lpsc_mini(li_layers=1)
    a = _aimd(structure, mb_velocity_seed=1)
    b = _aimd(structure, mb_velocity_seed=1)
    c = _aimd(structure, mb_velocity_seed=2)
    va = np.asarray(a.trajectory.frame_properties[0]["velocities"])
    assert np.allclose(va, b.trajectory.frame_properties[0]["velocities"])
    assert not np.allclose(va, c.trajectory.frame_properties[0]["velocities"])
    assert a.n_steps == 8 and len(a.trajectory) == 9
    assert a.simulated_fs == pytest.approx(8.0)


def test_segment_continues_from_incoming_velocities():
    first = _aimd(li_lpsc_mini(li_layers=1), mb_velocity_seed=1)
    incoming = np.asarray(first.structure.site_properties["velocities"])
    # the seed must not matter once velocities are given
    a = _aimd(first.structure, mb_velocity_seed=5)
    b = _aimd(first.structure, mb_velocity_seed=6)
    start = np.asarray(a.trajectory.frame_properties[0]["velocities"])
    # Nose-Hoover removes the (here ~1e-7) centre-of-mass drift, nothing else
    assert np.allclose(start, incoming, atol=1e-5)
    assert np.allclose(start, b.trajectory.frame_properties[0]["velocities"])
    assert a.temperature_start == pytest.approx(first.temperature_end, rel=0.03)


def test_training_set_grows_and_warm_starts(trained):
    aimd, doc = trained
    assert doc.training_set_size == 13 and not doc.warm_started
    again = MtpTrainMaker.make.original(
        MtpTrainMaker(mtp=MtpSpec(level=6, radial_iterations=5)),
        aimd.trajectory,
        doc.training_set,
        doc.potential,
    )
    assert again.training_set_size == 26 and again.warm_started
    assert np.isfinite(again.force_rmse)


def test_gamma_break_stops_the_segment(trained):
    aimd, doc = trained
    maker = MlpMdMaker(mlpmd=MlpMdSpec(max_steps=400, gamma_break=1.2, gamma_select=1.1, temperature=3000.0,
                                       temperature_band=None))
    out = MlpMdMaker.make.original(maker, aimd.structure, doc.potential, doc.training_set)
    assert out.stop_reason == "gamma_break"
    assert out.gamma_at_stop > 1.2
    assert out.n_steps < 400
    assert out.gamma_history[-1] == [out.n_steps, pytest.approx(out.gamma_at_stop)]
    assert all(g <= 1.2 for _, g in out.gamma_history[:-1])
    assert out.trajectory.frame_properties[-1]["step"] == out.n_steps


def test_step_limit_when_gamma_stays_below_break(trained):
    aimd, doc = trained
    maker = MlpMdMaker(mlpmd=MlpMdSpec(max_steps=30, gamma_break=1e9, save_interval=10,
                                       contact_tolerance=None))
    out = MlpMdMaker.make.original(maker, aimd.structure, doc.potential, doc.training_set)
    assert out.stop_reason == "max_steps" and out.n_steps == 30
    assert [p["step"] for p in out.trajectory.frame_properties] == [0, 10, 20, 30]
    assert len(out.gamma_history) == 31
    assert out.temperature_start == pytest.approx(aimd.temperature_end, rel=0.03)
    # each saved frame keeps the MTP's forces of its own step
    from haml_flows.engines.frames import atoms_with_velocities
    from haml_flows.mtp.grade import mtp_calculator

    last = atoms_with_velocities(out.trajectory[-1])
    last.calc = mtp_calculator(doc.potential)
    np.testing.assert_allclose(
        out.trajectory.frame_properties[-1]["forces"], last.get_forces(), atol=1e-8)


def test_a_rotated_cell_turns_positions_and_velocities_together():
    # ASE's Nose-Hoover takes an upper-triangular cell; velocities must turn
    # with the positions, or the MD starts with a different motion
    from ase.build import bulk

    from haml_flows.engines.frames import standard_frame

    atoms = bulk("Li", "bcc", a=3.44, cubic=True).repeat(2)
    rng = np.random.default_rng(0)
    atoms.rattle(0.05, rng=rng)
    atoms.set_velocities(rng.normal(size=(len(atoms), 3)) * 0.01)
    turn = np.array([[0.6, -0.8, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])
    atoms.set_cell(atoms.cell[:] @ turn.T, scale_atoms=True)  # a lower-left cell
    atoms.set_velocities(atoms.get_velocities() @ turn.T)
    frame = standard_frame(atoms, "upper")
    assert np.allclose(np.tril(frame.cell[:], -1), 0)
    np.testing.assert_allclose(frame.get_scaled_positions(), atoms.get_scaled_positions(),
                               atol=1e-12)
    # the velocity in cell coordinates (fractions of the cell vectors per time) is unchanged
    np.testing.assert_allclose(frame.get_velocities() @ np.linalg.inv(frame.cell[:]),
                               atoms.get_velocities() @ np.linalg.inv(atoms.cell[:]),
                               atol=1e-12)


def test_gamma_every_k_steps(trained):
    aimd, doc = trained
    maker = MlpMdMaker(mlpmd=MlpMdSpec(max_steps=20, gamma_break=1e9, gamma_every=5,
                                       contact_tolerance=None))
    out = MlpMdMaker.make.original(maker, aimd.structure, doc.potential, doc.training_set)
    assert [s for s, _ in out.gamma_history] == [0, 5, 10, 15, 20]


def test_mlpmd_needs_velocities(trained):
    _, doc = trained
    with pytest.raises(ValueError, match="velocities"):
        MlpMdMaker.make.original(
            MlpMdMaker(), li_lpsc_mini(li_layers=1), doc.potential, doc.training_set
        )


def _heated(structure, factor):
    hot = structure.copy()
    velocities = np.asarray(structure.site_properties["velocities"]) * np.sqrt(factor)
    hot.add_site_property("velocities", velocities.tolist())
    return hot


def test_hot_start_is_cooled_to_the_target(trained):
    aimd, doc = trained
    maker = MlpMdMaker(mlpmd=MlpMdSpec(max_steps=5, gamma_break=1e9, temperature=aimd.temperature_end))
    hot = _heated(aimd.structure, 4.0)
    out = MlpMdMaker.make.original(maker, hot, doc.potential, doc.training_set)
    assert out.start_cooled_from == pytest.approx(4.0 * aimd.temperature_end, rel=1e-6)
    assert out.temperature_start == pytest.approx(aimd.temperature_end, rel=0.03)
    assert out.collapse == []


def test_start_within_the_factor_keeps_its_velocities(trained):
    aimd, doc = trained
    maker = MlpMdMaker(mlpmd=MlpMdSpec(max_steps=5, gamma_break=1e9, temperature=aimd.temperature_end))
    warm = _heated(aimd.structure, 1.4)
    out = MlpMdMaker.make.original(maker, warm, doc.potential, doc.training_set)
    assert out.start_cooled_from is None
    assert out.temperature_start == pytest.approx(1.4 * aimd.temperature_end, rel=0.03)
