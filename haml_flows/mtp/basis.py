"""Untrained Moment Tensor Potentials generated from the basis definition.

A moment tensor ``M_{mu,nu} = sum_j f_mu(r_ij) r_ij^{(x)nu}`` has level
``2 + 4 mu + nu``. A basis function is a complete scalar contraction of a
product of moments (a multigraph whose nodes are moments and whose edges are
contracted index pairs, without self-contractions) with total level <= the
requested level, of moments with mu <= 5 and nu <= 10 (MLIP's bounds).
A connected contraction is built from pairwise contractions of sub-tensors
chosen by MLIP's rule (``_Builder.split``); products of scalars are built as
products of existing scalar moments. This reproduces the counts of MLIP's
templates: basis functions and all moments (``alpha_moments_count``) at
every level 2-28, and basic moments and contraction steps
(``alpha_index_times``) at the levels checked against MLIP's files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import combinations, combinations_with_replacement, permutations, product
from math import factorial
from pathlib import Path

import numpy as np
from motep.io.mlip.mtp import write_mtp
from motep.potentials.mtp.data import BasisData, MTPData

from haml_flows.files import write_atomic
from haml_flows.mtp.grade import SPECIES_TAG

ALLOWED_LEVELS = tuple(range(2, 29, 2))
MAX_MOMENTS_PER_FUNCTION = 4
"""MLIP's templates contain products of at most four basic moments."""
MAX_MU = 5
"""Largest radial index of a moment in MLIP's templates (six radial functions)."""
MAX_NU = 10
"""Largest tensor rank of a moment in MLIP's templates. With MAX_MU, this only
matters from level 26 on, where it leaves MLIP's 1464 (26) and 2445 (28)
basis functions."""

Exps = tuple[int, int, int]


@cache
def _exponents(n: int) -> tuple[Exps, ...]:
    """Unique components of a symmetric rank-n tensor, MLIP order."""
    return tuple(
        (x, y, n - x - y) for x in range(n, -1, -1) for y in range(n - x, -1, -1)
    )


def _multinomial(e: Exps) -> int:
    return factorial(sum(e)) // (factorial(e[0]) * factorial(e[1]) * factorial(e[2]))


@dataclass(frozen=True)
class _Graph:
    """A scalar contraction: nodes (mu, nu) and edge multiplicities."""

    nodes: tuple[tuple[int, int], ...]
    edges: tuple[tuple[int, ...], ...]

    @property
    def level(self) -> int:
        return sum(2 + 4 * mu + nu for mu, nu in self.nodes)


def _edge_matrices(nus: Sequence[int]):
    """All loop-free symmetric multiplicity matrices with row sums ``nus``."""
    k = len(nus)
    pairs = list(combinations(range(k), 2))

    def rec(i: int, remaining: list[int], chosen: dict):
        if i == len(pairs):
            if all(r == 0 for r in remaining):
                mat = np.zeros((k, k), dtype=int)
                for (a, b), e in chosen.items():
                    mat[a, b] = mat[b, a] = e
                yield mat
            return
        a, b = pairs[i]
        for e in range(min(remaining[a], remaining[b]) + 1):
            remaining[a] -= e
            remaining[b] -= e
            chosen[(a, b)] = e
            yield from rec(i + 1, remaining, chosen)
            remaining[a] += e
            remaining[b] += e

    yield from rec(0, list(nus), {})


def _connected(mat: np.ndarray, subset: Sequence[int]) -> bool:
    subset = list(subset)
    seen = {subset[0]}
    stack = [subset[0]]
    while stack:
        a = stack.pop()
        for b in subset:
            if b not in seen and mat[a, b] > 0:
                seen.add(b)
                stack.append(b)
    return len(seen) == len(subset)


