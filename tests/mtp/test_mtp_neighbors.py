"""vesin's neighbour search in motep's engine gives motep's own results."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from motep.potentials.mtp.cext.engine import CExtMTPEngine

from haml_flows.mtp.basis import untrained_mtp
from haml_flows.mtp.neighbors import SKIN, VesinMTPEngine, padded_neighbors

from mtp_test_frames import labelled_frames


@pytest.fixture(scope="module")
def data():
    """A level-8 Cu/Al potential with random coefficients, cutoff 4.5 A."""
    potential = untrained_mtp(8, [13, 29], cutoff=4.5, min_dist=1.5)
    potential.initialize(np.random.default_rng(1))
    return potential


def _systems() -> dict[str, Atoms]:
    bulk = labelled_frames(1, seed=5)[0]
    tiny = labelled_frames(1, seed=6, repeat=(1, 1, 1))[0]  # 3.6 A box, 4.5 A cutoff
    slab = labelled_frames(1, seed=7, repeat=(2, 2, 1))[0]
    slab.pbc = [True, True, False]
    cluster = labelled_frames(1, seed=8, repeat=(1, 1, 1), rattle=0.05)[0]
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    skewed = labelled_frames(1, seed=9)[0]
    skewed.set_cell(skewed.cell.array + [[0, 0, 0], [1.2, 0, 0], [0.7, -0.9, 0]], scale_atoms=True)
    return {"bulk": bulk, "tiny": tiny, "slab": slab, "cluster": cluster, "skewed": skewed}


def _results(engine, atoms: Atoms) -> dict[str, np.ndarray]:
    results = {key: np.copy(value) for key, value in engine.calculate(atoms).items()}
    results["vatoms"] = engine.mbd.vatoms.copy()
    return results


@pytest.mark.parametrize("name", ["bulk", "tiny", "slab", "cluster", "skewed"])
def test_same_energy_forces_stress_and_basis_as_motep(data, name):
    atoms = _systems()[name]
    ours = _results(VesinMTPEngine(data, mode="run"), atoms)
    motep = _results(CExtMTPEngine(data, mode="run"), atoms)
    assert ours["energy"] == pytest.approx(motep["energy"], rel=1e-12, abs=1e-10)
    np.testing.assert_allclose(ours["forces"], motep["forces"], atol=1e-10)
    np.testing.assert_allclose(ours["vatoms"], motep["vatoms"], rtol=1e-10, atol=1e-10)
    if name in ("bulk", "tiny", "skewed"):
        np.testing.assert_allclose(ours["stress"], motep["stress"], atol=1e-10)


def test_list_is_rebuilt_only_after_half_the_skin_and_stays_exact(data, monkeypatch):
    atoms = _systems()["bulk"]
    engine = VesinMTPEngine(data, mode="run")
    builds = []
    build = engine._build
    monkeypatch.setattr(engine, "_build", lambda a: builds.append(1) or build(a))

    def exact(atoms: Atoms) -> None:
        ours = _results(engine, atoms)
        fresh = _results(CExtMTPEngine(data, mode="run"), atoms)
        np.testing.assert_allclose(ours["forces"], fresh["forces"], atol=1e-10)
        np.testing.assert_allclose(ours["vatoms"], fresh["vatoms"], atol=1e-10)

    exact(atoms)
    exact(atoms)
    assert len(builds) == 1
    moved = atoms.copy()
    moved.positions[3] += [0.45 * SKIN, 0.0, 0.0]
    exact(moved)  # the list kept within half the skin is still exact
    assert len(builds) == 1
    moved.positions[3] += [0.1 * SKIN, 0.0, 0.0]
    exact(moved)
    assert len(builds) == 2
    strained = moved.copy()
    strained.set_cell(moved.cell.array * 1.01, scale_atoms=False)
    exact(strained)
    assert len(builds) == 3
    bigger = atoms.repeat((1, 1, 2))
    exact(bigger)
    assert len(builds) == 4


def test_padding_keeps_each_atoms_neighbours_in_order():
    i = np.array([1, 0, 1, 0, 1])
    j = np.array([2, 1, 0, 2, 1])
    shifts = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0]])
    neighbors, offsets = padded_neighbors(i, j, shifts, 2.0 * np.eye(3), 3)
    np.testing.assert_array_equal(neighbors, [[1, 2, -1], [0, 1, 2], [-1, -1, -1]])
    np.testing.assert_allclose(offsets[0, 1], [2.0, 0, 0])
    np.testing.assert_allclose(offsets[1, 1], [2.0, 0, 0])
    np.testing.assert_allclose(offsets[2], 0.0)


def test_unknown_species_is_refused_after_a_valid_call(data):
    atoms = _systems()["bulk"]
    engine = VesinMTPEngine(data, mode="run")
    engine.calculate(atoms)
    engine.calculate(atoms)
    atoms.numbers[0] = 3
    with pytest.raises(ValueError, match="species"):
        engine.calculate(atoms)
