"""The MTP engine of MLP-MD: vesin's neighbour list, haml_flows' compiled kernel.

``KernelMTPEngine`` is motep's engine interface (``calculate(atoms)`` ->
energies, energy, forces, stress) with the run mode computed by
:mod:`haml_flows.mtp.kernel`; with ``want_rows`` set, the same call leaves the
site-energy derivatives over all parameters in ``local_rows`` for the
extrapolation grade. Training keeps motep's own engines.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from motep.potentials.mtp.data import MTPData

from haml_flows.mtp.kernel import MtpKernel
from haml_flows.mtp.neighbors import VesinMTPEngine


class KernelMTPEngine(VesinMTPEngine):
    """Run-mode MTP engine whose force call can also give the grade's rows."""

    kernel: MtpKernel
    want_rows: bool = False
    local_rows: np.ndarray | None = None
    itypes: np.ndarray | None = None
    _types_for: np.ndarray | None = None

    def __init__(self, mtp_data: MTPData, *, mode: str = "run") -> None:
        if mode != "run":
            msg = f"KernelMTPEngine runs MD only (mode 'run'), got {mode!r}"
            raise ValueError(msg)
        super().__init__(mtp_data, mode=mode)

    def update(self, mtp_data: MTPData) -> None:
        """New parameters: rebind the kernel."""
        super().update(mtp_data)
        self.kernel = MtpKernel(mtp_data)

    def types_of(self, atoms: Atoms) -> np.ndarray:
        """Species index of each atom in the potential's order (cached per numbers)."""
        if self._types_for is None or not np.array_equal(self._types_for, atoms.numbers):
            species = [int(s) for s in self.mtp_data.species]
            index = {z: i for i, z in enumerate(species)}
            try:
                self.itypes = np.array([index[int(z)] for z in atoms.numbers], dtype=np.int32)
            except KeyError as exc:
                msg = f"atomic number {exc.args[0]} is not among the potential's species {species}"
                raise ValueError(msg) from None
            self._types_for = atoms.numbers.copy()
        return self.itypes

    def _calc_run(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rs = self._get_interatomic_vectors(atoms)
        result = self.kernel.evaluate(
            self._neighbors, rs, self.types_of(atoms), rows=self.want_rows
        )
        self.local_rows = result.local_rows
        return result.energies, result.forces, result.virial
