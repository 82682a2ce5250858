"""Partial radial distribution functions g_ab(r).

Pairs come from ASE's periodic neighbour list (any r_max, also beyond half
the cell); histogramming and the ideal-gas normalisation are done here:

    g_ab(r) = V * n_ab(r) / (N_a * N_b' * 4/3 pi (r_hi^3 - r_lo^3))

with n_ab the number of ordered pairs (i in a, j in b) in the shell and
N_b' = N_b - 1 when a == b. Frames can be accumulated (averaged).
"""

from __future__ import annotations

import numpy as np

from haml_flows.analysis.neighbors import frame_pairs
from haml_flows.analysis.timeline import as_frame


class RdfAccumulator:
    """Average g_ab(r) over any number of frames, for several pairs at once."""

    def __init__(
        self,
        pairs: list[tuple[str, str]],
        r_max: float = 6.0,
        n_bins: int = 120,
    ) -> None:
        self.pairs = [tuple(p) for p in pairs]
        self.r_max = float(r_max)
        self.edges = np.linspace(0.0, self.r_max, n_bins + 1)
        self.r = 0.5 * (self.edges[1:] + self.edges[:-1])
        self._shell = 4.0 / 3.0 * np.pi * (self.edges[1:] ** 3 - self.edges[:-1] ** 3)
        self._sum = {p: np.zeros(n_bins) for p in self.pairs}
        self.n_frames = 0
        self.times_fs: list[float] = []

    def add(self, frame) -> None:
        frame = as_frame(frame)
        pairs = frame_pairs(frame, self.r_max)
        symbols = np.asarray(frame.symbols)
        volume = frame.volume
        for a, b in self.pairs:
            n_a = int(np.sum(symbols == a))
            n_b = int(np.sum(symbols == b)) - (1 if a == b else 0)
            if n_a == 0 or n_b <= 0:
                continue
            d = pairs.d[pairs.between(a, b)]
            counts, _ = np.histogram(d, bins=self.edges)
            self._sum[(a, b)] += volume * counts / (n_a * n_b * self._shell)
        self.n_frames += 1
        self.times_fs.append(frame.time_fs)

    def result(self) -> dict[str, np.ndarray]:
        """{'A-B': g(r)} averaged over the frames added (zeros when none)."""
        n = max(self.n_frames, 1)
        return {f"{a}-{b}": s / n for (a, b), s in self._sum.items()}


def partial_rdf(
    frame, a: str, b: str, r_max: float = 6.0, n_bins: int = 120
) -> tuple[np.ndarray, np.ndarray]:
    """(r, g_ab(r)) of one frame (Frame, Structure or Atoms)."""
    acc = RdfAccumulator([(a, b)], r_max=r_max, n_bins=n_bins)
    acc.add(frame)
    return acc.r, acc.result()[f"{a}-{b}"]


def first_peak(r: np.ndarray, g: np.ndarray) -> float:
    """Position of the first maximum of g(r) above 1 (the nearest-neighbour shell)."""
    above = np.nonzero(g > 1.0)[0]
    if len(above) == 0:
        return float("nan")
    start = above[0]
    end = start
    while end + 1 < len(g) and g[end + 1] >= 1.0:
        end += 1
    return float(r[start + int(np.argmax(g[start : end + 1]))])
