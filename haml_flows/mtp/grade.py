"""MaxVol extrapolation grade over the linear MTP parameters, per neighbourhood.

The per-atom basis values that motep's run mode fills on every energy/force
call (``engine.mbd.vatoms``), stacked with the species one-hot rows (the
derivatives of a site energy with respect to ``moment_coeffs`` and
``species_coeffs``, motep's parameter order), form one row per neighbourhood.
The active set is the MaxVol square submatrix ``A`` of the training rows;
the grade of a neighbourhood ``b`` is ``max |b A^-1|``. This costs one small
matrix product per MD step instead of the full parameter Jacobian.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from motep.calculator import MTP
from motep.grade.maxvol import MaxVol
from motep.io.mlip.mtp import read_mtp, write_mtp
from motep.potentials.mtp.base import EngineBase
from motep.potentials.mtp.data import MTPData

from haml_flows.mtp.neighbors import VesinMTPEngine

SPECIES_TAG = "species:"
"""``potential_tag`` prefix that records atomic numbers (``.mtp`` has no field for them)."""

RANK_TOLERANCE = 1e-10


def _species_from_tag(tag: str) -> list[int] | None:
    tag = (tag or "").strip()
    if not tag.startswith(SPECIES_TAG):
        return None
    return [int(s) for s in tag[len(SPECIES_TAG) :].split(",") if s]


def load_potential(text: str, species: Sequence[int] | None = None) -> MTPData:
    """Parse ``.mtp`` text; atomic numbers come from ``species`` or the tag."""
    fd, tmp = tempfile.mkstemp(suffix=".mtp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        data = read_mtp(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)
    found = list(species) if species is not None else _species_from_tag(data.potential_tag)
    data.species = found if found is not None else list(range(data.species_count))
    return data


def potential_text(data: MTPData) -> str:
    """``.mtp`` text of ``data`` with its atomic numbers in ``potential_tag``."""
    data.potential_tag = SPECIES_TAG + ",".join(str(int(s)) for s in data.species)
    fd, tmp = tempfile.mkstemp(suffix=".mtp")
    os.close(fd)
    try:
        write_mtp(tmp, data, legacy=True)
        return Path(tmp).read_text(encoding="utf-8")
    finally:
        Path(tmp).unlink(missing_ok=True)


def _as_data(potential: str | MTPData) -> MTPData:
    return load_potential(potential) if isinstance(potential, str) else potential


def basis_values(engine: EngineBase, atoms: Atoms) -> np.ndarray:
    """Linear-parameter basis of each neighbourhood, ``(n_params, natoms)``.

    ``engine`` (a motep engine in run mode) must just have evaluated ``atoms``.
    """
    species = engine.mtp_data.species
    onehot = (atoms.numbers[None, :] == np.asarray(species)[:, None]).astype(float)
    return np.vstack([engine.mbd.vatoms, onehot])


class ActiveSet:
    """MaxVol active set of training neighbourhoods for one potential."""

    def __init__(
        self,
        inverse: np.ndarray,
        columns: np.ndarray,
        n_params: int,
        indices: np.ndarray,
    ) -> None:
        self.inverse = inverse
        self.columns = columns
        self.n_params = n_params
        self.indices = indices

    @classmethod
    def from_training(
        cls, potential: str | MTPData, frames: list[Atoms], *, seed: int = 0
    ) -> ActiveSet:
        """Select the MaxVol neighbourhoods among all atoms of ``frames``.

        Columns the training neighbourhoods cannot distinguish (numerical
        rank deficiency, e.g. a single species or few frames) are dropped so
        that ``A`` stays invertible; columns are scaled, which leaves the
        grade unchanged.
        """
        data = _as_data(potential)
        engine = VesinMTPEngine(data, mode="run")
        rows = []
        for atoms in frames:
            engine.calculate(atoms)
            rows.append(basis_values(engine, atoms).T.copy())
        matrix = np.vstack(rows)
        n_params = matrix.shape[1]
        scale = np.linalg.norm(matrix, axis=0)
        scale[scale == 0] = 1.0
        scaled = matrix / scale
        columns = _independent_columns(scaled)
        reduced = scaled[:, columns]
        if reduced.shape[0] < reduced.shape[1]:
            msg = (
                f"{reduced.shape[0]} training neighbourhoods cannot span "
                f"{reduced.shape[1]} parameters"
            )
            raise ValueError(msg)
        result = MaxVol(rng=np.random.default_rng(seed), threshold=1e-9).run(reduced)
        inverse = np.linalg.inv(reduced[result.indices]) / scale[columns][:, None]
        return cls(inverse=inverse, columns=columns, n_params=n_params, indices=result.indices)

    def gamma_per_atom(self, basis_values: np.ndarray) -> np.ndarray:
        """Grade of each neighbourhood from ``(n_params, natoms)`` basis values."""
        if basis_values.shape[0] != self.n_params:
            msg = (
                f"basis_values has {basis_values.shape[0]} rows, "
                f"the active set expects {self.n_params}"
            )
            raise ValueError(msg)
        return np.abs(basis_values[self.columns].T @ self.inverse).max(axis=1)

    def gamma(self, atoms_with_motep_calc: Atoms) -> float:
        """Largest neighbourhood grade of ``atoms`` under its motep calculator."""
        atoms = atoms_with_motep_calc
        atoms.get_potential_energy()
        calc = atoms.calc
        engine = calc.engine if isinstance(calc, GammaCalculator | MTP) else None
        if engine is None:
            msg = f"atoms carry {type(calc).__name__}, not a motep or GammaCalculator"
            raise TypeError(msg)
        return float(self.gamma_per_atom(basis_values(engine, atoms)).max())


def _independent_columns(matrix: np.ndarray) -> np.ndarray:
    from scipy.linalg import qr

    _, r, pivots = qr(matrix, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    rank = int(np.sum(diag > RANK_TOLERANCE * np.sqrt(matrix.shape[0]) * diag[0]))
    return np.sort(pivots[:rank])


class GammaCalculator(Calculator):
    """motep MTP (compiled engine, run mode) that also tracks the MaxVol grade.

    The engine is motep's with vesin's neighbour search (``VesinMTPEngine``).

    ``last_gamma`` is refreshed every ``every``-th calculation (``nan`` before
    the first one or without an active set); ``gamma_evaluations`` counts them
    and ``gamma_seconds`` is the wall time they took.
    """

    implemented_properties = ("energy", "free_energy", "energies", "forces", "stress")

    def __init__(
        self,
        potential: str | MTPData,
        active_set: ActiveSet | None = None,
        every: int = 1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if every < 1:
            msg = f"every must be >= 1, got {every}"
            raise ValueError(msg)
        self.engine = VesinMTPEngine(_as_data(potential), mode="run")
        self.active_set = active_set
        self.every = every
        self.calls = 0
        self.gamma_evaluations = 0
        self.last_gamma = float("nan")
        self.last_gamma_per_atom: np.ndarray | None = None
        self.gamma_seconds = 0.0

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """ASE's state check by exact comparison of what an MTP depends on.

        ASE compares with ``isclose`` on every property, a tenth of a 42-atom
        force call; positions, numbers, cell and pbc are all an MTP sees.
        """
        old = self.atoms
        if old is None or len(old) != len(atoms):
            return list(all_changes)
        changes = []
        if not np.array_equal(old.positions, atoms.positions):
            changes.append("positions")
        if not np.array_equal(old.numbers, atoms.numbers):
            changes.append("numbers")
        if not np.array_equal(old.cell.array, atoms.cell.array):
            changes.append("cell")
        if not np.array_equal(old.pbc, atoms.pbc):
            changes.append("pbc")
        return changes

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties=("energy",),
        system_changes=all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        results = self.engine.calculate(self.atoms)
        self.results = {key: np.copy(value) for key, value in results.items()}
        self.results["energy"] = float(results["energy"])
        self.results["free_energy"] = self.results["energy"]
        if self.atoms.cell.rank != 3:
            self.results.pop("stress", None)
        if self.active_set is not None and self.calls % self.every == 0:
            start = time.perf_counter()
            per_atom = self.active_set.gamma_per_atom(basis_values(self.engine, self.atoms))
            self.last_gamma_per_atom = per_atom
            self.last_gamma = float(per_atom.max())
            self.gamma_evaluations += 1
            self.gamma_seconds += time.perf_counter() - start
        self.calls += 1


def mtp_calculator(
    potential: str | MTPData, active_set: ActiveSet | None = None, every: int = 1
) -> Calculator:
    """ASE calculator of ``potential``; with ``active_set`` it tracks gamma."""
    return GammaCalculator(potential, active_set=active_set, every=every)
