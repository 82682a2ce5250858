"""Bulk argyrodite Li6PS5Cl (F-43m), ordered deterministically.

The disordered cell has Li half-occupying 48h. The ordering is found on the
13-atom primitive cell (12 half-occupied Li sites -> 6 Li) with pymatgen's
``OrderDisorderedStructureTransformation`` (lowest Ewald energy, charges
Li+ P5+ S2- Cl-); ties between equivalent orderings are broken by the sorted
fractional coordinates of the Li, so the result never depends on the order
pymatgen enumerates them in.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pymatgen.core import Lattice, Structure
from pymatgen.transformations.standard_transformations import (
    OrderDisorderedStructureTransformation,
)

LPSC_LATTICE_PARAMETER = 9.85
PS4_SULFUR_X = 0.38
LI_48H = (0.3139, 0.3139, 0.9766)
OXIDATION_STATES = {"Li": 1, "P": 5, "S": -2, "Cl": -1}
PS_BOND_MAX = 2.5
"""A P-S distance below this (Angstrom) is a PS4 bond; above it, S is free."""

_PRIMITIVE_TO_CONVENTIONAL = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])
_RANKED_ORDERINGS = 50


def li6ps5cl_disordered(a: float = LPSC_LATTICE_PARAMETER) -> Structure:
    """Conventional F-43m Li6PS5Cl with Li at half occupancy on 48h (76 sites).

    Setting: Cl 4a (0,0,0), P 4b (1/2,1/2,1/2), free S 4d (3/4,3/4,3/4),
    PS4 sulfur 16e (x,x,x) with x = 0.38, Li 48h (x,x,z) = (0.314, 0.314, 0.977)
    -- each Li then sits 2.40 A from a free S, 2.46 A from two PS4 S and
    2.60 A from a Cl, and the two halves of a 48h pair are 1.78 A apart.
    """
    return Structure.from_spacegroup(
        "F-43m",
        Lattice.cubic(a),
        ["Cl", "P", "S", "S", {"Li": 0.5}],
        [(0.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.75, 0.75, 0.75),
         (PS4_SULFUR_X,) * 3, LI_48H],
    )


def _primitive(conventional: Structure) -> Structure:
    """The fcc primitive cell with fixed vectors (a/2)(0,1,1), (1,0,1), (1,1,0)."""
    a = conventional.lattice.a
    lattice = Lattice(np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]) * a / 2)
    frac = np.mod(lattice.get_fractional_coords(conventional.cart_coords), 1.0)
    unique: dict[tuple, dict] = {}
    for site, f in zip(conventional, frac, strict=True):
        key = tuple(np.round(f, 4) % 1.0)
        unique.setdefault(key, site.species.as_dict())
    return Structure(lattice, list(unique.values()), list(unique.keys()))


def _li_key(structure: Structure) -> tuple:
    li = [np.round(s.frac_coords % 1.0, 4) for s in structure if s.specie.symbol == "Li"]
    return tuple(sorted(tuple(f) for f in li))


@lru_cache(maxsize=8)
def _ordered_primitive(a: float) -> Structure:
    disordered = _primitive(li6ps5cl_disordered(a))
    disordered.add_oxidation_state_by_element(OXIDATION_STATES)
    ranked = OrderDisorderedStructureTransformation(algo=0).apply_transformation(
        disordered, return_ranked_list=_RANKED_ORDERINGS
    )
    lowest = min(r["energy"] for r in ranked)
    ties = [r["structure"] for r in ranked if r["energy"] - lowest < 1e-6]
    best = min(ties, key=_li_key)
    best.remove_oxidation_states()
    return best


def label_sites(structure: Structure) -> Structure:
    """Set the ``wyckoff`` site property: Li_48h, P_4b, S_16e, S_4d, Cl_4a.

    Sulfur is S_16e when a P lies within ``PS_BOND_MAX``, else the free S_4d;
    dopants keep the label of the site they replaced, so the rule is by
    geometry and survives slicing into slabs.
    """
    labels = []
    p_indices = [i for i, s in enumerate(structure) if s.specie.symbol == "P"]
    for site in structure:
        symbol = site.specie.symbol
        if symbol == "S":
            bonded = any(
                site.distance(structure[p]) < PS_BOND_MAX for p in p_indices
            )
            labels.append("S_16e" if bonded else "S_4d")
        else:
            labels.append({"Li": "Li_48h", "P": "P_4b", "Cl": "Cl_4a"}.get(symbol, symbol))
    structure.add_site_property("wyckoff", labels)
    return structure


def li6ps5cl_primitive(a: float = LPSC_LATTICE_PARAMETER) -> Structure:
    """Ordered Li6PS5Cl primitive cell (13 atoms), lowest Ewald energy."""
    return label_sites(_ordered_primitive(float(a)).copy())


def li6ps5cl(a: float = LPSC_LATTICE_PARAMETER, supercell=(1, 1, 1)) -> Structure:
    """Ordered cubic Li6PS5Cl (52 atoms per conventional cell), sites labelled.

    The conventional cell holds four copies of the ordered primitive cell, so
    its axes are x, y, z and every copy has the same Li ordering.
    """
    structure = _ordered_primitive(float(a)).copy()
    structure.make_supercell(_PRIMITIVE_TO_CONVENTIONAL)
    structure = Structure(
        Lattice.cubic(a),
        structure.species,
        structure.cart_coords,
        coords_are_cartesian=True,
        to_unit_cell=True,
    ).get_sorted_structure()
    if tuple(supercell) != (1, 1, 1):
        structure.make_supercell(supercell)
    return label_sites(structure)
