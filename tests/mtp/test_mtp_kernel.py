"""The compiled kernel against motep: energies, forces, stress and parameter rows."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
from ase.build import bulk
from motep.potentials.mtp.cext.engine import CExtMTPEngine

from haml_flows.mtp.basis import untrained_mtp
from haml_flows.mtp.engine import KernelMTPEngine
from haml_flows.mtp.kernel import MtpKernel, mlip_maxvol

logging.getLogger("motep").setLevel(logging.ERROR)

ELEMENTS = [3, 16, 15, 17, 34, 8, 9]


def _cells(n_species: int):
    """A rattled bulk cell, a skewed cell and a slab, species round-robin."""
    species = ELEMENTS[:n_species]
    rng = np.random.default_rng(n_species)
    bcc = bulk("Li", "bcc", a=3.45, cubic=True).repeat((2, 2, 2))
    skewed = bcc.copy()
    skewed.set_cell(skewed.cell.array + [[0, 0, 0], [0.9, 0, 0], [0.4, -0.6, 0]],
                    scale_atoms=True)
    slab = bcc.copy()
    slab.center(vacuum=4.0, axis=2)
    slab.pbc = [True, True, False]
    cells = []
    for atoms in (bcc, skewed, slab):
        atoms = atoms.copy()
        atoms.numbers = [species[i % n_species] for i in range(len(atoms))]
        atoms.positions += rng.normal(scale=0.15, size=atoms.positions.shape)
        cells.append(atoms)
    return cells, sorted(species)


def _potential(level: int, species: list[int]):
    data = untrained_mtp(level, species, cutoff=5.0, min_dist=1.5)
    data.initialize(np.random.default_rng(level))
    return data


@pytest.mark.parametrize("level", [8, 12, 16])
@pytest.mark.parametrize("n_species", [1, 4, 7])
def test_kernel_equals_motep_run_and_train_modes(level, n_species):
    cells, species = _cells(n_species)
    data = _potential(level, species)
    ours = KernelMTPEngine(copy.deepcopy(data))
    ours.want_rows = True
    run = CExtMTPEngine(copy.deepcopy(data), mode="run")
    trained = copy.deepcopy(data)
    trained.optimized = ["moment_coeffs", "species_coeffs", "radial_coeffs"]
    for atoms in cells:
        got = {k: np.copy(v) for k, v in ours.calculate(atoms.copy()).items()}
        ref = run.calculate(atoms.copy())
        for key in ("energies", "forces"):
            scale = max(1.0, np.abs(ref[key]).max())
            assert np.abs(got[key] - ref[key]).max() <= 1e-10 * scale, key
        if atoms.pbc.all():
            scale = max(1.0, np.abs(ref["stress"]).max())
            assert np.abs(got["stress"] - ref["stress"]).max() <= 1e-10 * scale
        train = CExtMTPEngine(copy.deepcopy(trained), mode="train")
        train.calculate(atoms.copy())
        jacobian = train.jac_energies(atoms).parameters.T
        rows = ours.kernel.full_rows(ours.local_rows, ours.itypes)
        assert rows.shape == jacobian.shape == (len(atoms), ours.kernel.n_params)
        assert np.abs(rows - jacobian).max() <= 1e-10 * np.abs(jacobian).max()


def test_rows_only_when_asked():
    cells, species = _cells(2)
    engine = KernelMTPEngine(_potential(8, species))
    engine.calculate(cells[0])
    assert engine.local_rows is None
    engine.want_rows = True
    engine.calculate(cells[1])
    assert engine.local_rows.shape == (len(cells[1]), engine.kernel.n_local)


def test_kernel_refuses_an_untrained_potential_and_unknown_species():
    data = untrained_mtp(8, [3, 16])
    with pytest.raises(ValueError, match="no trained coefficients"):
        MtpKernel(data)
    data.initialize(np.random.default_rng(0))
    engine = KernelMTPEngine(data)
    atoms = bulk("Na", "bcc", a=4.2).repeat((2, 2, 2))
    with pytest.raises(ValueError, match="species"):
        engine.calculate(atoms)


def test_maxvol_picks_the_rows_motep_mlip_procedure_picks():
    from motep.grade.maxvol import FindMethod, MaxVol

    rng = np.random.default_rng(7)
    basis = rng.normal(size=(40, 25))
    matrix = rng.normal(size=(300, 40)) @ basis * rng.uniform(0.1, 10, size=25)
    matrix[:, 3] = 0.0  # a parameter no row excites
    ours, iterations = mlip_maxvol(matrix)
    reference = MaxVol(algorithm=FindMethod.MLIP).run(matrix)
    assert sorted(ours[ours >= 0]) == sorted(reference.indices)
    assert ours[3] == -1 and iterations > 0
    submatrix = np.where(ours[:, None] >= 0, matrix[np.maximum(ours, 0)], 1e-6 * np.eye(25))
    assert np.allclose(submatrix, reference.submatrix)