class _Fingerprint:
    """Values of contractions on fixed random neighbourhoods, for deduplication."""

    def __init__(self, max_mu: int, n_envs: int = 3, n_neighbors: int = 7) -> None:
        rng = np.random.default_rng(12345)
        self.vectors = rng.normal(size=(n_envs, n_neighbors, 3))
        self.gram = np.einsum("enx,emx->enm", self.vectors, self.vectors)
        self.radial = rng.uniform(0.5, 1.5, size=(n_envs, max_mu + 1, n_neighbors))

    def __call__(self, graph: _Graph) -> np.ndarray:
        letters = "abcd"
        operands: list = []
        subscripts: list[str] = []
        for i, (mu, _) in enumerate(graph.nodes):
            operands.append(self.radial[:, mu])
            subscripts.append("z" + letters[i])
        k = len(graph.nodes)
        for a, b in combinations(range(k), 2):
            e = graph.edges[a][b]
            if e:
                operands.append(self.gram**e)
                subscripts.append("z" + letters[a] + letters[b])
        expr = ",".join(subscripts) + "->z"
        return np.einsum(expr, *operands, optimize=True)


def _connected_graphs(
    level: int, fingerprint: _Fingerprint
) -> list[tuple[_Graph, np.ndarray]]:
    """Unique connected scalar contractions with level <= ``level``."""
    max_mu = min((level - 2) // 4, MAX_MU)
    types = [
        (mu, nu)
        for mu in range(max_mu + 1)
        for nu in range(min(level - 1 - 4 * mu, MAX_NU + 1))
    ]
    found: list[tuple[_Graph, np.ndarray]] = [
        (_Graph(((mu, 0),), ((0,),)), fingerprint(_Graph(((mu, 0),), ((0,),))))
        for mu, nu in types
        if nu == 0
    ]
    tensors = [t for t in types if t[1] > 0]
    for k in range(2, MAX_MOMENTS_PER_FUNCTION + 1):
        for combo in combinations_with_replacement(tensors, k):
            if sum(2 + 4 * mu + nu for mu, nu in combo) > level:
                continue
            if sum(nu for _, nu in combo) % 2:
                continue
            unique: list[np.ndarray] = []
            for mat in _edge_matrices([nu for _, nu in combo]):
                if not _connected(mat, range(k)):
                    continue
                graph = _Graph(tuple(combo), tuple(tuple(int(x) for x in r) for r in mat))
                value = fingerprint(graph)
                if any(np.allclose(value, u, rtol=1e-9, atol=0) for u in unique):
                    continue
                unique.append(value)
                found.append((graph, value))
    return found


class _Builder:
    """Accumulate basic components and ``alpha_index_times`` entries."""

    def __init__(self, basic_types: list[tuple[int, int]]) -> None:
        self.basic: list[tuple[int, int, int, int]] = []
        self.basic_index: dict[tuple[int, int, Exps], int] = {}
        for mu, nu in basic_types:
            for e in _exponents(nu):
                self.basic_index[(mu, nu, e)] = len(self.basic)
                self.basic.append((mu, *e))
        self.count = len(self.basic)
        self.times: list[tuple[int, int, int, int]] = []
        self.cache: dict[tuple, dict] = {}

    def _new(self) -> int:
        self.count += 1
        return self.count - 1

    @staticmethod
    def _canonical(graph: _Graph, subset: tuple[int, ...]) -> tuple[tuple, tuple[int, ...]]:
        """Canonical key of a sub-tensor and the node order it refers to."""
        best_key, best = None, None
        for perm in permutations(subset):
            nodes = tuple((*graph.nodes[n], _free(graph, n, subset)) for n in perm)
            edges = tuple(graph.edges[a][b] for a, b in combinations(perm, 2))
            key = (nodes, edges)
            if best_key is None or key < best_key:
                best_key, best = key, perm
        return best_key, best

    def _components(self, graph: _Graph, order: tuple[int, ...], subset) -> list:
        free = [_free(graph, n, subset) for n in order]
        return list(product(*[_exponents(f) for f in free]))

    def tensor(self, graph: _Graph, subset: tuple[int, ...]) -> tuple[dict, tuple]:
        """Return ``(component -> moment index, node order)`` of a sub-tensor.

        Components whose sums of products are identical (which is how the
        symmetries of the operands show up) share one moment, as in MLIP.
        """
        key, order = self._canonical(graph, subset)
        if key in self.cache:
            return self.cache[key], order
        if len(subset) == 1:
            (n,) = subset
            mu, nu = graph.nodes[n]
            comps = {(e,): self.basic_index[(mu, nu, e)] for e in _exponents(nu)}
            self.cache[key] = comps
            return comps, order
        left, right = self.split(graph, subset)
        lcomps, lorder = self.tensor(graph, left)
        rcomps, rorder = self.tensor(graph, right)
        cross = [
            (a, b, graph.edges[a][b]) for a in left for b in right if graph.edges[a][b]
        ]
        comps: dict = {}
        known: dict = {}
        for comp in self._components(graph, order, subset):
            exps = dict(zip(order, comp))
            terms: dict[tuple[int, int], int] = {}
            for choice in product(*[_exponents(e) for _, _, e in cross]):
                lex = {n: list(exps[n]) for n in left}
                rex = {n: list(exps[n]) for n in right}
                weight = 1
                for (a, b, _), t in zip(cross, choice):
                    weight *= _multinomial(t)
                    for d in range(3):
                        lex[a][d] += t[d]
                        rex[b][d] += t[d]
                i = lcomps[tuple(tuple(lex[n]) for n in lorder)]
                j = rcomps[tuple(tuple(rex[n]) for n in rorder)]
                pair = (min(i, j), max(i, j))
                terms[pair] = terms.get(pair, 0) + weight
            signature = frozenset(terms.items())
            if signature not in known:
                known[signature] = self._new()
                self.times.extend((i, j, m, known[signature]) for (i, j), m in terms.items())
            comps[comp] = known[signature]
        self.cache[key] = comps
        return comps, order

    def split(self, graph: _Graph, subset: tuple[int, ...]) -> tuple[tuple, tuple]:
        """The two parts whose contraction builds a sub-tensor (MLIP's rule).

        Peel off one basic moment whose removal leaves the rest connected:
        the one with the fewest contractions with the rest, then the
        smallest (mu, nu), then the rest with the smallest canonical key.
        A sub-graph of four or more moments is instead split into two
        connected parts of at least two moments each when some such split
        cuts fewer contractions than the peel (fewest cut, then smallest
        canonical keys), as MLIP does for M02=M03-M03=M02 at level 18.
        Reconstructed from MLIP's templates (at level 18 every moment
        equals one of MLIP's and vice versa); it reproduces MLIP's moment
        counts at levels 2-28.
        """
        edges = np.array(graph.edges)

        def cut(part: Sequence[int]) -> int:
            return sum(graph.edges[a][b] for a in part for b in subset if b not in part)

        peels = []
        for n in subset:
            rest = tuple(m for m in subset if m != n)
            if _connected(edges, rest):
                peels.append(((cut((n,)), graph.nodes[n], self._canonical(graph, rest)[0]), ((n,), rest)))
        best_cut, _, _ = min(p[0] for p in peels)
        best = min(peels)[1]
        halves = []
        for size in range(2, len(subset) - 1):
            for part in combinations(subset, size):
                other = tuple(m for m in subset if m not in part)
                k = cut(part)
                if k < best_cut and _connected(edges, part) and _connected(edges, other):
                    keys = sorted([self._canonical(graph, part)[0], self._canonical(graph, other)[0]])
                    halves.append(((k, keys), (part, other)))
        if halves:
            best = min(halves)[1]
        return best

    def scalar(self, graph: _Graph) -> int:
        comps, _ = self.tensor(graph, tuple(range(len(graph.nodes))))
        return next(iter(comps.values()))

    def times_product(self, i: int, j: int) -> int:
        index = self._new()
        self.times.append((i, j, 1, index))
        return index


def _free(graph: _Graph, n: int, subset: Sequence[int]) -> int:
    outside = (m for m in range(len(graph.nodes)) if m not in subset and m != n)
    return sum(graph.edges[n][m] for m in outside)


def _products(connected: list[tuple[_Graph, np.ndarray]], level: int):
    """Multisets (>= 2 factors) of connected scalars within level and moment limits.

    The connected scalars are distinct irreducible invariants, so distinct
    multisets of them are distinct functions.
    """
    n = len(connected)
    sizes = [len(g.nodes) for g, _ in connected]
    levels = [g.level for g, _ in connected]

    def rec(start: int, chosen: list[int], lev: int, size: int):
        if len(chosen) >= 2:
            yield tuple(chosen)
        for i in range(start, n):
            if lev + levels[i] <= level and size + sizes[i] <= MAX_MOMENTS_PER_FUNCTION:
                yield from rec(i, [*chosen, i], lev + levels[i], size + sizes[i])

    yield from rec(0, [], 0, 0)


@dataclass
class MomentBasisTemplate:
    """The MLIP basis description of one level."""

    alpha_index_basic: np.ndarray
    alpha_index_times: np.ndarray
    alpha_moment_mapping: np.ndarray
    alpha_moments_count: int
    radial_funcs_count: int


@cache
def moment_basis(level: int) -> MomentBasisTemplate:
    """Generate the MLIP-format moment basis of ``level`` (cached)."""
    _validate_level(level)
    fingerprint = _Fingerprint((level - 2) // 4)
    connected = _connected_graphs(level, fingerprint)
    connected.sort(key=lambda gv: (gv[0].level, len(gv[0].nodes), gv[0].nodes))
    basic_types = sorted({node for g, _ in connected for node in g.nodes})
    builder = _Builder(basic_types)

    scalar_index: dict[tuple[int, ...], int] = {}
    for i, (graph, _) in enumerate(connected):
        scalar_index[(i,)] = builder.scalar(graph)
    products = sorted(
        _products(connected, level),
        key=lambda c: (len(c), sum(connected[i][0].level for i in c), c),
    )
    for combo in products:
        head, rest = scalar_index[combo[:1]], scalar_index[combo[1:]]
        scalar_index[combo] = builder.times_product(head, rest)

    mapping = np.array(sorted(scalar_index.values()), dtype=np.int32)
    basic = np.array(builder.basic, dtype=np.int32).reshape(-1, 4)
    times = np.array(builder.times, dtype=np.int32).reshape(-1, 4)
    return MomentBasisTemplate(
        alpha_index_basic=basic,
        alpha_index_times=times,
        alpha_moment_mapping=mapping,
        alpha_moments_count=builder.count,
        radial_funcs_count=int(basic[:, 0].max()) + 1,
    )


def _validate_level(level: int) -> None:
    if level not in ALLOWED_LEVELS:
        msg = (
            f"level must be an even integer in 2..28 "
            f"(allowed values: {list(ALLOWED_LEVELS)}), got {level!r}"
        )
        raise ValueError(msg)


def untrained_mtp(
    level: int,
    species: Sequence[int],
    cutoff: float = 5.0,
    min_dist: float = 1.5,
    radial_basis_size: int = 8,
) -> MTPData:
    """Return an untrained MTP of ``level`` for ``species`` (atomic numbers)."""
    _validate_level(level)
    if cutoff <= min_dist:
        msg = f"cutoff ({cutoff}) must be larger than min_dist ({min_dist})"
        raise ValueError(msg)
    if radial_basis_size < 1:
        msg = f"radial_basis_size must be >= 1, got {radial_basis_size}"
        raise ValueError(msg)
    species = [int(s) for s in species]
    if not species or len(set(species)) != len(species):
        msg = f"species must be a non-empty list of distinct atomic numbers, got {species}"
        raise ValueError(msg)
    template = moment_basis(level)
    data = MTPData(
        version="1.1.0",
        potential_name=f"MTP_level{level}",
        radial_basis=BasisData(
            type="RBChebyshev",
            min=np.float64(min_dist),
            max=np.float64(cutoff),
            size=radial_basis_size,
        ),
        radial_funcs_count=template.radial_funcs_count,
        alpha_moments_count=template.alpha_moments_count,
        alpha_index_basic_count=len(template.alpha_index_basic),
        alpha_index_basic=template.alpha_index_basic.copy(),
        alpha_index_times_count=len(template.alpha_index_times),
        alpha_index_times=template.alpha_index_times.copy(),
        alpha_scalar_moments=len(template.alpha_moment_mapping),
        alpha_moment_mapping=template.alpha_moment_mapping.copy(),
    )
    data.species = species
    data.potential_tag = SPECIES_TAG + ",".join(str(s) for s in species)
    return data


def write_untrained_mtp(path: str | os.PathLike, **kwargs) -> Path:
    """Write ``untrained_mtp(**kwargs)`` to ``path`` whole or not at all; return the path."""
    data = untrained_mtp(**kwargs)
    return write_atomic(path, lambda tmp: write_mtp(str(tmp), data, legacy=True))
