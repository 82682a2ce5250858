"""Coherent Li | Li6PS5Cl interfaces from pymatgen's interface tools.

pymatgen's ``CoherentInterfaceBuilder`` (ZSL lattice matching) supplies the
matches and builds the slabs; this module only chooses among them: the Li
facet, the in-plane supercell, the argyrodite termination (the first that
keeps every PS4 unit whole) and the two thicknesses, so that the cell is near
the requested size with the smallest lattice mismatch. The Li film is
strained onto the argyrodite; the cell is periodic in c (two interfaces, the
gap on both sides), like the paper's model.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from pymatgen.analysis.interfaces.coherent_interfaces import CoherentInterfaceBuilder
from pymatgen.analysis.interfaces.zsl import ZSLGenerator
from pymatgen.core import Structure

from haml_flows.builders.argyrodite import LPSC_LATTICE_PARAMETER, li6ps5cl
from haml_flows.builders.doping import (
    DEFAULT_HOST,
    FORMULA_UNIT_SITES,
    DopingError,
    _check_request,
    dopant_count,
    substitute,
)
from haml_flows.builders.errors import BuilderError
from haml_flows.builders.geometry import check_min_distances
from haml_flows.builders.slabs import LI_BCC_LATTICE_PARAMETER, li_bcc, parse_facet

LPSC_MILLER = (0, 0, 1)
PS_BOND = 2.3
MIN_LI_UNITS = 2
"""At least two Li oriented unit cells (four atomic layers for (100))."""


@dataclass(frozen=True)
class InterfaceCandidate:
    """One buildable Li | LPSC cell: a ZSL match and two thicknesses."""

    facet: str
    match_index: int
    lpsc_layers: int
    li_units: int
    lpsc_atoms: int
    li_atoms: int
    mismatch: float
    von_mises_strain: float
    area: float

    @property
    def atoms(self) -> int:
        return self.lpsc_atoms + self.li_atoms

    def brief(self) -> str:
        return (
            f"{self.atoms} atoms ({self.lpsc_atoms} LPSC + {self.li_atoms} Li({self.facet}), "
            f"mismatch {100 * self.mismatch:.2f} %)"
        )

    def describe(self) -> str:
        return (
            f"Li({self.facet}) | LPSC(001), {self.atoms} atoms "
            f"({self.lpsc_atoms} LPSC + {self.li_atoms} Li), mismatch "
            f"{100 * self.mismatch:.2f} %, area {self.area:.1f} A^2"
        )


def _mismatch(match) -> float:
    """Largest relative length change of the film's in-plane supercell vectors."""
    film = np.linalg.norm(np.asarray(match.film_sl_vectors), axis=1)
    substrate = np.linalg.norm(np.asarray(match.substrate_sl_vectors), axis=1)
    return float(np.max(np.abs(substrate / film - 1.0)))


def _areas(match) -> tuple[float, float]:
    """In-plane areas of the substrate (LPSC) and film (Li) supercells."""
    s = np.asarray(match.substrate_sl_vectors)
    f = np.asarray(match.film_sl_vectors)
    return float(np.linalg.norm(np.cross(s[0], s[1]))), float(np.linalg.norm(np.cross(f[0], f[1])))


def _ps4_whole(structure: Structure) -> bool:
    for i, site in enumerate(structure):
        if site.specie.symbol == "P":
            sulfur = [n for n in structure.get_neighbors(site, PS_BOND) if n.specie.symbol in ("S", "Se", "O")]
            if len(sulfur) != 4:
                return False
    return True


