"""Basis generation: counts, MLIP file round trip, symmetry, forces, independence."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from motep.calculator import MTP
from motep.io.mlip.mtp import read_mtp

from haml_flows.mtp.basis import _connected_graphs, _Fingerprint, _products, moment_basis, untrained_mtp, write_untrained_mtp

LEVELS = list(range(2, 18, 2))
ALL_LEVELS = LEVELS + [pytest.param(level, marks=pytest.mark.slow) for level in range(18, 29, 2)]
MLIP_SCALAR_COUNTS = {
    2: 1, 4: 2, 6: 5, 8: 9, 10: 16, 12: 29, 14: 52, 16: 92, 18: 163, 20: 288,
    22: 500, 24: 864, 26: 1464, 28: 2445,
}
MLIP_MOMENT_COUNTS = {
    2: 1, 4: 2, 6: 8, 8: 18, 10: 41, 12: 84, 14: 174, 16: 350, 18: 718, 20: 1352,
    22: 2621, 24: 4991, 26: 9396, 28: 17366,
}
MLIP_TIMES_COUNTS = {12: 117, 14: 348, 18: 2634, 22: 15431}
MLIP_BASIC_COUNTS = {14: 81, 18: 201, 22: 421, 24: 581}


def _evaluate(template, vectors: np.ndarray, radial: np.ndarray) -> np.ndarray:
    """Basis values of one neighbourhood with MLIP's alpha_index semantics."""
    moments = np.zeros(template.alpha_moments_count)
    mu, ax, ay, az = template.alpha_index_basic.T
    powers = vectors[:, 0] ** ax[:, None] * vectors[:, 1] ** ay[:, None] * vectors[:, 2] ** az[:, None]
    moments[: len(mu)] = (radial[mu] * powers).sum(axis=1)
    for i, j, mult, k in template.alpha_index_times:
        moments[k] += mult * moments[i] * moments[j]
    return moments[template.alpha_moment_mapping]


def _structure(seed: int = 0):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
    atoms[0].symbol = "Al"
    atoms[5].symbol = "Al"
    atoms.rattle(0.15, seed=seed)
    return atoms


def _random_potential(level: int, seed: int = 1):
    data = untrained_mtp(level, [13, 29], cutoff=4.5, min_dist=1.8)
    data.initialize(np.random.default_rng(seed))
    return data


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_every_level_writes_reads_and_evaluates(level, tmp_path):
    path = write_untrained_mtp(tmp_path / f"{level:02d}.mtp", level=level, species=[13, 29], cutoff=4.5, min_dist=1.8)
    data = read_mtp(path)
    reference = untrained_mtp(level, [13, 29], cutoff=4.5, min_dist=1.8)
    assert data.alpha_scalar_moments == MLIP_SCALAR_COUNTS[level]
    assert data.alpha_moments_count == reference.alpha_moments_count
    np.testing.assert_array_equal(data.alpha_index_times.reshape(-1, 4), reference.alpha_index_times)
    np.testing.assert_array_equal(data.alpha_moment_mapping, reference.alpha_moment_mapping)
    assert data.radial_funcs_count == reference.alpha_index_basic[:, 0].max() + 1
    assert data.radial_basis.type == "RBChebyshev"
    assert (data.radial_basis.min, data.radial_basis.max, data.radial_basis.size) == (1.8, 4.5, 8)
    data.species = [13, 29]
    data.initialize(np.random.default_rng(0))
    atoms = _structure()
    atoms.calc = MTP(data, engine="cext", mode="run")
    assert np.isfinite(atoms.get_potential_energy())
    assert np.all(np.isfinite(atoms.get_forces()))


@pytest.mark.parametrize("level", [lvl for lvl in MLIP_MOMENT_COUNTS])
def test_moment_counts_match_mlip_templates(level):
    assert moment_basis(level).alpha_moments_count == MLIP_MOMENT_COUNTS[level]


@pytest.mark.parametrize("level", list(MLIP_SCALAR_COUNTS))
def test_basis_function_counts_match_mlip_templates_at_every_level(level):
    assert len(moment_basis(level).alpha_moment_mapping) == MLIP_SCALAR_COUNTS[level]


@pytest.mark.parametrize("level", list(MLIP_TIMES_COUNTS))
def test_contraction_steps_match_mlip_templates(level):
    assert len(moment_basis(level).alpha_index_times) == MLIP_TIMES_COUNTS[level]


