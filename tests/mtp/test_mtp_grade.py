"""MaxVol extrapolation grade over the linear parameters."""

from __future__ import annotations

import numpy as np
import pytest

from haml_flows.mtp.grade import ActiveSet, GammaCalculator, basis_values, mtp_calculator
from haml_flows.mtp.training import train_mtp

from mtp_test_frames import labelled_frames


@pytest.fixture(scope="module")
def setup():
    frames = labelled_frames(12, seed=3, repeat=(2, 2, 1))
    result = train_mtp(frames, level=8, cutoff=4.5, radial_iterations=3)
    return frames, result.potential, ActiveSet.from_training(result.potential, frames)


def test_training_neighbourhoods_have_gamma_at_most_one(setup):
    frames, potential, active = setup
    for atoms in frames:
        probe = atoms.copy()
        probe.calc = mtp_calculator(potential)
        assert active.gamma(probe) <= 1 + 1e-6
    assert np.isclose(max(a.gamma(_with(potential, f)) for a, f in [(active, f) for f in frames]), 1.0)


def _with(potential, atoms):
    probe = atoms.copy()
    probe.calc = mtp_calculator(potential)
    return probe


def test_distorted_frame_extrapolates(setup):
    frames, potential, active = setup
    distorted = frames[0].copy()
    distorted.positions[1] = distorted.positions[0] + [1.2, 0.6, 0.0]
    distorted.calc = mtp_calculator(potential, active)
    distorted.get_forces()
    assert distorted.calc.last_gamma > 2.0
    compressed = frames[0].copy()
    compressed.set_cell(compressed.cell * 0.85, scale_atoms=True)
    assert active.gamma(_with(potential, compressed)) > 2.0


def test_calculator_tracks_gamma_every_k_steps(setup):
    frames, potential, active = setup
    calc = mtp_calculator(potential, active, every=3)
    assert isinstance(calc, GammaCalculator)
    atoms = frames[0].copy()
    atoms.calc = calc
    gammas = []
    for step in range(7):
        atoms.positions[0, 0] += 0.01
        atoms.get_forces()
        gammas.append(calc.last_gamma)
    assert calc.gamma_evaluations == 3
    assert gammas[0] == gammas[1] == gammas[2] != gammas[3]
    assert atoms.get_potential_energy() == pytest.approx(_with(potential, atoms).get_potential_energy())


def test_gamma_per_atom_is_vectorised_and_checks_shape(setup):
    frames, potential, active = setup
    atoms = _with(potential, frames[1])
    atoms.get_potential_energy()
    values = basis_values(atoms.calc.engine, atoms)
    per_atom = active.gamma_per_atom(values)
    assert per_atom.shape == (len(atoms),)
    assert per_atom.max() == pytest.approx(active.gamma(atoms))
    with pytest.raises(ValueError, match="rows"):
        active.gamma_per_atom(values[1:])


def test_without_active_set_gamma_is_nan(setup):
    frames, potential, _ = setup
    atoms = frames[0].copy()
    atoms.calc = mtp_calculator(potential)
    atoms.get_forces()
    assert np.isnan(atoms.calc.last_gamma)
    assert atoms.calc.gamma_evaluations == 0


def test_calculator_recomputes_on_any_change_an_mtp_sees_and_only_then(setup):
    frames, potential, _ = setup
    calc = mtp_calculator(potential)
    atoms = frames[0].copy()
    atoms.calc = calc
    energies = [atoms.get_potential_energy()]
    atoms.get_forces()
    atoms.get_stress()
    assert calc.calls == 1
    atoms.positions[2, 1] += 1e-9
    energies.append(atoms.get_potential_energy())
    atoms.set_cell(atoms.cell.array * 1.001, scale_atoms=False)
    energies.append(atoms.get_potential_energy())
    atoms.numbers[[0, 1]] = atoms.numbers[[1, 0]]
    energies.append(atoms.get_potential_energy())
    atoms.pbc = [True, True, False]
    energies.append(atoms.get_potential_energy())
    assert calc.calls == 5
    assert len(set(energies)) == 5
    fresh = atoms.copy()
    fresh.calc = mtp_calculator(potential)
    assert energies[-1] == pytest.approx(fresh.get_potential_energy())