class _Matcher:
    """The builder of one facet, its PS4-preserving termination and atom counts per match."""

    def __init__(self, facet: str, max_area: float, lpsc_a: float, li_a: float, gap: float):
        self.facet = facet
        self.gap = gap
        li = li_bcc(li_a)
        li.add_site_property("wyckoff", ["Li_bcc"] * len(li))
        zsl = ZSLGenerator(
            max_area_ratio_tol=0.09,
            max_area=max_area,
            max_length_tol=0.05,
            max_angle_tol=0.02,
            bidirectional=True,
        )
        self.builder = CoherentInterfaceBuilder(
            substrate_structure=li6ps5cl(lpsc_a),
            film_structure=li,
            film_miller=parse_facet(facet),
            substrate_miller=LPSC_MILLER,
            zslgen=zsl,
        )
        self.matches = self.builder.zsl_matches
        self.termination = None
        self.counts: list[tuple[int, int]] = []
        if not self.matches:
            return
        for termination in self.builder.terminations:
            first = next(self._interfaces(termination, 1, 1))
            if _ps4_whole(first):
                self.termination = termination
                break
        if self.termination is None:
            return
        # atom counts scale with the supercell areas: measure them on the first match
        one = len(next(self._interfaces(self.termination, 1, 1)))
        two = len(next(self._interfaces(self.termination, 2, 1)))
        lpsc_area, li_area = _areas(self.matches[0])
        per_layer, per_unit = (two - one) / lpsc_area, (2 * one - two) / li_area
        self.counts = [
            (round(per_layer * _areas(m)[0]), round(per_unit * _areas(m)[1]))
            for m in self.matches
        ]

    def _interfaces(self, termination, lpsc_layers: int, li_units: int):
        return self.builder.get_interfaces(
            termination,
            gap=self.gap,
            vacuum_over_film=self.gap,
            film_thickness=li_units,
            substrate_thickness=lpsc_layers,
            in_layers=True,
        )

    def build(self, candidate: InterfaceCandidate):
        interfaces = self._interfaces(self.termination, candidate.lpsc_layers, candidate.li_units)
        for index, interface in enumerate(interfaces):
            if index == candidate.match_index:
                return interface
        raise RuntimeError("match index out of range")  # pragma: no cover


@lru_cache(maxsize=16)
def _matcher(facet: str, max_area: float, lpsc_a: float, li_a: float, gap: float) -> _Matcher:
    return _Matcher(facet, max_area, lpsc_a, li_a, gap)


