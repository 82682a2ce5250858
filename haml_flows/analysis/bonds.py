"""Bond counts for species pairs with distance cutoffs."""

from __future__ import annotations

import numpy as np

from haml_flows.analysis.neighbors import Pairs, frame_pairs, pair_key

#: Default bond cutoffs in Angstrom: about 1.2 x the bond length in the
#: reference compounds (PS4 2.05, Li2S 2.47, LiCl 2.57, Li3P 2.5-2.8,
#: LiF 2.01, Li2O 2.00, Li3N 1.94-2.11, Li2Se 2.60).
DEFAULT_CUTOFFS: dict[str, float] = {
    "P-S": 2.5,
    "Li-P": 3.0,
    "Li-S": 3.0,
    "Li-Cl": 3.0,
    "Li-F": 2.4,
    "Li-O": 2.4,
    "Li-N": 2.5,
    "Li-Se": 3.1,
}


def counts_from_pairs(pairs: Pairs, cutoffs: dict[str, float]) -> dict[str, int]:
    """Bonds per pair type; each bond counted once (also for A-A pairs)."""
    out = {}
    for key, cutoff in cutoffs.items():
        a, b = key.split("-")
        n = int(np.count_nonzero(pairs.between(a, b, cutoff)))
        out[key] = n // 2 if a == b else n
    return out


def bond_counts(frame, cutoffs: dict[str, float] | None = None) -> dict[str, int]:
    """Bond counts of one frame (Frame, Structure or Atoms) for the given pairs."""
    cutoffs = DEFAULT_CUTOFFS if cutoffs is None else cutoffs
    normal = {pair_key(*k.replace("–", "-").split("-")): v for k, v in cutoffs.items()}
    pairs = frame_pairs(frame, max(normal.values()) + 1e-6)
    return counts_from_pairs(pairs, normal)
