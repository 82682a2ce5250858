"""motep's compiled MTP engine with vesin's neighbour list, for MLP-MD.

motep's run mode builds its neighbour list with ASE's ``PrimitiveNeighborList``
and pads it with a Python loop over atoms: about 3 ms per rebuild for the
42-atom mini interface, a quarter of a force call's cost when the list is
rebuilt every few MD steps. vesin (a compiled cell-list search) finds the
same pairs in under 0.1 ms; the padding below is vectorized. The kernel,
its inputs (``_neighbors``, ``_offsets``) and the rebuild rule (pbc or cell
changed, or an atom moved more than half the skin since the last build) are
motep's; only the search is replaced. Training mode keeps motep's own list.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from motep.potentials.mtp.cext.engine import CExtMTPEngine
from vesin import NeighborList

SKIN = 0.3
"""Angstrom beyond the cutoff kept in the list (motep's value)."""


def padded_neighbors(
    i: np.ndarray, j: np.ndarray, shifts: np.ndarray, cell: np.ndarray, n_atoms: int
) -> tuple[np.ndarray, np.ndarray]:
    """motep's ``(n_atoms, width)`` neighbour indices (-1 pads) and offsets in Angstrom."""
    order = np.lexsort((j, i))
    i, j, shifts = i[order], j[order], shifts[order]
    counts = np.bincount(i, minlength=n_atoms)
    width = int(counts.max()) if counts.size else 0
    slot = np.arange(i.size) - np.repeat(np.cumsum(counts) - counts, counts)
    neighbors = np.full((n_atoms, width), -1, dtype=np.int32)
    neighbors[i, slot] = j
    offsets = np.zeros((n_atoms, width, 3))
    offsets[i, slot] = shifts @ cell
    return neighbors, offsets


class VesinMTPEngine(CExtMTPEngine):
    """``CExtMTPEngine`` whose run-mode neighbour list comes from vesin."""

    _built_at: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    _checked_numbers: np.ndarray | None = None

    def check_species(self, atoms: Atoms) -> None:
        """motep's species check, once per set of atomic numbers (not every step)."""
        if self._checked_numbers is not None and np.array_equal(
            self._checked_numbers, atoms.numbers
        ):
            return
        super().check_species(atoms)
        self._checked_numbers = atoms.numbers.copy()

    def _build(self, atoms: Atoms) -> None:
        cutoff = float(self.mtp_data.radial_basis.max) + SKIN
        cell = atoms.cell.array
        i, j, shifts = NeighborList(cutoff=cutoff, full_list=True).compute(
            points=atoms.positions, box=cell, periodic=atoms.pbc, quantities="ijS"
        )
        self._neighbors, self._offsets = padded_neighbors(
            i.astype(np.int64), j.astype(np.int64), shifts.astype(float), cell, len(atoms)
        )
        self._built_at = (atoms.positions.copy(), cell.copy(), atoms.pbc.copy())

    def _stale(self, atoms: Atoms) -> bool:
        if self._built_at is None:
            return True
        positions, cell, pbc = self._built_at
        if positions.shape != atoms.positions.shape:
            return True
        # any change of the cell rebuilds (exact comparison: cheap, and safe)
        if not (np.array_equal(pbc, atoms.pbc) and np.array_equal(cell, atoms.cell.array)):
            return True
        step = atoms.positions - positions
        moved = np.einsum("ij,ij->i", step, step)
        return bool(moved.max() > (0.5 * SKIN) ** 2)

    def update_neighbor_list(self, atoms: Atoms) -> bool:
        """Rebuild when stale; ``True`` tells motep to resize its basis arrays."""
        if "train" in self.mode:
            return super().update_neighbor_list(atoms)
        if not self._stale(atoms):
            return False
        self._build(atoms)
        return True
