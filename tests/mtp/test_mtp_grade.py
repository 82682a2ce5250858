"""MaxVol extrapolation grade over all MTP parameters, against motep and MLIP."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
from motep.grade.grader import Grader
from motep.io.mlip.cfg import read_cfg

from haml_flows.mtp.basis import untrained_mtp
from haml_flows.mtp.grade import (
    ActiveSet,
    GammaCalculator,
    GradeError,
    load_potential,
    mtp_calculator,
)
from haml_flows.mtp.training import train_mtp
from haml_flows.systems import li_lpsc_mini

from mtp_test_frames import labelled_frames

logging.getLogger("motep").setLevel(logging.ERROR)

ELEMENTS = ["Li", "S", "P", "Cl", "Se", "O", "F"]


@pytest.fixture(scope="module")
def setup():
    frames = labelled_frames(12, seed=3, repeat=(2, 2, 1))
    result = train_mtp(frames, level=8, cutoff=4.5, radial_iterations=3)
    return frames, result.potential, ActiveSet.from_training(result.potential, frames)


def _with(potential, atoms):
    probe = atoms.copy()
    probe.calc = mtp_calculator(potential)
    return probe


def test_training_neighbourhoods_grade_at_most_mlip_threshold(setup):
    frames, potential, active = setup
    grades = active.grade_frames(frames)
    # MLIP's MaxVol stops swapping once no coefficient exceeds 1 + 1e-3
    assert max(grades) <= 1 + 1e-3 + 1e-9
    assert max(grades) == pytest.approx(1.0, abs=1e-3)
    assert active.mode == "neighborhood"
    assert active.n_params == active.kernel.n_params == len(active.slots)


def test_distorted_frame_extrapolates(setup):
    frames, potential, active = setup
    distorted = frames[0].copy()
    distorted.positions[1] = distorted.positions[0] + [1.2, 0.6, 0.0]
    distorted.calc = mtp_calculator(potential, active)
    distorted.get_forces()
    assert distorted.calc.last_gamma > 2.0
    assert distorted.calc.last_gamma == pytest.approx(active.gamma(distorted), rel=1e-9)
    assert int(np.argmax(distorted.calc.last_gamma_per_atom)) in (0, 1)
    compressed = frames[0].copy()
    compressed.set_cell(compressed.cell * 0.85, scale_atoms=True)
    assert active.gamma(_with(potential, compressed)) > 2.0


def test_calculator_grades_every_k_steps_and_builds_rows_only_then(setup):
    frames, potential, active = setup
    calc = mtp_calculator(potential, active, every=3)
    assert isinstance(calc, GammaCalculator)
    atoms = frames[0].copy()
    atoms.calc = calc
    gammas, had_rows = [], []
    for _ in range(7):
        atoms.positions[0, 0] += 0.01
        atoms.get_forces()
        gammas.append(calc.last_gamma)
        had_rows.append(calc.engine.local_rows is not None)
    assert calc.gamma_evaluations == 3
    assert had_rows == [True, False, False, True, False, False, True]
    assert gammas[0] == gammas[1] == gammas[2] != gammas[3]
    assert atoms.get_potential_energy() == pytest.approx(
        _with(potential, atoms).get_potential_energy()
    )


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


def test_stored_slots_rebuild_the_same_active_set(setup):
    frames, potential, active = setup
    rebuilt = ActiveSet.from_slots(potential, frames, active.slots.tolist())
    probes = [f.copy() for f in frames[:3]]
    probes[2].set_cell(probes[2].cell * 0.9, scale_atoms=True)
    assert np.allclose(rebuilt.grade_frames(probes), active.grade_frames(probes), rtol=1e-9)
    other = train_mtp(frames, level=6, cutoff=4.5, radial_iterations=0).potential
    with pytest.raises(GradeError, match="another potential"):
        ActiveSet.from_slots(other, frames, active.slots.tolist())


# -- agreement with motep's Grader (MLIP's MaxVol, radial coefficients included) --


def _interface_frames(n_species: int, count: int, seed: int):
    """Rattled frames of the mini Li | Li6PS5Cl interface, ``n_species`` elements."""
    from pymatgen.io.ase import AseAtomsAdaptor

    base = AseAtomsAdaptor.get_atoms(li_lpsc_mini())
    order = np.argsort(base.numbers, kind="stable")
    symbols = np.array(ELEMENTS[:n_species])[np.arange(len(base)) % n_species]
    base.symbols[order] = symbols
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        atoms = base.copy()
        atoms.positions += rng.normal(scale=0.12, size=atoms.positions.shape)
        frames.append(atoms)
    return frames


def _random_potential(level: int, frames, seed: int):
    species = sorted({int(z) for f in frames for z in f.numbers})
    data = untrained_mtp(level, species, cutoff=5.0, min_dist=1.2)
    data.initialize(np.random.default_rng(seed))
    return data


def _motep_grades(data, training, frames, mode):
    reference = copy.deepcopy(data)
    reference.optimized = ["moment_coeffs", "species_coeffs", "radial_coeffs"]
    grader = Grader(reference, mode=mode, maxvol_setting={"algorithm": "mlip"})
    grader.update(training)
    return np.array([a.calc.results["MV_grade"] for a in grader.grade(frames)])


_SLOW_CASES = {(12, 7), (16, 5), (16, 7)}


@pytest.mark.parametrize(
    ("level", "n_species"),
    [
        pytest.param(level, n, marks=[pytest.mark.slow] if (level, n) in _SLOW_CASES else [])
        for level in (8, 12, 16)
        for n in (1, 3, 5, 7)
    ],
)
def test_neighbourhood_grades_equal_motep_grader(level, n_species):
    probe = _random_potential(level, _interface_frames(n_species, 1, 0), seed=level)
    n_params = probe.alpha_scalar_moments + n_species * (
        1 + n_species * probe.radial_funcs_count * probe.radial_basis.size
    )
    n_train = int(np.ceil(n_params / 42)) + 4
    frames = _interface_frames(n_species, n_train + 6, seed=n_species)
    data = _random_potential(level, frames, seed=level)
    ours = ActiveSet.from_training(copy.deepcopy(data), frames[:n_train])
    grades = np.array(ours.grade_frames(frames))
    reference = _motep_grades(data, frames[:n_train], frames, "neighborhood")
    assert np.all(np.abs(grades - reference) <= 1e-6 * reference)
    assert grades[n_train:].max() > 1.01  # frames outside the training set extrapolate


@pytest.mark.parametrize(("level", "n_species"), [(8, 1), (8, 3), (12, 1), (12, 2), (16, 1)])
def test_configuration_grades_equal_motep_grader(level, n_species):
    from ase.build import bulk

    species = ELEMENTS[:n_species]
    base = bulk("Li", "bcc", a=3.45, cubic=True).repeat((2, 1, 1))
    base.symbols = [species[i % n_species] for i in range(len(base))]
    rng = np.random.default_rng(level + n_species)
    data = _random_potential(level, [base], seed=level)
    n_train = data.alpha_scalar_moments + n_species * (
        1 + n_species * data.radial_funcs_count * data.radial_basis.size
    ) + 10
    frames = []
    for _ in range(n_train + 10):
        atoms = base.copy()
        atoms.positions += rng.normal(scale=0.15, size=atoms.positions.shape)
        frames.append(atoms)
    ours = ActiveSet.from_training(copy.deepcopy(data), frames[:n_train], mode="configuration")
    grades = np.array(ours.grade_frames(frames))
    reference = _motep_grades(data, frames[:n_train], frames, "configuration")
    # both solve with A: agreement is bounded by A's conditioning, not by the method
    condition = np.linalg.cond(np.linalg.inv(ours.inverse))
    tolerance = max(1e-6, 1e-15 * condition)
    assert np.all(np.abs(grades - reference) <= tolerance * reference)


# -- agreement with MLIP itself --


def test_grades_equal_the_mv_grade_mlip_wrote(mlip_reference):
    """MLIP-3 ``calculate_grade`` on motep's public level-10, 3-species data."""
    written = read_cfg(mlip_reference["out.cfg"], index=":")
    training = read_cfg(mlip_reference["training.cfg"], index=":")
    # numbers read off the public files (motep 0.2.0 sdist, tests/data_path)
    assert len(written) == len(training) == 1001
    assert {len(a) for a in written} == {27}
    mlip = np.array([a.calc.results["MV_grade"] for a in written])
    assert mlip.min() == pytest.approx(0.563038) and mlip.max() == pytest.approx(1.000721)
    data = load_potential(mlip_reference["pot.mtp"].read_text())
    active = ActiveSet.from_training(data, training)
    assert active.n_params == 235 and active.n_candidates == 27027
    ours = np.array(active.grade_frames(written))
    # MLIP writes 6 decimals
    assert np.all(np.abs(ours - mlip) <= 1e-4 * mlip)
    assert np.abs(ours - mlip).max() < 2e-6


