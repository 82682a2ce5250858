"""How closely two trajectories agree over the same stretch of simulated time.

Used to put a HAML run next to a pure AIMD run from the same start: over a
time window both cover, each trajectory is reduced to its time-averaged
partial RDFs and mean bond counts, and the two reductions are compared.

RDF similarity of a pair is the overlap ``1 - sum|g1 - g2| / sum(g1 + g2)``
over the histogram bins: 1 for identical curves, 0 for curves that never
overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from haml_flows.analysis.bonds import DEFAULT_CUTOFFS, bond_counts
from haml_flows.analysis.rdf import RdfAccumulator
from haml_flows.analysis.timeline import Frame, as_frame


def sampled_frames(frames: Iterable, window_fs: float, every_fs: float) -> Iterator[Frame]:
    """The frames with ``time_fs <= window_fs``, at most one per ``every_fs``.

    A densely saved trajectory and a sparsely saved one then weigh time alike.
    """
    next_time = -np.inf
    for frame in frames:
        frame = as_frame(frame)
        if frame.time_fs > window_fs + 1e-9:
            break
        if frame.time_fs < next_time - 1e-9:
            continue
        next_time = frame.time_fs + every_fs
        yield frame


@dataclass
class WindowProfile:
    """Time-averaged structure of a trajectory over ``[0, window_fs]``."""

    window_fs: float
    n_frames: int
    r: np.ndarray
    rdf: dict[str, np.ndarray]
    bonds: dict[str, float]


def window_profile(
    frames: Iterable[Frame],
    pairs: list[tuple[str, str]],
    window_fs: float,
    *,
    every_fs: float = 10.0,
    cutoffs: dict[str, float] | None = None,
    r_max: float = 6.0,
    n_bins: int = 120,
) -> WindowProfile:
    """Average RDFs and bond counts over frames with ``time_fs <= window_fs``.

    Frames are sampled at most every ``every_fs`` so that a densely saved
    trajectory and a sparsely saved one weigh time alike.
    """
    if window_fs <= 0:
        raise ValueError(f"window_fs must be positive, got {window_fs}")
    cutoffs = DEFAULT_CUTOFFS if cutoffs is None else cutoffs
    accumulator = RdfAccumulator(pairs, r_max=r_max, n_bins=n_bins)
    bond_sums: dict[str, float] = {}
    n_frames = 0
    for frame in sampled_frames(frames, window_fs, every_fs):
        accumulator.add(frame)
        for key, count in bond_counts(frame, cutoffs).items():
            bond_sums[key] = bond_sums.get(key, 0.0) + count
        n_frames += 1
    if n_frames == 0:
        raise ValueError(f"no frame at or before {window_fs} fs")
    return WindowProfile(
        window_fs=window_fs,
        n_frames=n_frames,
        r=accumulator.r,
        rdf=accumulator.result(),
        bonds={key: total / n_frames for key, total in bond_sums.items()},
    )


def rdf_overlap(first: np.ndarray, second: np.ndarray) -> float:
    """``1 - sum|g1 - g2| / sum(g1 + g2)``; 1.0 when both are zero everywhere."""
    total = float(np.sum(first + second))
    if total == 0:
        return 1.0
    return 1.0 - float(np.sum(np.abs(first - second))) / total


def agreement(first: WindowProfile, second: WindowProfile) -> dict:
    """RDF overlap per pair and mean bond counts side by side."""
    rdf = {key: rdf_overlap(first.rdf[key], second.rdf[key]) for key in first.rdf}
    keys = sorted(set(first.bonds) | set(second.bonds))
    bonds = {
        key: (first.bonds.get(key, 0.0), second.bonds.get(key, 0.0))
        for key in keys
        if first.bonds.get(key, 0.0) or second.bonds.get(key, 0.0)
    }
    return {
        "rdf_similarity": rdf,
        "rdf_similarity_mean": float(np.mean(list(rdf.values()))) if rdf else None,
        "bonds": bonds,
        "frames": (first.n_frames, second.n_frames),
    }
