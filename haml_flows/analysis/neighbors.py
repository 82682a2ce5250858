"""Periodic neighbour pairs of a frame (ASE's neighbour list, any cutoff)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.neighborlist import neighbor_list

from haml_flows.analysis.timeline import Frame, as_frame


@dataclass
class Pairs:
    """Ordered pairs (i, j, d) within a cutoff; both (i, j) and (j, i) present."""

    i: np.ndarray
    j: np.ndarray
    d: np.ndarray
    symbols: np.ndarray
    cutoff: float

    def between(self, a: str, b: str, cutoff: float | None = None) -> np.ndarray:
        """Mask of pairs with i of species a and j of species b (d < cutoff)."""
        mask = (self.symbols[self.i] == a) & (self.symbols[self.j] == b)
        if cutoff is not None:
            mask &= self.d < cutoff
        return mask


def frame_pairs(frame, cutoff: float) -> Pairs:
    """All ordered neighbour pairs of a frame (Frame, Structure or Atoms)."""
    frame = as_frame(frame)
    atoms = frame.to_atoms()
    i, j, d = neighbor_list("ijd", atoms, float(cutoff), self_interaction=False)
    return Pairs(i, j, d, np.asarray(frame.symbols), float(cutoff))


def pair_key(a: str, b: str) -> str:
    return f"{a}-{b}"


def parse_pair(text: str) -> tuple[str, str]:
    """'Li-S' or 'Li–S' -> ('Li', 'S')."""
    parts = text.replace("–", "-").split("-")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"a pair is written A-B, got {text!r}")
    return parts[0].strip(), parts[1].strip()


__all__ = ["Frame", "Pairs", "frame_pairs", "pair_key", "parse_pair"]
