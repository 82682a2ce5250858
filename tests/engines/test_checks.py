"""Reference checks inside an MLP-MD segment: the audit's threshold applied while it runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.calculators.lj import LennardJones

from haml_flows.engines.mlpmd import MlpMdMaker
from haml_flows.engines.reference import LENNARD_JONES, LennardJonesAimdSegmentMaker
from haml_flows.engines.training import MtpTrainMaker
from haml_flows.flows.haml import HamlCycleMaker
from haml_flows.mtp.grade import mtp_calculator
from haml_flows.spec import MlpMdSpec, MtpSpec, RunSpec, SpecError
from haml_flows.systems import li_lpsc_mini

MD = MlpMdSpec(max_steps=60, gamma_break=float("inf"), save_interval=10, temperature=600.0,
               temperature_band=None, contact_tolerance=None)


@pytest.fixture(scope="module")
def trained():
    """A Lennard-Jones reference segment and a small MTP trained on it."""
    reference = LennardJonesAimdSegmentMaker(n_steps=30, mb_velocity_seed=3)
    aimd = LennardJonesAimdSegmentMaker.make.original(reference, li_lpsc_mini(li_layers=1))
    doc = MtpTrainMaker.make.original(
        MtpTrainMaker(mtp=MtpSpec(level=6, radial_iterations=10)), aimd.trajectory
    )
    return reference, aimd, doc


def _segment(trained, threshold: float):
    reference, aimd, doc = trained
    maker = MlpMdMaker(mlpmd=MD, reference=reference, check_every_fs=5.0,
                       check_force_rmse=threshold)
    return MlpMdMaker.make.original(
        maker, aimd.structure, doc.potential, doc.training_set,
        doc.active_set.model_dump(), doc.active_set_slots,
    )


@pytest.fixture(scope="module")
def passing(trained):
    """A segment whose every check passes (threshold far above the error)."""
    return _segment(trained, 10.0)


def test_checks_measure_the_running_frame_against_the_reference(trained, passing):
    _, _, doc = trained
    assert passing.stop_reason == "max_steps" and passing.n_steps == 60
    assert [c.step for c in passing.reference_checks] == [10, 20, 30, 40, 50, 60]
    assert all(c.passed for c in passing.reference_checks) and passing.checked is None
    # each check carries the grade of its step, as the gamma history has it
    history = dict((int(s), g) for s, g in passing.gamma_history)
    assert [c.gamma for c in passing.reference_checks] == [history[c.step] for c in passing.reference_checks]
    assert passing.check_seconds > 0
    # each check's numbers recomputed by hand on the saved frame of its step
    lj, mtp = LennardJones(**LENNARD_JONES), mtp_calculator(doc.potential)
    by_step = {p["step"]: i for i, p in enumerate(passing.trajectory.frame_properties)}
    for check in passing.reference_checks:
        atoms = passing.trajectory[by_step[check.step]].to_ase_atoms()
        atoms.calc = lj
        forces, energy = atoms.get_forces(), atoms.get_potential_energy()
        atoms.calc = mtp
        error = atoms.get_forces() - forces
        assert check.force_rmse == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-6)
        assert check.force_max_error == pytest.approx(np.abs(error).max(), rel=1e-6)
        assert check.energy_error == pytest.approx(
            (atoms.get_potential_energy() - energy) / len(atoms), rel=1e-6, abs=1e-9
        )


def test_a_failing_check_stops_the_segment_at_the_last_check_that_passed(trained, passing):
    rmse = [c.force_rmse for c in passing.reference_checks]
    # the first check whose error is above every earlier one: the threshold lies between
    rising = next(i for i in range(1, len(rmse)) if rmse[i] > max(rmse[:i]))
    threshold = max(rmse[:rising])
    out = _segment(trained, threshold)
    fails_at, passed_at = 10 * (rising + 1), 10 * rising
    assert out.stop_reason == "reference_check"
    assert [c.passed for c in out.reference_checks] == [c <= threshold for c in rmse[:rising]] + [False]
    assert out.reference_checks[-1].step == fails_at
    # rolled back to the last passing check: the same state the passing run had there
    assert out.n_steps == out.rolled_back_to_step == passed_at
    assert out.simulated_fs == pytest.approx(passed_at * MD.time_step)
    assert out.trajectory.frame_properties[-1]["step"] == passed_at
    same = passing.trajectory[[p["step"] for p in passing.trajectory.frame_properties].index(passed_at)]
    assert np.allclose(out.structure.cart_coords, same.cart_coords, atol=1e-8)
    # the failing frame, labelled by the reference, is kept for the next training
    (props,) = out.checked.frame_properties
    assert props["step"] == fails_at and props["kind"] == "check"
    atoms = out.checked[0].to_ase_atoms()
    atoms.calc = LennardJones(**LENNARD_JONES)
    assert np.allclose(props["forces"], atoms.get_forces(), atol=1e-8)


def test_a_first_check_that_fails_rolls_back_to_the_segment_start(trained):
    _, aimd, _ = trained
    out = _segment(trained, 1e-9)
    assert out.stop_reason == "reference_check" and out.n_steps == 0
    assert [c.step for c in out.reference_checks] == [10]
    assert [p["step"] for p in out.trajectory.frame_properties] == [0]


def _spec(**sections) -> dict:
    """The loop tests' spec file with an audit, ``sections`` merged in."""
    spec = yaml.safe_load((Path(__file__).parents[1] / "data" / "lj_small.yaml").read_text())
    spec["audit"] = {"enabled": True}
    for name, values in sections.items():
        spec[name] = {**spec[name], **values}
    return spec


def test_checks_are_on_by_default_and_reach_the_mlpmd_maker():
    spec = RunSpec.model_validate(_spec())
    assert spec.audit.check_every_fs == 10.0
    maker = HamlCycleMaker.from_spec(spec).mlpmd_maker
    assert maker.check_every_fs == 10.0 and maker.reference is not None
    assert maker.check_force_rmse == spec.audit.max_force_rmse


def test_checks_yield_where_they_cannot_run_and_refuse_when_asked_for_there():
    # the default yields to the LAMMPS MLP-MD and to a switched-off audit
    assert RunSpec.model_validate(_spec(mlpmd={"engine": "lammps"})).audit.check_every_fs is None
    assert RunSpec.model_validate(_spec(audit={"enabled": False})).audit.check_every_fs is None
    with pytest.raises(ValueError, match="audit.check_every_fs .*mlpmd.engine 'lammps'"):
        RunSpec.model_validate(_spec(mlpmd={"engine": "lammps"}, audit={"check_every_fs": 5}))
    with pytest.raises(ValueError, match="audit.check_every_fs .*audit.enabled is false"):
        RunSpec.model_validate(_spec(audit={"enabled": False, "check_every_fs": 5}))
    with pytest.raises(ValueError, match="shorter than mlpmd.time_step"):
        RunSpec.model_validate(_spec(mlpmd={"time_step": 1.0}, audit={"check_every_fs": 0.5}))
    with pytest.raises((ValueError, SpecError), match="check_every_fs"):
        RunSpec.model_validate(_spec(audit={"check_every_fs": 0}))
