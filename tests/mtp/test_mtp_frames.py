"""MLIP .cfg round trip."""

from __future__ import annotations

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