# -- a rare species, bad input --


def test_one_dopant_atom_among_a_hundred_is_kept_and_watched():
    from pymatgen.io.ase import AseAtomsAdaptor

    from haml_flows.builders.doping import doped_li6ps5cl

    cell = AseAtomsAdaptor.get_atoms(
        doped_li6ps5cl(supercell=(2, 1, 1), dopant="Se", concentration=0.125)
    )
    selenium = int(np.flatnonzero(cell.numbers == 34)[0])
    assert len(cell) == 104 and (cell.numbers == 34).sum() == 1
    rng = np.random.default_rng(11)
    frames = []
    for _ in range(150):
        atoms = cell.copy()
        atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
        frames.append(atoms)
    data = _random_potential(8, frames, seed=4)
    active = ActiveSet.from_training(data, frames[:140])
    chosen_atoms = {atom for _, atom in active.indices}
    assert selenium in chosen_atoms  # Se-centred neighbourhoods are in the active set
    assert "species Se" not in active.uncovered
    assert max(active.grade_frames(frames[:140])) <= 1 + 1e-3 + 1e-9
    moved = frames[140].copy()
    neighbour = int(np.argsort(moved.get_distances(selenium, range(len(moved)), mic=True))[1])
    moved.positions[selenium] += 0.6 * (moved.positions[neighbour] - moved.positions[selenium])
    calc = mtp_calculator(data, active)
    moved.calc = calc
    moved.get_forces()
    assert calc.last_gamma > 2.0
    per_atom = calc.last_gamma_per_atom
    assert per_atom[selenium] > 2.0 or per_atom[neighbour] > 2.0


