"""Bulk ordered Li6PS5Cl: composition, neutrality, distances, determinism."""

from collections import Counter

import numpy as np
from conftest import ionic_charge

from haml_flows.builders import argyrodite
from haml_flows.builders.argyrodite import li6ps5cl, li6ps5cl_disordered, li6ps5cl_primitive
from haml_flows.builders.geometry import check_min_distances, pair_minima


def test_disordered_cell_has_half_occupied_48h():
    disordered = li6ps5cl_disordered()
    assert len(disordered) == 76
    assert disordered.composition.reduced_formula == "Li6PS5Cl"
    li = [s for s in disordered if "Li" in s.species.as_dict()]
    assert len(li) == 48 and all(s.species.as_dict()["Li"] == 0.5 for s in li)


def test_ordered_composition_and_neutrality():
    primitive = li6ps5cl_primitive()
    assert len(primitive) == 13
    bulk = li6ps5cl()
    assert len(bulk) == 52
    assert bulk.composition.formula == "Li24 P4 S20 Cl4"
    assert ionic_charge(bulk) == 0 and ionic_charge(primitive) == 0
    assert Counter(bulk.site_properties["wyckoff"]) == {
        "Li_48h": 24, "S_16e": 16, "P_4b": 4, "S_4d": 4, "Cl_4a": 4
    }


def test_pair_minimum_distances():
    found = check_min_distances(li6ps5cl())
    assert abs(found[("P", "S")] - 2.05) < 0.01  # PS4 bond, x = 0.38
    assert found[("Li", "Li")] > 2.2  # never both halves of a 48h pair (1.78 A)
    assert found[("Li", "S")] > 2.3


def test_li_on_48h_sites_and_ps4_whole():
    bulk = li6ps5cl()
    half_sites = [s for s in li6ps5cl_disordered() if "Li" in s.species.as_dict()]
    half = np.array([s.coords for s in half_sites])
    for site in bulk:
        if site.specie.symbol == "Li":
            images = [
                np.linalg.norm(bulk.lattice.get_cartesian_coords(
                    bulk.lattice.get_fractional_coords(h - site.coords) - np.round(
                        bulk.lattice.get_fractional_coords(h - site.coords))))
                for h in half
            ]
            assert min(images) < 1e-3
        if site.specie.symbol == "P":
            assert len([n for n in bulk.get_neighbors(site, 2.3) if n.specie.symbol == "S"]) == 4


def test_ordering_is_deterministic():
    first = li6ps5cl()
    argyrodite._ordered_primitive.cache_clear()
    second = li6ps5cl()
    assert first == second
    assert np.allclose(first.frac_coords, second.frac_coords)


def test_supercell():
    big = li6ps5cl(supercell=(2, 1, 1))
    assert len(big) == 104 and ionic_charge(big) == 0
    assert pair_minima(big)[("Li", "Li")] > 2.2
