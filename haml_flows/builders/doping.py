"""Substitutional doping of the argyrodite by a site rule.

A dopant replaces a fraction of one host site family (the ``wyckoff`` site
property set by :func:`haml_flows.builders.argyrodite.label_sites`). Isovalent
substitutions (Se, O for S; F for Cl) change nothing else; an aliovalent one
(F for S) removes one Li per dopant, the Li nearest the dopant, so the cell
stays neutral.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from pymatgen.core import Structure

from haml_flows.builders.argyrodite import OXIDATION_STATES
from haml_flows.builders.errors import BuilderError

DOPANT_CHARGES = {"Se": -2, "O": -2, "F": -1}
HOST_FAMILIES = {"S_16e": "S", "S_4d": "S", "Cl_4a": "Cl"}
ALLOWED_HOSTS = {
    "Se": ("S_4d", "S_16e"),
    "O": ("S_4d", "S_16e"),
    "F": ("Cl_4a", "S_4d", "S_16e"),
}
DEFAULT_HOST = {"Se": "S_4d", "O": "S_4d", "F": "Cl_4a"}
"""The first allowed host of each dopant: 0.25 on S_4d is Li6PS4.75Se0.25Cl."""
SITE_RULES = ("wyckoff", "random", "interface")


class DopingError(BuilderError):
    """A doping request the cell cannot represent; the message says what can."""


def feasible_concentrations(n_host: int) -> list[float]:
    """Fractions of a family of ``n_host`` sites that a cell can hold."""
    return [k / n_host for k in range(1, n_host + 1)]


def dopant_count(concentration: float, n_host: int, host: str) -> int:
    """Number of host sites to replace; raises when the cell cannot do it."""
    if not 0 < concentration <= 1:
        raise DopingError(
            f"concentration {concentration} of {host} must be in (0, 1]"
        )
    exact = concentration * n_host
    count = round(exact)
    if count == 0 or abs(exact - count) > 1e-6:
        closest = max(1, count) / n_host
        raise DopingError(
            f"concentration {concentration} of {host} cannot be represented: the "
            f"cell has {n_host} {host} sites (steps of {Fraction(1, n_host)}); "
            f"closest feasible concentration is {closest:g}"
        )
    return count


def _check_request(dopant: str, host: str, site_rule: str) -> None:
    if dopant not in DOPANT_CHARGES:
        raise DopingError(
            f"unknown dopant {dopant!r}; allowed: {sorted(DOPANT_CHARGES)}"
        )
    if host not in ALLOWED_HOSTS[dopant]:
        raise DopingError(
            f"unknown host site {host!r} for dopant {dopant}; allowed: "
            f"{list(ALLOWED_HOSTS[dopant])} (closest feasible: {DEFAULT_HOST[dopant]})"
        )
    if site_rule not in SITE_RULES:
        raise DopingError(
            f"unknown site rule {site_rule!r}; allowed: {list(SITE_RULES)}"
        )


def _distance_to_plane(structure: Structure, index: int, z) -> float:
    """Distance along c to the nearest plane at Cartesian height(s) z, periodic in c."""
    c = structure.lattice.c
    heights = [z] if np.isscalar(z) else list(z)
    distances = [(structure.cart_coords[index, 2] - h) % c for h in heights]
    return min(min(d, c - d) for d in distances)


def choose_sites(
    structure: Structure,
    host_indices: list[int],
    count: int,
    site_rule: str,
    seed: int = 0,
    interface_z=None,
) -> list[int]:
    """The host sites a rule picks, sorted.

    ``wyckoff``: the first ``count`` sites of the family in structure order;
    ``random``: drawn with ``numpy.random.default_rng(seed)``;
    ``interface``: nearest a plane at ``interface_z`` (a height or a list of
    heights, periodic in c); ties broken by index.
    """
    if site_rule == "wyckoff":
        return sorted(host_indices[:count])
    if site_rule == "random":
        rng = np.random.default_rng(seed)
        return sorted(int(i) for i in rng.choice(host_indices, count, replace=False))
    if interface_z is None:
        raise DopingError(
            "site rule 'interface' needs an interface; for bulk use 'wyckoff' or "
            "'random'"
        )
    ranked = sorted(
        host_indices, key=lambda i: (round(_distance_to_plane(structure, i, interface_z), 6), i)
    )
    return sorted(ranked[:count])


def substitute(
    structure: Structure,
    dopant: str,
    concentration: float,
    host: str | None = None,
    site_rule: str = "wyckoff",
    seed: int = 0,
    interface_z=None,
) -> Structure:
    """Replace ``concentration`` of the ``host`` family by ``dopant``.

    The structure needs the ``wyckoff`` site property. ``interface_z``
    defaults to ``structure.properties['interface_z']`` when present. Returns
    a new structure; ``properties['doping']`` records what was done.
    """
    host = host or DEFAULT_HOST.get(dopant, "")
    _check_request(dopant, host, site_rule)
    labels = structure.site_properties.get("wyckoff")
    if labels is None:
        raise DopingError("the structure has no 'wyckoff' site labels to dope")
    host_indices = [i for i, label in enumerate(labels) if label == host]
    if not host_indices:
        present = sorted({lab for lab in labels if lab in HOST_FAMILIES})
        raise DopingError(f"no {host} sites in this structure; present: {present}")
    count = dopant_count(concentration, len(host_indices), host)
    if interface_z is None:
        interface_z = structure.properties.get("interface_z")
    chosen = choose_sites(structure, host_indices, count, site_rule, seed, interface_z)

    doped = structure.copy()
    for i in chosen:
        doped.replace(i, dopant, properties={k: v[i] for k, v in structure.site_properties.items()})
    charge_change = DOPANT_CHARGES[dopant] - OXIDATION_STATES[HOST_FAMILIES[host]]
    removed = []
    if charge_change > 0:
        removed = _li_vacancies(doped, chosen, charge_change)
        doped.remove_sites(removed)
        chosen = [i - sum(1 for r in removed if r < i) for i in chosen]
    doped.properties = {
        **structure.properties,
        "doping": {
            "dopant": dopant,
            "host": host,
            "concentration": concentration,
            "site_rule": site_rule,
            "seed": seed,
            "sites": chosen,
            "li_vacancies": len(removed),
        },
    }
    return doped


def _li_vacancies(structure: Structure, dopant_sites: list[int], per_dopant: int) -> list[int]:
    """Argyrodite Li (Li_48h) to remove: for each dopant, its nearest ones not yet taken."""
    labels = structure.site_properties["wyckoff"]
    li = [i for i, label in enumerate(labels) if label == "Li_48h"]
    if len(li) < per_dopant * len(dopant_sites):
        raise DopingError("not enough argyrodite Li to compensate the dopant charge")
    taken: list[int] = []
    for site in dopant_sites:
        distances = [round(structure.get_distance(site, j), 6) for j in li]
        free = [j for _, j in sorted(zip(distances, li, strict=True)) if j not in taken]
        taken.extend(free[:per_dopant])
    return sorted(taken)


FORMULA_UNIT_SITES = {"S_16e": 4, "S_4d": 1, "Cl_4a": 1}
"""Sites of each host family per Li6PS5Cl formula unit (13 atoms)."""


def doped_li6ps5cl(
    supercell=(1, 1, 1),
    dopant: str | None = None,
    concentration: float = 0.25,
    host: str | None = None,
    site_rule: str = "wyckoff",
    seed: int = 0,
) -> Structure:
    """Bulk ordered Li6PS5Cl (52 atoms per cubic cell), optionally doped."""
    from haml_flows.builders.argyrodite import li6ps5cl

    structure = li6ps5cl(supercell=tuple(supercell))
    if dopant is None:
        return structure
    return substitute(structure, dopant, concentration, host, site_rule, seed)
