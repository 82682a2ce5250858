"""MaxVol extrapolation grade over all MTP parameters, as MLIP defines it.

Each row is the derivative of an energy with respect to every parameter of
the potential: moment, species and radial coefficients (motep's order). In
neighbourhood mode (MLIP's default, and what ``pair_style mlip`` watches) a
row is one atom's site energy; in configuration mode it is a configuration's
total energy. The active set is the square submatrix of the training rows
chosen by MaxVol; the grade of a row ``b`` is ``max |b A^-1|``, and of a
configuration the largest grade of its rows.

The active set is chosen with MLIP's own MaxVol procedure (motep's
``FindMethod.MLIP``: start from ``1e-6 I``, swap in the row of largest
coefficient while it exceeds 1 + 1e-3), which reproduces the ``MV_grade``
that MLIP's ``calc-grade`` writes. Parameters that no training row excites
keep their ``1e-6 I`` row: a configuration that excites them (a species
pair that never met in training, a dopant neighbourhood unlike the training
ones) gets a grade far above any threshold instead of being ignored; the
active set lists them in ``uncovered``.

The rows come from :mod:`haml_flows.mtp.kernel` in the force call itself,
so watching the grade at every MD step costs one product of each atom's
local row (moment, own-species and own-species radial columns) with the
matching rows of ``A^-1``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import chemical_symbols
from motep.io.mlip.mtp import read_mtp, write_mtp
from motep.potentials.mtp.data import MTPData

from haml_flows.mtp.engine import KernelMTPEngine
from haml_flows.mtp.kernel import MtpKernel, mlip_maxvol
from haml_flows.mtp.sampling import recent_and_spread

SPECIES_TAG = "species:"
"""``potential_tag`` prefix that records atomic numbers (``.mtp`` has no field for them)."""

GradeMode = Literal["neighborhood", "configuration"]
GRADE_MODES: tuple[str, ...] = ("neighborhood", "configuration")

UNCOVERED_ROW = 1e-6
"""Diagonal of the rows MLIP's MaxVol starts from; a parameter no training
row excites keeps it."""


class GradeError(ValueError):
    """An active set or a grade that cannot be computed; the message says why."""


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


def _symbol(z: int) -> str:
    return chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"type {z}"


def parameter_names(data: MTPData) -> list[str]:
    """A readable name for every parameter, in the rows' (motep's) order."""
    species = [_symbol(int(z)) for z in data.species]
    names = [f"moment {a}" for a in range(int(data.alpha_scalar_moments))]
    names += [f"species {s}" for s in species]
    rfc, rbs = int(data.radial_funcs_count), int(data.radial_basis.size)
    for si in species:
        for sj in species:
            names += [f"radial {si}-{sj} [{mu},{q}]" for mu in range(rfc) for q in range(rbs)]
    return names


class ActiveSet:
    """MaxVol active set over all parameters of one potential (MLIP's ``state.als``).

    ``slots[j]`` is the (frame, atom) whose row fills row ``j`` of the square
    matrix ``A`` (atom -1 in configuration mode), or (-1, -1) when row ``j``
    kept MLIP's ``1e-6 e_j`` start; ``inverse`` is ``A^-1``.
    """

    def __init__(
        self,
        data: MTPData,
        submatrix: np.ndarray,
        slots: np.ndarray,
        *,
        mode: GradeMode = "neighborhood",
        n_candidates: int = 0,
    ) -> None:
        if mode not in GRADE_MODES:
            raise GradeError(f"grade mode must be one of {GRADE_MODES}, got {mode!r}")
        self.data = data
        self.kernel = MtpKernel(data)
        self.mode = mode
        self.slots = np.asarray(slots, dtype=int).reshape(-1, 2)
        self.n_params = self.kernel.n_params
        self.n_candidates = n_candidates
        self.shortfall = 0
        """Rows missing to span the parameters the training frames excite."""
        if submatrix.shape != (self.n_params, self.n_params):
            raise GradeError(
                f"active set matrix is {submatrix.shape}, the potential has "
                f"{self.n_params} parameters"
            )
        try:
            self.inverse = np.linalg.inv(submatrix)
        except np.linalg.LinAlgError:
            raise GradeError("the active set matrix is singular") from None
        self._blocks = [
            (self.inverse[self.kernel.species_columns(t)],
             self.inverse[self.kernel.species_column(t)])
            for t in range(self.kernel.spc)
        ]

    @property
    def indices(self) -> list[tuple[int, int]]:
        """(frame, atom) of each training row in the active set, in slot order."""
        return [(int(f), int(a)) for f, a in self.slots[self.slots[:, 0] >= 0]]

    @property
    def uncovered(self) -> list[str]:
        """Parameters no training row covers (their slot kept ``1e-6 e_j``)."""
        names = parameter_names(self.data)
        return [names[j] for j in np.flatnonzero(self.slots[:, 0] < 0)]

    def uncovered_blocks(self) -> dict[str, int]:
        """Uncovered parameters per species pair or species, e.g. {'radial Se-Cl': 24}."""
        counts: dict[str, int] = {}
        for name in self.uncovered:
            key = name.split(" [")[0] if name.startswith("radial") else name.rsplit(" ", 1)[0]
            counts[key] = counts.get(key, 0) + 1
        return counts

    @classmethod
    def from_training(
        cls,
        potential: str | MTPData,
        frames: Sequence[Atoms],
        *,
        mode: GradeMode = "neighborhood",
        require_span: bool = True,
        frame_ids: Sequence[int] | None = None,
    ) -> ActiveSet:
        """Select the active set among the rows of ``frames`` (MLIP's ``calc-grade``).

        Raises GradeError when a frame holds a species the potential does not
        describe, when a row is not finite, or (``require_span``) when there
        are fewer rows than the parameters the frames excite, saying how many
        are needed. Without ``require_span`` such a set is built as MLIP
        builds it (the parameters left over keep their ``1e-6 e_j`` rows, so
        MD leaves the training frames with a grade far above any threshold)
        and ``shortfall`` says by how many rows. ``frame_ids`` names the
        frames in the slots (default: their positions in ``frames``).
        """
        if mode not in GRADE_MODES:
            raise GradeError(f"grade mode must be one of {GRADE_MODES}, got {mode!r}")
        data = _as_data(potential)
        if not frames:
            raise GradeError("no training frames: an active set needs training rows")
        matrix, owners = training_rows(data, frames, mode=mode)
        excited = np.flatnonzero(np.any(matrix != 0.0, axis=0))
        shortfall = max(0, excited.size - matrix.shape[0])
        if shortfall and require_span:
            unit = "neighbourhoods" if mode == "neighborhood" else "configurations"
            per_frame = len(frames[0]) if mode == "neighborhood" else 1
            raise GradeError(
                f"{matrix.shape[0]} training {unit} ({len(frames)} frames) cannot span "
                f"the {excited.size} parameters they excite: at least {excited.size} "
                f"{unit} are needed (about {int(np.ceil(excited.size / per_frame))} "
                "frames of this size)"
            )
        # MLIP's procedure swaps rows up to the parameter count: pad with zero
        # rows, which are never picked
        padding = max(0, matrix.shape[1] - matrix.shape[0])
        picked, _ = mlip_maxvol(np.vstack([matrix, np.zeros((padding, matrix.shape[1]))]))
        submatrix = UNCOVERED_ROW * np.eye(matrix.shape[1])
        submatrix[picked >= 0] = matrix[picked[picked >= 0]]
        ids = list(range(len(frames))) if frame_ids is None else [int(i) for i in frame_ids]
        slots = np.array(
            [(ids[owners[r][0]], owners[r][1]) if r >= 0 else (-1, -1) for r in picked]
        )
        active = cls(data, submatrix, slots, mode=mode, n_candidates=matrix.shape[0])
        active.shortfall = shortfall
        return active

    @classmethod
    def from_slots(
        cls,
        potential: str | MTPData,
        frames: Sequence[Atoms],
        slots: Sequence[Sequence[int]],
        *,
        mode: GradeMode = "neighborhood",
    ) -> ActiveSet:
        """Rebuild a stored active set from its slots and the frames they point to."""
        data = _as_data(potential)
        kernel = MtpKernel(data)
        slots = np.asarray(slots, dtype=int).reshape(-1, 2)
        if len(slots) != kernel.n_params:
            raise GradeError(
                f"{len(slots)} active-set slots for a potential of {kernel.n_params} "
                "parameters: the active set belongs to another potential"
            )
        submatrix = UNCOVERED_ROW * np.eye(kernel.n_params)
        engine = KernelMTPEngine(data)
        engine.want_rows = True
        for frame_index in np.unique(slots[:, 0]):
            if frame_index < 0:
                continue
            if frame_index >= len(frames):
                raise GradeError(
                    f"active-set slot points to frame {frame_index}, the training set "
                    f"has {len(frames)}"
                )
            rows = _frame_rows(engine, frames[frame_index], mode)
            for slot in np.flatnonzero(slots[:, 0] == frame_index):
                atom = slots[slot, 1]
                submatrix[slot] = rows[0 if mode == "configuration" else atom]
        return cls(data, submatrix, slots, mode=mode)

    def grades_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Grade of each full row ``(n, n_params)``."""
        rows = np.atleast_2d(rows)
        if rows.shape[1] != self.n_params:
            raise GradeError(
                f"rows have {rows.shape[1]} parameters, the active set expects {self.n_params}"
            )
        return np.abs(rows @ self.inverse).max(axis=1)

    def gamma_per_atom(self, local_rows: np.ndarray, itypes: np.ndarray) -> np.ndarray:
        """Neighbourhood grade of each atom from the kernel's local rows."""
        if local_rows.shape[1] != self.kernel.n_local:
            raise GradeError(
                f"local rows have {local_rows.shape[1]} columns, the active set "
                f"expects {self.kernel.n_local}"
            )
        grades = np.empty(local_rows.shape[0])
        for t in np.unique(itypes):
            block, bias = self._blocks[int(t)]
            mask = itypes == t
            grades[mask] = np.abs(local_rows[mask] @ block + bias).max(axis=1)
        return grades

    def frame_gamma(self, local_rows: np.ndarray, itypes: np.ndarray) -> tuple[float, np.ndarray]:
        """(grade of the configuration, per-atom grades or empty) in this set's mode."""
        if self.mode == "configuration":
            full = self.kernel.full_rows(local_rows, itypes).sum(axis=0)
            return float(self.grades_of_rows(full)[0]), np.empty(0)
        per_atom = self.gamma_per_atom(local_rows, itypes)
        return float(per_atom.max()) if per_atom.size else 0.0, per_atom

    def grade_frames(self, frames: Sequence[Atoms]) -> list[float]:
        """``MV_grade`` of each frame, as ``mlp calc-grade`` writes it."""
        engine = KernelMTPEngine(self.data)
        engine.want_rows = True
        grades = []
        for i, atoms in enumerate(frames):
            _check_frame(self.data, atoms, i)
            engine.calculate(atoms)
            grade, _ = self.frame_gamma(engine.local_rows, engine.itypes)
            if not np.isfinite(grade):
                raise GradeError(f"frame {i}: the grade is not finite ({grade})")
            grades.append(grade)
        return grades

    def gamma(self, atoms_with_calc: Atoms) -> float:
        """Grade of ``atoms`` (any calculator: the potential is this set's)."""
        return self.grade_frames([atoms_with_calc])[0]


def candidate_active_set(
    potential: str | MTPData,
    frames: Sequence[Atoms],
    *,
    mode: GradeMode = "neighborhood",
    max_frames: int | None = None,
) -> tuple[ActiveSet, list[int]]:
    """The active set of a run's training set, as MLIP builds it, from bounded candidates.

    The candidates are at most ``max_frames`` training frames (the newest
    half and older ones evenly spaced); slots name training-set indices.
    Returns the set and the candidates' indices.
    """
    ids = recent_and_spread(len(frames), max_frames)
    active = ActiveSet.from_training(
        potential, [frames[i] for i in ids], mode=mode, require_span=False, frame_ids=ids
    )
    return active, ids


def _check_frame(data: MTPData, atoms: Atoms, index: int) -> None:
    if not np.all(np.isfinite(atoms.positions)):
        raise GradeError(f"frame {index} has positions that are not finite")
    known = {int(z) for z in data.species}
    extra = sorted({int(z) for z in atoms.numbers} - known)
    if extra:
        raise GradeError(
            f"frame {index} holds {', '.join(_symbol(z) for z in extra)}, which the "
            f"potential does not describe (its species: "
            f"{', '.join(_symbol(int(z)) for z in data.species)})"
        )


def _frame_rows(engine: KernelMTPEngine, atoms: Atoms, mode: GradeMode) -> np.ndarray:
    engine.calculate(atoms)
    full = engine.kernel.full_rows(engine.local_rows, engine.itypes)
    return full.sum(axis=0, keepdims=True) if mode == "configuration" else full


def training_rows(
    potential: str | MTPData, frames: Sequence[Atoms], *, mode: GradeMode = "neighborhood"
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """All rows of ``frames`` and the (frame, atom) each belongs to."""
    data = _as_data(potential)
    engine = KernelMTPEngine(data)
    engine.want_rows = True
    blocks, owners = [], []
    for i, atoms in enumerate(frames):
        _check_frame(data, atoms, i)
        rows = _frame_rows(engine, atoms, mode)
        if not np.all(np.isfinite(rows)):
            raise GradeError(f"frame {i}: the parameter derivatives are not finite")
        blocks.append(rows)
        owners += [(i, -1)] if mode == "configuration" else [(i, a) for a in range(len(rows))]
    return np.vstack(blocks), owners


class GammaCalculator(Calculator):
    """The MTP (haml_flows' kernel, vesin's neighbour list) tracking the MaxVol grade.

    ``last_gamma`` is refreshed every ``every``-th calculation (``nan`` before
    the first one or without an active set), ``last_gamma_per_atom`` holds
    the neighbourhood grades of that step; ``gamma_evaluations`` counts them
    and ``gamma_seconds`` is the wall time of the grade products. On steps
    without a grade the force call does not compute the rows.
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
        self.engine = KernelMTPEngine(_as_data(potential))
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
        grading = self.active_set is not None and self.calls % self.every == 0
        self.engine.want_rows = grading
        results = self.engine.calculate(self.atoms)
        self.results = {key: np.copy(value) for key, value in results.items()}
        self.results["energy"] = float(results["energy"])
        self.results["free_energy"] = self.results["energy"]
        if self.atoms.cell.rank != 3:
            self.results.pop("stress", None)
        if grading:
            start = time.perf_counter()
            gamma, per_atom = self.active_set.frame_gamma(
                self.engine.local_rows, self.engine.itypes
            )
            self.last_gamma = gamma
            self.last_gamma_per_atom = per_atom
            self.gamma_evaluations += 1
            self.gamma_seconds += time.perf_counter() - start
        self.calls += 1


def mtp_calculator(
    potential: str | MTPData, active_set: ActiveSet | None = None, every: int = 1
) -> Calculator:
    """ASE calculator of ``potential``; with ``active_set`` it tracks gamma."""
    return GammaCalculator(potential, active_set=active_set, every=every)
