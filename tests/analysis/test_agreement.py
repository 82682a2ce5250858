"""Agreement of two trajectories over a time window: known answers."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from haml_flows.analysis.agreement import agreement, rdf_overlap, window_profile
from haml_flows.analysis.timeline import frames_from_structures


def _li2s_like(a: float, n: int = 5, seed: int = 0):
    """Rock-salt LiS-like crystal: n frames with small random displacements."""
    rng = np.random.default_rng(seed)
    base = bulk("LiCl", "rocksalt", a=a).repeat((2, 2, 2))
    base.set_chemical_symbols(["Li" if s == "Li" else "S" for s in base.get_chemical_symbols()])
    frames = []
    for _ in range(n):
        atoms = base.copy()
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        frames.append(atoms)
    return frames


def test_identical_trajectories_agree_fully():
    frames = _li2s_like(5.0)
    pairs = [("Li", "S"), ("Li", "Li")]
    first = window_profile(frames_from_structures(frames, dt_fs=10.0), pairs, 40.0)
    second = window_profile(frames_from_structures(frames, dt_fs=10.0), pairs, 40.0)
    result = agreement(first, second)
    assert result["rdf_similarity"] == {"Li-S": pytest.approx(1.0), "Li-Li": pytest.approx(1.0)}
    # rock salt: 6 S at a/2 = 2.5 A (< 3.0 A cutoff) around each of the 8 Li
    assert result["bonds"]["Li-S"] == (pytest.approx(48.0), pytest.approx(48.0))
    assert result["frames"] == (5, 5)


def test_expanded_lattice_lowers_similarity_and_bonds():
    pairs = [("Li", "S")]
    near = window_profile(frames_from_structures(_li2s_like(5.0), dt_fs=10.0), pairs, 40.0)
    far = window_profile(frames_from_structures(_li2s_like(6.4), dt_fs=10.0), pairs, 40.0)
    again = window_profile(
        frames_from_structures(_li2s_like(5.0, seed=1), dt_fs=10.0), pairs, 40.0
    )
    assert agreement(near, again)["rdf_similarity"]["Li-S"] > 0.8
    result = agreement(near, far)
    assert result["rdf_similarity"]["Li-S"] < 0.5
    assert result["bonds"]["Li-S"][1] == 0.0


def test_window_and_sampling_select_frames():
    frames = frames_from_structures(_li2s_like(5.0, n=10), dt_fs=5.0)
    profile = window_profile(frames, [("Li", "S")], 30.0, every_fs=10.0)
    assert profile.n_frames == 4  # t = 0, 10, 20, 30 of 0, 5, ..., 45


def test_bad_window_names_the_problem():
    with pytest.raises(ValueError, match="window_fs"):
        window_profile([], [("Li", "S")], 0.0)
    with pytest.raises(ValueError, match="no frame"):
        window_profile([], [("Li", "S")], 10.0)


def test_overlap_of_disjoint_curves_is_zero():
    assert rdf_overlap(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 0.0
    assert rdf_overlap(np.zeros(3), np.zeros(3)) == 1.0
