"""Frames <-> MLIP ``.cfg`` text.

motep's ``write_cfg`` rounds positions and forces to 1e-6, which loses
training data, so frames are written here at full precision in the same
format; reading goes through ``motep.io.mlip.cfg.read_cfg``. The atomic
numbers of the types are kept in a ``Feature species`` line so that the text
round-trips without a separate species list. Magnetic moments, when a frame's
calculator has them, are the ``magmom_x magmom_y magmom_z`` AtomData columns
of MLIP's magnetic .cfg (collinear moments in ``magmom_x``, as MLIP's magnetic
data sets store them).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_properties
from ase.calculators.singlepoint import SinglePointCalculator
from motep.io.mlip.cfg import read_cfg

SPECIES_FEATURE = "species"
GRADE_FEATURE = "MV_grade"
"""MLIP's feature name for the extrapolation grade of a configuration."""
MAGMOM_COLUMNS = ("magmom_x", "magmom_y", "magmom_z")


def frame_species(frames: Sequence[Atoms]) -> list[int]:
    """Sorted atomic numbers present in ``frames``."""
    return sorted({int(z) for atoms in frames for z in atoms.numbers})


def _fmt(x: float) -> str:
    return f"{x:.16f}"


def _magmom_columns(magmoms) -> np.ndarray | None:
    """Per-atom (x, y, z) moments; a collinear moment goes in x."""
    if magmoms is None:
        return None
    magmoms = np.asarray(magmoms, dtype=float)
    if magmoms.ndim == 1:
        return np.column_stack([magmoms, np.zeros((len(magmoms), 2))])
    return magmoms


def _write_frame(out: io.StringIO, atoms: Atoms, species: list[int]) -> None:
    results = atoms.calc.results if atoms.calc is not None else {}
    forces = results.get("forces")
    magmoms = _magmom_columns(results.get("magmoms"))
    out.write("BEGIN_CFG\n Size\n")
    out.write(f"{len(atoms):6d}\n")
    if all(atoms.pbc):
        out.write(" Supercell\n")
        for vector in atoms.cell:
            out.write("   " + " ".join(repr(float(x)) for x in vector) + "\n")
    header = " AtomData:  id type cartes_x cartes_y cartes_z"
    header += " fx fy fz" if forces is not None else ""
    header += " " + " ".join(MAGMOM_COLUMNS) if magmoms is not None else ""
    out.write(header + "\n")
    for i, (z, pos) in enumerate(zip(atoms.numbers, atoms.positions)):
        cols = [str(i + 1), str(species.index(int(z)))] + [_fmt(x) for x in pos]
        if forces is not None:
            cols += [_fmt(f) for f in forces[i]]
        if magmoms is not None:
            cols += [_fmt(m) for m in magmoms[i]]
        out.write("    " + " ".join(cols) + "\n")
    energy = results.get("energy", results.get("free_energy"))
    if energy is not None:
        out.write(f" Energy\n    {float(energy)!r}\n")
    if "stress" in results and all(atoms.pbc):
        stress = np.asarray(results["stress"])
        if stress.shape == (3, 3):
            stress = stress.flat[[0, 4, 8, 5, 2, 1]]
        plus = -stress * atoms.get_volume()
        out.write(" PlusStress:  xx yy zz yz xz xy\n")
        out.write("    " + " ".join(_fmt(x) for x in plus) + "\n")
    out.write(f" Feature   {SPECIES_FEATURE}\t{','.join(str(s) for s in species)}\n")
    features = {k: v for k, v in atoms.info.items() if isinstance(v, (int, float, str))}
    if results.get(GRADE_FEATURE) is not None:
        features[GRADE_FEATURE] = results[GRADE_FEATURE]
    for key, value in features.items():
        if key != SPECIES_FEATURE:
            out.write(f" Feature   {key}\t{value!r}\n" if isinstance(value, float)
                      else f" Feature   {key}\t{value}\n")
    out.write("END_CFG\n\n")


def frames_to_cfg(frames: list[Atoms], species: Sequence[int] | None = None) -> str:
    """Write frames (energy, forces, stress from their calculators) as ``.cfg`` text."""
    species = list(species) if species is not None else frame_species(frames)
    out = io.StringIO()
    for i, atoms in enumerate(frames):
        missing = set(int(z) for z in atoms.numbers) - set(species)
        if missing:
            msg = f"frame {i} has atomic numbers {sorted(missing)} not in species {species}"
            raise ValueError(msg)
        _write_frame(out, atoms, species)
    return out.getvalue()


def cfg_to_frames(text: str, species: Sequence[int] | None = None) -> list[Atoms]:
    """Read ``.cfg`` text into frames with single-point calculators.

    ``species`` maps type indices to atomic numbers; without it the
    ``Feature species`` line written by :func:`frames_to_cfg` is used, and
    failing that the type index is taken as the atomic number (motep's dummy
    species). Magnetic moment columns become ``magmoms``: one per atom when
    only ``magmom_x`` is non-zero (collinear), else (x, y, z) per atom.
    """
    frames = read_cfg(io.StringIO(text), index=slice(None))
    for atoms in frames:
        stored = atoms.info.pop(SPECIES_FEATURE, None)
        mapping = list(species) if species is not None else _parse_species(stored)
        results = {k: v for k, v in atoms.calc.results.items() if k in all_properties}
        results.pop("magmoms", None)
        if all(column in atoms.calc.results for column in MAGMOM_COLUMNS):
            moments = np.column_stack([atoms.calc.results[c] for c in MAGMOM_COLUMNS]).astype(float)
            results["magmoms"] = moments[:, 0] if not moments[:, 1:].any() else moments
        if GRADE_FEATURE in atoms.calc.results:
            atoms.info[GRADE_FEATURE] = float(atoms.calc.results[GRADE_FEATURE])
        if mapping is not None:
            atoms.numbers = np.array([mapping[t] for t in atoms.numbers])
        atoms.calc = SinglePointCalculator(atoms, **results)
    return frames


def _parse_species(value: object) -> list[int] | None:
    if value is None:
        return None
    return [int(v) for v in str(value).split(",")]
