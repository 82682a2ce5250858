"""Structure similarity in [0, 1] from per-species local-environment fingerprints.

Method (also in docs/analysis.md):

For every atom i of species A and every species B, the local environment is
the smooth radial density of B neighbours

    f_iB(r_k) = sum_j in B  fc(d_ij) * exp(-(r_k - d_ij)^2 / (2 sigma^2))

on a grid r_k in (0, r_max], with fc(d) = (cos(pi d / r_max) + 1) / 2 so that
near neighbours dominate. The fingerprint of species A is the average of f_iB
over its atoms (one block per B). The structure fingerprint concatenates the
blocks for all (A, B) species pairs of the union of both structures' species
(absent blocks are zero). The similarity is the cosine similarity of the two
fingerprints: all entries are >= 0, so it lies in [0, 1]; it is 1 for
identical structures (and for periodic images or translated copies), and
drops as bond lengths spread or coordination changes. Per-species
similarities (the A blocks alone) are returned as well.

Neighbours come from ASE's periodic neighbour list.
"""

from __future__ import annotations

import numpy as np

from haml_flows.analysis.neighbors import frame_pairs
from haml_flows.analysis.timeline import as_frame


def environment_fingerprint(
    frame, r_max: float = 6.0, sigma: float = 0.15, n_points: int = 120
) -> dict[tuple[str, str], np.ndarray]:
    """{(A, B): averaged smooth radial B-density around A atoms}."""
    frame = as_frame(frame)
    pairs = frame_pairs(frame, r_max)
    symbols = np.asarray(frame.symbols)
    grid = np.linspace(r_max / n_points, r_max, n_points)
    weight = 0.5 * (np.cos(np.pi * pairs.d / r_max) + 1.0)
    out = {}
    species = sorted(set(symbols))
    for a in species:
        n_a = int(np.sum(symbols == a))
        for b in species:
            mask = pairs.between(a, b)
            d = pairs.d[mask]
            w = weight[mask]
            if len(d):
                g = np.exp(-((grid[None, :] - d[:, None]) ** 2) / (2 * sigma**2))
                vec = (w[:, None] * g).sum(axis=0) / n_a
            else:
                vec = np.zeros(n_points)
            out[(a, b)] = vec
    return out


def _cosine(u: np.ndarray, v: np.ndarray) -> float:
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 and nv == 0:
        return 1.0
    if nu == 0 or nv == 0:
        return 0.0
    return float(np.clip(np.dot(u, v) / (nu * nv), 0.0, 1.0))


def similarity_details(
    first, second, r_max: float = 6.0, sigma: float = 0.15, n_points: int = 120
) -> dict:
    """{'similarity': s, 'per_species': {A: s_A}, 'method': ...}."""
    fa = environment_fingerprint(first, r_max, sigma, n_points)
    fb = environment_fingerprint(second, r_max, sigma, n_points)
    keys = sorted(set(fa) | set(fb))
    zero = np.zeros(n_points)
    u = np.concatenate([fa.get(k, zero) for k in keys])
    v = np.concatenate([fb.get(k, zero) for k in keys])
    per_species = {}
    for a in sorted({k[0] for k in keys}):
        ks = [k for k in keys if k[0] == a]
        per_species[a] = _cosine(
            np.concatenate([fa.get(k, zero) for k in ks]),
            np.concatenate([fb.get(k, zero) for k in ks]),
        )
    # exact 1.0 for identical inputs, despite rounding
    total = 1.0 if np.array_equal(u, v) else min(_cosine(u, v), 1.0 - 1e-12)
    return {
        "similarity": total,
        "per_species": per_species,
        "method": similarity_method(r_max, sigma),
    }


def similarity_method(r_max: float = 6.0, sigma: float = 0.15) -> str:
    """How the similarity is computed, in words (for reports and figures)."""
    return (
        f"cosine similarity of per-species averaged smooth radial "
        f"fingerprints (r_max={r_max} A, sigma={sigma} A, cosine cutoff)"
    )


def structure_similarity(first, second, **kwargs) -> float:
    """Similarity in [0, 1] between two structures (Frame, Structure or Atoms)."""
    return similarity_details(first, second, **kwargs)["similarity"]
