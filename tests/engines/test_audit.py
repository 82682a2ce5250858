"""The audit: MLP-MD frames relabelled by the reference engine, the MLP's errors on them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from haml_flows.engines.audit import AuditMaker, audit_picks, reference_single_point
from haml_flows.engines.mlpmd import MlpMdMaker
from haml_flows.engines.reference import LENNARD_JONES, LennardJonesAimdSegmentMaker
from haml_flows.engines.training import MtpTrainMaker
from haml_flows.mtp.grade import mtp_calculator
from haml_flows.spec import AuditSpec, MlpMdSpec, MtpSpec
from haml_flows.systems import li_lpsc_mini


@pytest.fixture(scope="module")
def segment():
    """An AIMD segment, an MTP trained on it and an MLP-MD segment that selected frames."""
    reference = LennardJonesAimdSegmentMaker(n_steps=30, mb_velocity_seed=3)
    aimd = LennardJonesAimdSegmentMaker.make.original(reference, li_lpsc_mini(li_layers=1))
    train = MtpTrainMaker(mtp=MtpSpec(level=6, radial_iterations=10))
    doc = MtpTrainMaker.make.original(train, aimd.trajectory)
    md = MlpMdSpec(max_steps=60, gamma_break=float("inf"), gamma_select=1.05,
                   save_interval=5, temperature=600.0, temperature_band=None,
                   contact_tolerance=None)
    mlpmd = MlpMdMaker.make.original(
        MlpMdMaker(mlpmd=md), aimd.structure, doc.potential, doc.training_set,
        doc.active_set.model_dump(), doc.active_set_slots,
    )
    return reference, doc, mlpmd


def test_picks_spread_over_the_segment_with_the_last_frame_and_the_highest_selected(segment):
    _, _, mlpmd = segment
    sample, chosen = audit_picks(mlpmd.trajectory, mlpmd.selected, AuditSpec(frames=4))
    assert len(sample) == 4 and sample[-1][0] == len(mlpmd.trajectory) - 1
    assert {kind for _, kind in sample} == {"sample"}
    steps = {mlpmd.trajectory.frame_properties[i]["step"] for i, _ in sample}
    gammas = [mlpmd.selected.frame_properties[i]["gamma"] for i, _ in chosen]
    others = [p["gamma"] for p in mlpmd.selected.frame_properties if p["step"] not in steps]
    assert len(chosen) == min(4, len(others))
    assert sorted(gammas) == sorted(others, reverse=True)[: len(chosen)][::-1]
    assert audit_picks(mlpmd.trajectory, None, AuditSpec(frames=2))[1] == []


def test_audit_measures_the_mlp_against_the_reference_on_its_own_frames(segment):
    reference, doc, mlpmd = segment
    audit = AuditMaker.make.original(
        AuditMaker(audit=AuditSpec(frames=3, selected_frames=2, max_force_rmse=10.0),
                   reference=reference),
        mlpmd.trajectory, mlpmd.selected, doc.potential,
    )
    assert audit.engine == "lennard-jones" and not audit.failures
    sampled = [f for f in audit.frames if f.kind == "sample"]
    assert len(sampled) == 3 and len(audit.frames) == len(audit.trajectory)
    # each number checked against the analytic reference and the MTP by hand
    lj, mtp = LennardJones(**LENNARD_JONES), mtp_calculator(doc.potential)
    by_step = {p["step"]: i for i, p in enumerate(mlpmd.trajectory.frame_properties)}
    errors = []
    for record in sampled:
        atoms = mlpmd.trajectory[by_step[record.step]].to_ase_atoms()
        atoms.calc = lj
        reference_forces, reference_energy = atoms.get_forces(), atoms.get_potential_energy()
        atoms.calc = mtp
        error = atoms.get_forces() - reference_forces
        assert record.force_rmse == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-9)
        assert record.force_max_error == pytest.approx(np.abs(error).max(), rel=1e-9)
        assert record.energy_error == pytest.approx(
            (atoms.get_potential_energy() - reference_energy) / len(atoms), rel=1e-9
        )
        errors.append(error)
    assert audit.force_rmse == pytest.approx(np.sqrt(np.mean(np.square(errors))), rel=1e-9)
    assert audit.passed is True
    # the relabelled frames carry the reference's labels, for the next training
    first = audit.trajectory.frame_properties[0]
    atoms = audit.trajectory[0].to_ase_atoms()
    atoms.calc = lj
    assert np.allclose(first["forces"], atoms.get_forces())
    strict = AuditMaker.make.original(
        AuditMaker(audit=AuditSpec(frames=2, max_force_rmse=1e-6), reference=reference),
        mlpmd.trajectory, None, doc.potential,
    )
    assert strict.passed is False and strict.max_force_rmse == 1e-6


def test_a_reference_failure_is_recorded_and_not_fatal(segment):
    _, doc, mlpmd = segment
    from haml_flows.engines.reference import AimdSegmentMaker

    broken = AimdSegmentMaker(calculator_kwargs={"method": "GFN9-xTB"})
    audit = AuditMaker.make.original(
        AuditMaker(audit=AuditSpec(frames=2, selected_frames=0), reference=broken),
        mlpmd.trajectory, mlpmd.selected, doc.potential,
    )
    assert audit.passed is None and audit.force_rmse is None and audit.trajectory is None
    assert len(audit.failures) == 2
    assert audit.failures[0].handler == "AuditReferenceFailure"
    assert "GFN9-xTB" in audit.failures[0].errors[0]


def test_an_external_engine_labels_a_frame_by_a_one_step_segment(in_tmp, li_cell):
    from ase.calculators.calculator import Calculator

    from engine_fakes import fake_command
    from haml_flows.engines.vasp import VaspAimdSegmentMaker

    maker = VaspAimdSegmentMaker(
        n_steps=7, vasp_cmd=fake_command("fake_vasp.py"),
        write_input_set_kwargs={"potcar_spec": True},
        run_vasp_kwargs={"custodian_kwargs": {"polling_time_step": 0.2, "monitor_freq": 1}},
    )
    label = reference_single_point(maker, li_cell)
    # the fake VASP is GFN1-xTB: the label is xTB's for the input positions
    from tblite.ase import TBLite

    atoms = li_cell.to_ase_atoms()
    atoms.calc = TBLite(method="GFN1-xTB", verbosity=0)
    assert label["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-5)
    assert np.allclose(label["forces"], atoms.get_forces(), atol=1e-4)
    assert maker.n_steps == 7 and isinstance(atoms.calc, Calculator)
    assert dataclasses.replace(maker).n_steps == 7