def candidates(
    facets=("100",),
    max_atoms: int = 200,
    lpsc_a: float = LPSC_LATTICE_PARAMETER,
    li_a: float = LI_BCC_LATTICE_PARAMETER,
    gap: float = 2.4,
) -> list[InterfaceCandidate]:
    """Every buildable cell up to ``max_atoms`` atoms, over facets, matches and thicknesses."""
    # 26 argyrodite atoms per 47.3 A^2 is the sparsest layer; no larger area fits
    max_area = round(max_atoms / 26 * 47.3 + 1.0, 1)
    found = []
    for facet in facets:
        facet = "".join(str(i) for i in parse_facet(facet))
        matcher = _matcher(facet, max_area, lpsc_a, li_a, gap)
        for index, (match, (per_layer, per_unit)) in enumerate(zip(matcher.matches, matcher.counts)):
            strain = _von_mises(match)
            for layers in range(1, max_atoms // per_layer + 1):
                for units in range(MIN_LI_UNITS, (max_atoms - layers * per_layer) // per_unit + 1):
                    found.append(
                        InterfaceCandidate(
                            facet=facet,
                            match_index=index,
                            lpsc_layers=layers,
                            li_units=units,
                            lpsc_atoms=layers * per_layer,
                            li_atoms=units * per_unit,
                            mismatch=_mismatch(match),
                            von_mises_strain=strain,
                            area=_areas(match)[0],
                        )
                    )
    return found


def _von_mises(match) -> float:
    from pymatgen.analysis.elasticity.strain import Deformation

    return float(Deformation(match.match_transformation).green_lagrange_strain.von_mises_strain)


def _cells_within(window: tuple[int, int]) -> str:
    return f"{window[0]} +- {window[1]} atoms"


def choose_candidate(
    atoms: int,
    facets=("100",),
    max_mismatch: float = 0.04,
    atoms_tolerance: float = 0.05,
    lpsc_sites_ok=None,
    **kwargs,
) -> InterfaceCandidate:
    """The cell within ``atoms`` * (1 +- ``atoms_tolerance``) with mismatch <= ``max_mismatch``.

    Among those: the smallest mismatch (to 0.1 %), then the most even split
    between argyrodite and Li atoms, then the count nearest ``atoms``.
    ``lpsc_sites_ok(candidate)`` can reject cells (e.g. a dopant concentration
    they cannot represent). Raises BuilderError naming the closest feasible cell.
    """
    if isinstance(atoms, bool) or not isinstance(atoms, numbers.Integral):
        raise BuilderError(f"atoms must be a whole number of atoms, got {atoms!r}")
    window = max(2, round(atoms * atoms_tolerance))
    everything = candidates(facets, max_atoms=atoms + window, **kwargs) if atoms > 0 else []
    sized = [c for c in everything if abs(c.atoms - atoms) <= window]
    fitting = [c for c in sized if c.mismatch <= max_mismatch + 1e-9]
    usable = [c for c in fitting if lpsc_sites_ok is None or lpsc_sites_ok(c)]
    if usable:
        return min(
            usable,
            key=lambda c: (
                round(c.mismatch, 3),
                abs(c.lpsc_atoms - c.li_atoms) / c.atoms,
                abs(c.atoms - atoms),
                c.area,
            ),
        )
    facet_text = "/".join(f"({f})" for f in facets)
    where = f"Li{facet_text} | LPSC(001)"
    limit = f"mismatch <= {100 * max_mismatch:g} %"
    if fitting:
        raise DopingError(
            f"the doping cannot be represented in any cell of {where} within "
            f"{_cells_within((atoms, window))} with {limit} (e.g. {fitting[0].describe()}); "
            f"choose another concentration or size"
        )
    good = _fitting_cells(facets, max_mismatch, max(2 * atoms, LARGEST_SEARCH), **kwargs)
    if sized:
        lowest = min(sized, key=lambda c: (c.mismatch, abs(c.atoms - atoms)))
        hints = [f"smallest mismatch within the size: {lowest.describe()}"]
        if good:
            nearest = min(good, key=lambda c: abs(c.atoms - atoms))
            hints.append(f"nearest size meeting the mismatch: {nearest.describe()}")
        raise BuilderError(
            f"no cell of {where} within {_cells_within((atoms, window))} has {limit}; "
            f"closest feasible choice: " + "; ".join(hints)
        )
    if not good:
        others = [f for f in LI_FACET_CHOICES if f not in facets]
        other_cells = _fitting_cells(others, max_mismatch, max(2 * atoms, LARGEST_SEARCH), **kwargs)
        hint = f"no other facet either up to {max(2 * atoms, LARGEST_SEARCH)} atoms"
        if other_cells:
            best = min(other_cells, key=lambda c: (abs(c.atoms - atoms), c.mismatch))
            hint = f"closest feasible choice: {best.describe()}"
        raise BuilderError(
            f"li_facet: no lattice match (or no termination keeping PS4 whole) for "
            f"{where} with {limit} up to {max(2 * atoms, LARGEST_SEARCH)} atoms; {hint}"
        )
    smallest = min(good, key=lambda c: (c.atoms, c.mismatch))
    if atoms < smallest.atoms:
        lowest_request = min(
            a for a in range(1, smallest.atoms + 1)
            if smallest.atoms - a <= max(2, round(a * atoms_tolerance))
        )
        raise BuilderError(
            f"atoms={atoms} is below the smallest {where} cell with {limit}, "
            f"{smallest.brief()}: use atoms >= {lowest_request}"
        )
    below = max((c for c in good if c.atoms < atoms), key=lambda c: c.atoms)
    above = [c for c in good if c.atoms > atoms]
    nearest = [below] + ([min(above, key=lambda c: c.atoms)] if above else [])
    raise BuilderError(
        f"atoms={atoms}: no {where} cell with {limit} has {_cells_within((atoms, window))}; "
        f"nearest: " + " or ".join(c.brief() for c in nearest)
    )


LARGEST_SEARCH = 250
"""Cells up to this many atoms (or twice the request) are searched for hints."""


def _fitting_cells(facets, max_mismatch: float, max_atoms: int, **kwargs) -> list[InterfaceCandidate]:
    """Every cell of ``facets`` up to ``max_atoms`` atoms whose mismatch is allowed."""
    if not facets:
        return []
    return [
        c for c in candidates(tuple(facets), max_atoms=max_atoms, **kwargs)
        if c.mismatch <= max_mismatch + 1e-9
    ]


def _interface_planes(structure: Structure, labels: list[str]) -> list[float]:
    """Cartesian z of both interfaces: mid-gap between argyrodite and Li (periodic in c)."""
    z = structure.cart_coords[:, 2]
    c = structure.lattice.c
    lpsc = np.array([lab == "substrate" for lab in labels])
    top_lpsc, bottom_lpsc = z[lpsc].max(), z[lpsc].min()
    top_li, bottom_li = z[~lpsc].max(), z[~lpsc].min()
    return [float((top_lpsc + bottom_li) / 2), float(((top_li + bottom_lpsc + c) / 2) % c)]


def build_interface(candidate: InterfaceCandidate, lpsc_a: float = LPSC_LATTICE_PARAMETER,
                    li_a: float = LI_BCC_LATTICE_PARAMETER, gap: float = 2.4) -> Structure:
    """The Li | LPSC structure of a candidate, with its mismatch and strain in ``properties``."""
    candidates([candidate.facet], max_atoms=candidate.atoms, lpsc_a=lpsc_a, li_a=li_a, gap=gap)
    max_area = round(candidate.atoms / 26 * 47.3 + 1.0, 1)
    matcher = _matcher(candidate.facet, max_area, lpsc_a, li_a, gap)
    interface = matcher.build(candidate)
    labels = interface.site_properties["interface_label"]
    structure = Structure(
        interface.lattice,
        interface.species,
        interface.frac_coords,
        site_properties={"wyckoff": list(interface.site_properties["wyckoff"])},
    )
    match = matcher.matches[candidate.match_index]
    structure.properties = {
        "builder": "li_lpsc",
        **asdict(candidate),
        "atoms": len(structure),
        "termination": list(matcher.termination),
        "film_vectors": np.asarray(match.film_sl_vectors).round(6).tolist(),
        "substrate_vectors": np.asarray(match.substrate_sl_vectors).round(6).tolist(),
        "interface_z": _interface_planes(structure, labels),
        "gap": gap,
    }
    if len(structure) != candidate.atoms:
        raise RuntimeError(f"built {len(structure)} atoms, expected {candidate.atoms}")
    check_min_distances(structure)
    return structure


LI_FACET_CHOICES = ("100", "110", "111")


def li_lpsc(
    atoms: int = 112,
    li_facet: str = "100",
    max_mismatch: float = 0.04,
    dopant: str | None = None,
    concentration: float = 0.25,
    host: str | None = None,
    site_rule: str = "interface",
    seed: int = 0,
    gap: float = 2.4,
    atoms_tolerance: float = 0.05,
) -> Structure:
    """Li | Li6PS5Cl(001) of about ``atoms`` atoms, optionally doped.

    ``li_facet`` is '100', '110', '111' or 'auto' (all three). The cell is
    the one :func:`choose_candidate` picks; with a dopant, only cells whose
    argyrodite block can hold ``concentration`` of the ``host`` family count.
    ``properties`` holds the mismatch, the von Mises strain, the interface
    heights and, when doped, what was substituted.
    """
    facets = LI_FACET_CHOICES if li_facet == "auto" else (str(li_facet),)
    for facet in facets:
        parse_facet(facet)
    fits = None
    if dopant is not None:
        host = host or DEFAULT_HOST.get(dopant, "")
        _check_request(dopant, host, site_rule)

        def fits(candidate: InterfaceCandidate) -> bool:
            n_host = candidate.lpsc_atoms // 13 * FORMULA_UNIT_SITES[host]
            try:
                dopant_count(concentration, n_host, host)
            except DopingError:
                return False
            return True

    try:
        candidate = choose_candidate(
            atoms, facets, max_mismatch, atoms_tolerance, fits, gap=gap
        )
    except DopingError:
        best = choose_candidate(atoms, facets, max_mismatch, atoms_tolerance, gap=gap)
        dopant_count(concentration, best.lpsc_atoms // 13 * FORMULA_UNIT_SITES[host], host)
        raise
    structure = build_interface(candidate, gap=gap)
    if dopant is not None:
        structure = substitute(
            structure, dopant, concentration, host, site_rule, seed,
            interface_z=structure.properties["interface_z"],
        )
        structure.properties["lpsc_atoms"] -= structure.properties["doping"]["li_vacancies"]
        structure.properties["atoms"] = len(structure)
    return structure
