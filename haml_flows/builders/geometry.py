"""Per-pair minimum distances: what every builder checks before it returns."""

from __future__ import annotations

from pymatgen.core import Element, Structure

from haml_flows.distances import pair_minimum_distances

PAIR_MINIMA = {
    ("Li", "Li"): 2.0,
    ("Li", "S"): 2.0,
    ("Li", "Se"): 2.1,
    ("Li", "Cl"): 2.0,
    ("Li", "F"): 1.6,
    ("Li", "O"): 1.6,
    ("Li", "P"): 2.3,
    ("Li", "N"): 1.7,
    ("Li", "C"): 1.8,
    ("Li", "H"): 1.5,
    ("P", "S"): 1.9,
    ("P", "Se"): 2.0,
    ("O", "P"): 1.4,
    ("S", "S"): 3.0,
}
"""Shortest allowed distance (Angstrom) of each element pair, sorted symbols."""
DEFAULT_MINIMUM = 0.9
"""Any pair not listed (bonded pairs inside molecules included)."""


def pair_minima(structure: Structure) -> dict[tuple[str, str], float]:
    """The shortest distance of every element pair present (periodic images included)."""
    return {
        tuple(sorted((Element.from_Z(a).symbol, Element.from_Z(b).symbol))): d
        for (a, b), d in pair_minimum_distances([structure]).items()
    }


def check_min_distances(
    structure: Structure, minima: dict[tuple[str, str], float] | None = None
) -> dict[tuple[str, str], float]:
    """Raise ValueError naming every pair closer than its minimum; return the minima found."""
    minima = PAIR_MINIMA if minima is None else minima
    found = pair_minima(structure)
    bad = [
        f"{a}-{b} {d:.2f} A < {minima.get((a, b), DEFAULT_MINIMUM)} A"
        for (a, b), d in found.items()
        if d < minima.get((a, b), DEFAULT_MINIMUM)
    ]
    if bad:
        raise ValueError("atoms too close: " + "; ".join(bad))
    return found