def test_species_the_potential_does_not_describe_are_named(setup):
    frames, potential, active = setup
    alien = frames[0].copy()
    alien.symbols[0] = "Se"
    with pytest.raises(GradeError, match="frame 0 holds Se, which the potential does not"):
        active.grade_frames([alien])
    with pytest.raises(GradeError, match="frame 1 holds Se"):
        ActiveSet.from_training(potential, [frames[0], alien])


def test_too_few_neighbourhoods_say_how_many_are_needed(setup):
    frames, potential, _ = setup
    with pytest.raises(GradeError, match=r"at least \d+ neighbourhoods are needed"):
        ActiveSet.from_training(potential, frames[:1])
    with pytest.raises(GradeError, match=r"at least \d+ configurations are needed"):
        ActiveSet.from_training(potential, frames, mode="configuration")
    with pytest.raises(GradeError, match="grade mode"):
        ActiveSet.from_training(potential, frames, mode="atoms")


def test_non_finite_rows_are_refused(setup):
    frames, potential, active = setup
    broken = frames[0].copy()
    broken.positions[3] = np.nan
    with pytest.raises(GradeError, match="not finite"):
        ActiveSet.from_training(potential, [*frames, broken])
    with pytest.raises(GradeError, match="not finite"):
        active.grade_frames([broken])
