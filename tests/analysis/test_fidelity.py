"""The fidelity gate's arithmetic, on measures whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from haml_flows.analysis.fidelity import (
    Measures,
    audited_force_rmse,
    gate,
    measure,
    reference_self_check,
    runs_passing,
)
from haml_flows.analysis.timeline import Frame


def _measures(bonds: dict, rdf: np.ndarray, temperature: float, contact: float) -> Measures:
    return Measures(
        window_fs=100.0,
        times_ps=[0.0, 0.1],
        bond_series={k: [v, v] for k, v in bonds.items()},
        r=np.arange(4.0),
        rdf={"Li-S": rdf},
        temperatures=[temperature, temperature],
        contacts={"Li-S": contact},
    )


REFERENCE = [
    _measures({"Li-S": 10.0}, np.array([0, 1.0, 2.0, 1.0]), 300.0, 2.30),
    _measures({"Li-S": 12.0}, np.array([0, 1.1, 1.9, 1.0]), 305.0, 2.25),
    _measures({"Li-S": 11.0}, np.array([0, 0.9, 2.1, 1.0]), 295.0, 2.35),
]


def _verdict(haml, audited=(0.1, 0.1, 0.1)):
    return {c.name: c.passed for c in gate(
        REFERENCE, haml, list(audited), target_temperature=300.0, max_force_rmse=0.15
    )}


def test_runs_like_the_reference_pass_every_criterion():
    haml = [_measures({"Li-S": v}, REFERENCE[i].rdf["Li-S"], 300.0, 2.28)
            for i, v in enumerate((10.5, 11.5, 11.0))]
    assert _verdict(haml) == {
        "bonds Li-S": True, "RDF Li-S": True, "mean temperature": True,
        "audited force RMSE": True, "closest contacts": True,
    }


def test_each_criterion_fails_on_its_own():
    good = REFERENCE[0].rdf["Li-S"]
    # the range 10-12 widened by the seeds' std (1.0): 9-13
    assert not _verdict([_measures({"Li-S": 8.9}, good, 300.0, 2.3)])["bonds Li-S"]
    assert _verdict([_measures({"Li-S": 9.1}, good, 300.0, 2.3)])["bonds Li-S"]
    flat = np.array([0, 2.0, 1.0, 1.0])
    assert not _verdict([_measures({"Li-S": 11.0}, flat, 300.0, 2.3)])["RDF Li-S"]
    assert not _verdict([_measures({"Li-S": 11.0}, good, 316.0, 2.3)])["mean temperature"]
    assert _verdict([_measures({"Li-S": 11.0}, good, 314.0, 2.3)])["mean temperature"]
    assert not _verdict([_measures({"Li-S": 11.0}, good, 300.0, 2.3)], [0.2])[
        "audited force RMSE"]
    assert not _verdict([_measures({"Li-S": 11.0}, good, 300.0, 2.3)], [None])[
        "audited force RMSE"]
    # the AIMD ensemble's closest Li-S is 2.25 A; 0.1 A below it is allowed
    assert not _verdict([_measures({"Li-S": 11.0}, good, 300.0, 2.14)])["closest contacts"]
    assert _verdict([_measures({"Li-S": 11.0}, good, 300.0, 2.16)])["closest contacts"]


def test_each_run_is_judged_on_its_own():
    good = REFERENCE[0].rdf["Li-S"]
    haml = [_measures({"Li-S": 8.9}, good, 300.0, 2.3),   # bonds out
            _measures({"Li-S": 11.0}, good, 320.0, 2.3),  # too warm
            _measures({"Li-S": 11.0}, good, 300.0, 2.3),
            _measures({"Li-S": 11.0}, good, 300.0, 2.1)]  # too close
    criteria = gate(REFERENCE, haml, [0.1, 0.1, 0.1, 0.1], target_temperature=300.0,
                    max_force_rmse=0.15)
    by_name = {c.name: c.runs_passed for c in criteria}
    assert by_name["bonds Li-S"] == [False, True, True, True]
    assert by_name["mean temperature"] == [True, False, True, True]
    assert by_name["closest contacts"] == [True, True, True, False]
    assert runs_passing(criteria) == [False, False, True, False]
    audit_only = gate(REFERENCE, haml[2:], [None, 0.1], target_temperature=300.0,
                      max_force_rmse=0.15)
    assert runs_passing(audit_only) == [False, False]


def test_the_gate_needs_an_ensemble_and_a_run():
    with pytest.raises(ValueError, match="at least 2 AIMD seeds"):
        gate(REFERENCE[:1], REFERENCE, [0.1], target_temperature=300, max_force_rmse=0.1)
    with pytest.raises(ValueError, match="no HAML run"):
        gate(REFERENCE, [], [], target_temperature=300, max_force_rmse=0.1)


def test_each_aimd_seed_is_judged_against_the_others():
    checks = {c.name: c.passed for c in reference_self_check(REFERENCE, target_temperature=300)}
    # Li-S 10 against 12 and 11: 11-12 widened by their std 0.71 -> 10.29-12.71, out;
    # 12 against 10 and 11 -> 9.29-11.71, out; 11 against 10 and 12 -> 8.59-13.41, in
    assert checks["bonds Li-S"] == [False, False, True]
    # RDF overlaps: 0.975 between the first and each other, 0.95 between the other two
    assert checks["RDF Li-S"] == [True, True, True]
    assert checks["mean temperature"] == [True, True, True]
    # the second's 2.25 A against the others' closest 2.30 less 0.1: allowed
    assert checks["closest contacts"] == [True, True, True]
    assert checks["all"] == [False, False, True]
    hot = [*REFERENCE[:2], _measures({"Li-S": 11.0}, REFERENCE[2].rdf["Li-S"], 320.0, 2.35)]
    by_name = {c.name: c for c in reference_self_check(hot, target_temperature=300)}
    assert by_name["mean temperature"].passed == [True, True, False]
    assert by_name["all"].rate == 0.0
    with pytest.raises(ValueError, match="at least 3 AIMD seeds"):
        reference_self_check(REFERENCE[:2], target_temperature=300)


def test_measure_counts_bonds_contacts_and_temperatures_on_known_frames():
    rocksalt = bulk("LiCl", "rocksalt", a=5.14)  # Li-Cl 2.57 A, 6 neighbours each
    frames = []
    for step in range(5):
        atoms = rocksalt.repeat((2, 2, 2))
        frames.append(Frame(
            time_fs=5.0 * step, symbols=atoms.get_chemical_symbols(),
            frac_coords=atoms.get_scaled_positions(), lattice=atoms.cell.array,
            temperature=300.0 + step,
        ))
    result = measure(frames, {"Li-Cl": 3.0}, [("Li", "Cl")], window_fs=15.0, every_fs=10.0)
    assert result.times_ps == [0.0, 0.01]  # one frame per 10 fs, up to 15 fs
    assert result.bonds == {"Li-Cl": 8 * 6}
    assert result.contacts["Cl-Li"] == pytest.approx(2.57)
    assert result.mean_temperature == pytest.approx(301.0)
    assert result.r[np.argmax(result.rdf["Li-Cl"])] == pytest.approx(2.57, abs=0.05)


def test_audited_error_of_a_run_is_the_rms_over_its_cycles():
    class Doc:
        def __init__(self, value):
            self.audit_force_rmse = value

    assert audited_force_rmse([Doc(0.3), Doc(0.4), Doc(None)]) == pytest.approx(
        np.sqrt((0.09 + 0.16) / 2)
    )
    assert audited_force_rmse([Doc(None)]) is None
