"""MLIP .cfg round trip."""

from __future__ import annotations

import io

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from haml_flows.mtp.frames import cfg_to_frames, frames_to_cfg


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_round_trip_preserves_everything(frames):
    back = cfg_to_frames(frames_to_cfg(frames))
    assert len(back) == len(frames)
    for original, read in zip(frames, back):
        np.testing.assert_array_equal(read.numbers, original.numbers)
        _close(read.positions, original.positions)
        _close(read.cell.array, original.cell.array)
        assert read.get_potential_energy() == pytest.approx(original.get_potential_energy(), rel=1e-12)
        _close(read.get_forces(), original.get_forces())
        _close(read.get_stress(), original.get_stress())
        assert read.info == {}


def test_explicit_species_maps_types():
    atoms = Atoms("LiS", positions=[[0, 0, 0], [1.5, 0.2, 0.1]], cell=[5, 5, 5], pbc=True)
    atoms.calc = SinglePointCalculator(atoms, energy=-1.25, forces=np.array([[0.1, 0, 0], [-0.1, 0, 0]]))
    text = frames_to_cfg([atoms])
    assert "Feature   species\t3,16" in text
    (read,) = cfg_to_frames(text, species=[11, 17])
    assert list(read.numbers) == [11, 17]
    assert read.get_potential_energy() == -1.25


def test_molecule_without_cell_round_trips():
    atoms = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    atoms.calc = SinglePointCalculator(atoms, energy=-14.2, forces=np.arange(9.0).reshape(3, 3) * 1e-3)
    (read,) = cfg_to_frames(frames_to_cfg([atoms]))
    assert list(read.numbers) == [1, 1, 8]
    assert not read.pbc.any()
    _close(read.get_forces(), atoms.get_forces())


def _magnetic(frame: Atoms, magmoms) -> Atoms:
    atoms = frame.copy()
    results = dict(frame.calc.results, magmoms=np.asarray(magmoms, dtype=float))
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def test_collinear_magnetic_moments_round_trip(frames):
    """They were dropped on writing, so a magnetic training set lost them."""
    moments = np.linspace(-2.2, 2.3, len(frames[0]))
    text = frames_to_cfg([_magnetic(frames[0], moments)])
    assert " fx fy fz magmom_x magmom_y magmom_z\n" in text
    (read,) = cfg_to_frames(text)
    _close(read.calc.results["magmoms"], moments)
    _close(read.get_forces(), frames[0].get_forces())
    from motep.io.mlip.cfg import read_cfg

    (motep_read,) = read_cfg(io.StringIO(text), index=slice(None))
    _close(motep_read.calc.results["magmoms"], moments)


def test_noncollinear_magnetic_moments_round_trip(frames):
    moments = np.random.default_rng(0).normal(size=(len(frames[0]), 3))
    (read,) = cfg_to_frames(frames_to_cfg([_magnetic(frames[0], moments)]))
    _close(read.calc.results["magmoms"], moments)


def test_frames_without_moments_have_no_moment_columns(frames):
    text = frames_to_cfg(frames[:2])
    assert "magmom" not in text
    assert all("magmoms" not in f.calc.results for f in cfg_to_frames(text))


MLIP_MAGNETIC_CFG = """BEGIN_CFG
 Size
    2
 Supercell
         2.870000      0.000000      0.000000
         0.000000      2.870000      0.000000
         0.000000      0.000000      2.870000
 AtomData:  id type       cartes_x      cartes_y      cartes_z           fx          fy          fz      magmom_x     magmom_y     magmom_z      en_der_mx     en_der_my     en_der_mz
             1    0       0.000000      0.000000      0.000000     0.100000    0.000000    0.000000      2.217293     0.000000     0.000000        0.03578       0.00000       0.00000
             2    0       1.435000      1.435000      1.435000    -0.100000    0.000000    0.000000     -2.041471     0.000000     0.000000       -0.05997       0.00000       0.00000
 Energy
     -16.5
 PlusStress:  xx          yy          zz          yz          xz          xy
         0.10000     0.10000     0.10000     0.00000     0.00000     0.00000
 Feature   mindist	2.485436
END_CFG
"""
"""Two bcc Fe atoms in the layout of MLIP's magnetic data sets (collinear moments in x)."""


def test_mlip_magnetic_cfg_reads_moments():
    (read,) = cfg_to_frames(MLIP_MAGNETIC_CFG, species=[26])
    assert list(read.numbers) == [26, 26]
    _close(read.calc.results["magmoms"], [2.217293, -2.041471])
    assert read.get_potential_energy() == -16.5
    (again,) = cfg_to_frames(frames_to_cfg([read]))
    _close(again.calc.results["magmoms"], [2.217293, -2.041471])