@pytest.mark.parametrize("level", list(MLIP_BASIC_COUNTS))
def test_basic_moment_counts_match_mlip_templates(level):
    basis = moment_basis(level)
    assert len(basis.alpha_index_basic) == MLIP_BASIC_COUNTS[level]
    assert basis.radial_funcs_count == min((level - 2) // 4, 5) + 1


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_contraction_program_matches_definition(level):
    """alpha_index_times reproduces the contractions evaluated directly."""
    template = moment_basis(level)
    fingerprint = _Fingerprint((level - 2) // 4)
    connected = _connected_graphs(level, fingerprint)
    direct = [value for _, value in connected]
    direct += [np.prod([connected[i][1] for i in combo], axis=0) for combo in _products(connected, level)]
    direct = np.array(direct)
    for env in range(fingerprint.vectors.shape[0]):
        values = _evaluate(template, fingerprint.vectors[env], fingerprint.radial[env])
        for value in values:
            assert np.any(np.isclose(direct[:, env], value, rtol=1e-9, atol=0))


@pytest.mark.parametrize("level", LEVELS)
def test_basis_functions_are_linearly_independent(level):
    template = moment_basis(level)
    n = len(template.alpha_moment_mapping)
    rng = np.random.default_rng(level)
    rows = []
    for _ in range(2 * n + 10):
        k = rng.integers(4, 12)
        vectors = rng.normal(size=(k, 3))
        vectors *= rng.uniform(0.7, 1.3, size=(k, 1)) / np.linalg.norm(vectors, axis=1)[:, None]
        rows.append(_evaluate(template, vectors, rng.uniform(-1, 1, size=(template.radial_funcs_count, k))))
    matrix = np.array(rows)
    matrix /= np.linalg.norm(matrix, axis=0)
    singular = np.linalg.svd(matrix, compute_uv=False)
    assert singular[-1] / singular[0] > 1e-5


def test_energy_invariant_under_rotation_translation_permutation():
    data = _random_potential(10)
    atoms = _structure()
    atoms.calc = MTP(data, engine="cext", mode="run")
    energy = atoms.get_potential_energy()

    moved = atoms.copy()
    moved.translate([0.37, -1.1, 2.3])
    moved.wrap()
    rotated = atoms.copy()
    rotated.rotate(37, "z", rotate_cell=True)
    rotated.rotate(81, (1, 1, 0), rotate_cell=True)
    cu = [i for i, z in enumerate(atoms.numbers) if z == 29]
    order = list(range(len(atoms)))
    order[cu[0]], order[cu[3]] = order[cu[3]], order[cu[0]]
    permuted = atoms[order]
    for other in (moved, rotated, permuted):
        other.calc = MTP(data, engine="cext", mode="run")
        assert other.get_potential_energy() == pytest.approx(energy, rel=1e-9, abs=1e-9)


def test_forces_are_negative_energy_gradient():
    data = _random_potential(10, seed=3)
    atoms = _structure(seed=2)
    atoms.calc = MTP(data, engine="cext", mode="run")
    forces = atoms.get_forces()
    h = 1e-5
    for i, d in [(0, 0), (3, 1), (5, 2), (7, 0)]:
        energies = []
        for sign in (1, -1):
            probe = atoms.copy()
            probe.positions[i, d] += sign * h
            probe.calc = MTP(data, engine="cext", mode="run")
            energies.append(probe.get_potential_energy())
        numeric = -(energies[0] - energies[1]) / (2 * h)
        assert forces[i, d] == pytest.approx(numeric, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("level", [0, 3, 11, 30, -2])
def test_bad_level_is_rejected(level):
    with pytest.raises(ValueError, match=r"level.*2, 4, 6"):
        untrained_mtp(level, [29])


def test_cutoff_not_above_min_dist_is_rejected():
    with pytest.raises(ValueError, match=r"cutoff \(2.0\).*min_dist \(2.5\)"):
        untrained_mtp(8, [29], cutoff=2.0, min_dist=2.5)


def test_write_is_atomic(tmp_path):
    path = tmp_path / "pot.mtp"
    write_untrained_mtp(path, level=6, species=[3])
    assert [p.name for p in tmp_path.iterdir()] == ["pot.mtp"]
    assert read_mtp(path).alpha_scalar_moments == 5

