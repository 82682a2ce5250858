"""Labelled Cu/Al frames from ASE's EMT, a cheap stand-in for AIMD data."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator


def labelled_frames(n: int, seed: int = 0, repeat: tuple[int, int, int] = (1, 1, 2), rattle: float = 0.1) -> list[Atoms]:
    """``n`` rattled Cu/Al fcc cells with EMT energy, forces and stress."""
    rng = np.random.default_rng(seed)
    base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
    for i in range(0, len(base), 3):
        base[i].symbol = "Al"
    frames = []
    for _ in range(n):
        atoms = base.copy()
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, **atoms.calc.results)
        frames.append(atoms)
    return frames
