"""Interatomic distances under periodic boundaries, the one routine every check uses.

Builders, the spec check, the MTP's inner radius and the MLP-MD collapse guard
all ask the same questions of a structure or a set of frames: which two atoms
are closest, and how close does each pair of species come.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ase import Atoms
from pymatgen.core import Structure


def distance_matrix(system: Atoms | Structure) -> np.ndarray:
    """Minimum-image distances between all atoms (a copy, safe to change)."""
    if isinstance(system, Structure):
        return np.array(system.distance_matrix)
    return system.get_all_distances(mic=any(system.pbc))


def _atomic_numbers(system: Atoms | Structure) -> np.ndarray:
    if isinstance(system, Structure):
        return np.array(system.atomic_numbers)
    return system.numbers


def _off_diagonal(system: Atoms | Structure) -> np.ndarray:
    distances = distance_matrix(system)
    np.fill_diagonal(distances, np.inf)
    return distances


def closest_pair(system: Atoms | Structure) -> tuple[int, int, float] | None:
    """Indices (i < j) and distance of the two closest atoms; None below two atoms."""
    if len(system) < 2:
        return None
    distances = _off_diagonal(system)
    i, j = sorted(np.unravel_index(np.argmin(distances), distances.shape))
    return int(i), int(j), float(distances[i, j])


def pair_minimum_distances(
    frames: Iterable[Atoms | Structure],
) -> dict[tuple[int, int], float]:
    """Shortest distance of each species pair (Z1 <= Z2) over ``frames``."""
    minima: dict[tuple[int, int], float] = {}
    for system in frames:
        if len(system) < 2:
            continue
        distances = _off_diagonal(system)
        numbers = _atomic_numbers(system)
        kinds = np.unique(numbers)
        for n, a in enumerate(kinds):
            for b in kinds[n:]:
                shortest = float(distances[np.ix_(numbers == a, numbers == b)].min())
                if np.isfinite(shortest):
                    key = (int(a), int(b))
                    minima[key] = min(minima.get(key, np.inf), shortest)
    return minima
