"""Reaction products from coordination: Li2S, LiCl, Li3P, LiF, Li2O, Li3N, Li2Se.

An anion atom X counts as one formula unit of the product Li_nX when

1. it has at least ``min_li`` Li neighbours within ``li_cutoff`` (the Li-X
   bond cutoff), and
2. it is bonded to no other non-Li atom: no neighbour Y != Li closer than
   ``covalent_scale`` x (r_cov(X) + r_cov(Y)) (ASE covalent radii), so S in
   a PS4 tetrahedron or in an S-S chain is not Li2S, and P with any P-S bond
   is not Li3P.

Atoms that already satisfy this at t = 0 (e.g. the 'free' S2- and Cl- of an
argyrodite) are counted too; ``formed`` in the summaries is the count minus
the count of the first frame. Clusters: the atoms meeting the rule are also
grouped into connected Li-X clusters (scipy connected components) so the
number of separate product domains is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers, covalent_radii
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from haml_flows.analysis.bonds import DEFAULT_CUTOFFS
from haml_flows.analysis.neighbors import Pairs, frame_pairs


@dataclass(frozen=True)
class ProductRule:
    name: str
    anion: str
    li_per_anion: int
    li_cutoff: float
    min_li: int = 4


DEFAULT_PRODUCTS: list[ProductRule] = [
    ProductRule("Li2S", "S", 2, DEFAULT_CUTOFFS["Li-S"], 4),
    ProductRule("LiCl", "Cl", 1, DEFAULT_CUTOFFS["Li-Cl"], 4),
    ProductRule("Li3P", "P", 3, DEFAULT_CUTOFFS["Li-P"], 4),
    ProductRule("LiF", "F", 1, DEFAULT_CUTOFFS["Li-F"], 3),
    ProductRule("Li2O", "O", 2, DEFAULT_CUTOFFS["Li-O"], 3),
    ProductRule("Li3N", "N", 3, DEFAULT_CUTOFFS["Li-N"], 3),
    ProductRule("Li2Se", "Se", 2, DEFAULT_CUTOFFS["Li-Se"], 4),
]

COVALENT_SCALE = 1.2


def needed_cutoff(rules: list[ProductRule], symbols) -> float:
    """Neighbour-list cutoff covering all rules and covalent checks."""
    present = set(symbols)
    radii = [covalent_radii[atomic_numbers[s]] for s in present if s in atomic_numbers]
    covalent = COVALENT_SCALE * 2 * max(radii) if radii else 0.0
    return max([r.li_cutoff for r in rules] + [covalent]) + 1e-6


def products_from_pairs(
    pairs: Pairs, rules: list[ProductRule] | None = None
) -> dict[str, dict[str, int]]:
    """{product: {'units': n, 'clusters': k}} from a frame's neighbour pairs."""
    rules = DEFAULT_PRODUCTS if rules is None else rules
    symbols = pairs.symbols
    n_atoms = len(symbols)
    z = np.array([atomic_numbers.get(s, 0) for s in symbols])
    r_cov = covalent_radii[z]
    i, j, d = pairs.i, pairs.j, pairs.d
    j_is_li = symbols[j] == "Li"
    covalent = (~j_is_li) & (d < COVALENT_SCALE * (r_cov[i] + r_cov[j]))
    has_covalent = np.bincount(i[covalent], minlength=n_atoms) > 0
    out = {}
    for rule in rules:
        li_bond = (symbols[i] == rule.anion) & j_is_li & (d < rule.li_cutoff)
        n_li = np.bincount(i[li_bond], minlength=n_atoms)
        is_product = (symbols == rule.anion) & (n_li >= rule.min_li) & ~has_covalent
        units = int(np.count_nonzero(is_product))
        clusters = 0
        if units:
            # graph of product anions and their Li neighbours
            keep = li_bond & is_product[i]
            graph = coo_matrix(
                (np.ones(int(keep.sum())), (i[keep], j[keep])), shape=(n_atoms, n_atoms)
            )
            _, labels = connected_components(graph, directed=False)
            clusters = len(set(labels[is_product]))
        out[rule.name] = {"units": units, "clusters": clusters}
    return out


def find_products(frame, rules: list[ProductRule] | None = None) -> dict[str, int]:
    """Formula units of each product in one frame (Frame, Structure or Atoms)."""
    from haml_flows.analysis.timeline import as_frame

    rules = DEFAULT_PRODUCTS if rules is None else rules
    frame = as_frame(frame)
    pairs = frame_pairs(frame, needed_cutoff(rules, frame.symbols))
    return {k: v["units"] for k, v in products_from_pairs(pairs, rules).items()}
