"""The compiled MTP kernel: forces, and site-energy derivatives over all parameters.

One pass over the neighbourhoods gives site energies, forces and the virial
(what MD needs) and, when asked, each site energy's derivatives with respect
to every MTP parameter (what the MaxVol grade needs): the moment
coefficients' derivatives are the basis values, the species coefficients'
are 1 at the atom's own species, and the radial coefficients' reuse the
radial basis and the moment adjoint of the force computation, a few
multiply-adds per neighbour. motep's train mode computes the same
derivatives with forces and stresses of every parameter, about 27x a force
call; this kernel adds a few per cent.

Parameter order is motep's: ``moment_coeffs``, ``species_coeffs``,
``radial_coeffs`` flattened over (species i, species j, radial function,
radial basis function).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from motep.potentials.mtp.data import MTPData

from haml_flows.mtp import _mtp_kernel


@dataclass
class KernelResult:
    """One evaluation: site energies, forces, virial and, if asked, local rows."""

    energies: np.ndarray
    forces: np.ndarray
    virial: np.ndarray
    """``sum_ij r_ij (x) dE_i/dr_ij`` as motep's run mode forms it, before
    symmetrization and division by the volume: ``virial[l, k] = sum r_k g_l``."""
    local_rows: np.ndarray | None
    """``(n_atoms, n_scalar + spc * rfc * rbs)``: basis values, then the
    derivatives with respect to ``radial_coeffs[t_i]`` of the atom's species;
    see :meth:`MtpKernel.full_rows`."""


class MtpKernel:
    """The kernel bound to one potential's parameters (read once, kept contiguous)."""

    def __init__(self, data: MTPData) -> None:
        if data.moment_coeffs is None or data.species_coeffs is None:
            msg = "the potential has no trained coefficients (moment_coeffs, species_coeffs)"
            raise ValueError(msg)
        if data.radial_coeffs is None:
            msg = "the potential has no radial_coeffs"
            raise ValueError(msg)
        self.spc = int(data.species_count)
        self.rfc = int(data.radial_funcs_count)
        self.rbs = int(data.radial_basis.size)
        self.n_scalar = int(data.alpha_scalar_moments)
        self.n_moments = int(data.alpha_moments_count)
        self.scaling = float(data.scaling)
        self.min_dist = float(data.radial_basis.min)
        self.max_dist = float(data.radial_basis.max)
        self._radial = np.ascontiguousarray(data.radial_coeffs, dtype=np.float64)
        expected = (self.spc, self.spc, self.rfc, self.rbs)
        if self._radial.shape != expected:
            msg = f"radial_coeffs has shape {self._radial.shape}, expected {expected}"
            raise ValueError(msg)
        self._species = np.ascontiguousarray(data.species_coeffs, dtype=np.float64)
        self._moment = np.ascontiguousarray(data.moment_coeffs, dtype=np.float64)
        self._mapping = np.ascontiguousarray(data.alpha_moment_mapping, dtype=np.int32)
        self._basic = np.ascontiguousarray(data.alpha_index_basic, dtype=np.int32).reshape(-1)
        times = np.asarray(data.alpha_index_times, dtype=np.int32).reshape(-1, 4)
        self._times = np.ascontiguousarray(times).reshape(-1)
        if self._mapping.size != self.n_scalar or self._moment.size != self.n_scalar:
            msg = (
                f"alpha_moment_mapping ({self._mapping.size}) and moment_coeffs "
                f"({self._moment.size}) must both have alpha_scalar_moments "
                f"({self.n_scalar}) entries"
            )
            raise ValueError(msg)
        self.n_radial = self.spc * self.rfc * self.rbs
        self.n_local = self.n_scalar + self.n_radial
        self.n_params = self.n_scalar + self.spc + self.spc * self.n_radial

    def evaluate(
        self, js: np.ndarray, rs: np.ndarray, itypes: np.ndarray, *, rows: bool = False
    ) -> KernelResult:
        """Evaluate one configuration given motep's padded neighbour arrays.

        ``js`` (n_atoms, n_neighbors) neighbour indices, -1 for padding;
        ``rs`` (n_atoms, n_neighbors, 3) vectors from atom i to neighbour j;
        ``itypes`` species index of each atom in the potential's order.
        """
        js = np.ascontiguousarray(js, dtype=np.int32)
        rs = np.ascontiguousarray(rs, dtype=np.float64)
        itypes = np.ascontiguousarray(itypes, dtype=np.int32)
        n_atoms = itypes.size
        n_nb = js.shape[1] if js.ndim == 2 else 0
        energies = np.empty(n_atoms)
        forces = np.empty((n_atoms, 3))
        virial = np.empty((3, 3))
        local = np.empty((n_atoms, self.n_local)) if rows else None
        _mtp_kernel.evaluate(
            n_atoms, n_nb, js, rs, itypes,
            self.scaling, self.min_dist, self.max_dist,
            self.spc, self.rfc, self.rbs, self._radial, self._species,
            self.n_moments, self._mapping, self._basic, self._times, self._moment,
            energies, forces, virial, local,
        )
        return KernelResult(energies, forces, virial, local)

    def species_columns(self, species_index: int) -> np.ndarray:
        """Full-row columns of the local row of an atom of ``species_index``.

        Moment coefficients, then ``radial_coeffs[species_index]``; the
        species coefficient column is :meth:`species_column`.
        """
        moments = np.arange(self.n_scalar)
        start = self.n_scalar + self.spc + species_index * self.n_radial
        return np.concatenate([moments, np.arange(start, start + self.n_radial)])

    def species_column(self, species_index: int) -> int:
        """Full-row column of the species coefficient of ``species_index``."""
        return self.n_scalar + species_index

    def full_rows(self, local_rows: np.ndarray, itypes: np.ndarray) -> np.ndarray:
        """``(n_atoms, n_params)`` derivatives of each site energy, motep's order."""
        itypes = np.asarray(itypes)
        full = np.zeros((local_rows.shape[0], self.n_params))
        full[:, : self.n_scalar] = local_rows[:, : self.n_scalar]
        atoms = np.arange(itypes.size)
        full[atoms, self.n_scalar + itypes] = 1.0
        radial = local_rows[:, self.n_scalar :]
        for t in np.unique(itypes):
            start = self.n_scalar + self.spc + int(t) * self.n_radial
            mask = itypes == t
            full[mask, start : start + self.n_radial] = radial[mask]
        return full


MAXVOL_MAX_ITERATIONS = 100_000
"""motep's and MLIP's iteration bound of the MaxVol selection."""


def mlip_maxvol(matrix: np.ndarray, maxiter: int = MAXVOL_MAX_ITERATIONS) -> tuple[np.ndarray, int]:
    """MLIP's MaxVol selection over the rows of ``matrix`` ``(n, p)``, ``n >= p``.

    Returns the row placed in each of the ``p`` slots (-1: the slot kept its
    ``1e-6 e_j`` start) and the number of swaps; the same rows as motep's
    ``FindMethod.MLIP``, in one fused pass per swap.
    """
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    n, p = matrix.shape
    slots = np.empty(p, dtype=np.dtype("l"))  # C long
    nit = _mtp_kernel.mlip_maxvol(n, p, matrix, slots, int(maxiter))
    return slots.astype(np.int64), int(nit)
