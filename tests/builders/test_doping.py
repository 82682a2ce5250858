"""Substitutional doping: compositions, neutrality, site rules, bad requests."""

import numpy as np
import pytest
from pymatgen.core import Composition
from conftest import ionic_charge

from haml_flows.builders.argyrodite import li6ps5cl
from haml_flows.builders.doping import DopingError, doped_li6ps5cl, substitute
from haml_flows.builders.geometry import check_min_distances


@pytest.fixture(scope="module")
def bulk():
    return li6ps5cl()


@pytest.mark.parametrize(
    ("dopant", "host", "concentration", "formula"),
    [
        ("Se", "S_4d", 0.25, "Li24 P4 S19 Se1 Cl4"),  # Li6PS4.75Se0.25Cl
        ("Se", "S_16e", 0.25, "Li24 P4 S16 Se4 Cl4"),
        ("O", "S_4d", 0.5, "Li24 P4 S18 O2 Cl4"),
        ("F", "Cl_4a", 0.25, "Li24 P4 S20 Cl3 F1"),
        ("F", "S_4d", 0.25, "Li23 P4 S19 Cl4 F1"),  # one Li vacancy per F
        ("F", "S_16e", 0.125, "Li22 P4 S18 Cl4 F2"),
    ],
)
def test_composition_and_neutrality(bulk, dopant, host, concentration, formula):
    doped = substitute(bulk, dopant, concentration, host)
    assert doped.composition == Composition(formula)
    assert ionic_charge(doped) == 0
    check_min_distances(doped)
    labels = doped.site_properties["wyckoff"]
    for i in doped.properties["doping"]["sites"]:
        assert doped[i].specie.symbol == dopant and labels[i] == host


def test_wyckoff_rule_takes_first_of_family(bulk):
    doped = substitute(bulk, "Se", 0.25, "S_16e", site_rule="wyckoff")
    first = [i for i, lab in enumerate(bulk.site_properties["wyckoff"]) if lab == "S_16e"][:4]
    assert doped.properties["doping"]["sites"] == first


def test_random_rule_same_seed_same_structure(bulk):
    a = substitute(bulk, "O", 0.25, "S_16e", site_rule="random", seed=7)
    b = substitute(bulk, "O", 0.25, "S_16e", site_rule="random", seed=7)
    assert a == b and a.properties["doping"]["sites"] == b.properties["doping"]["sites"]
    others = {
        tuple(substitute(bulk, "O", 0.25, "S_16e", site_rule="random", seed=s)
              .properties["doping"]["sites"])
        for s in range(5)
    }
    assert len(others) > 1


def test_interface_rule_picks_nearest_plane(bulk):
    z = 0.0
    doped = substitute(bulk, "Se", 0.25, "S_16e", site_rule="interface", interface_z=z)
    c = bulk.lattice.c
    def dist(i):
        d = bulk.cart_coords[i, 2] % c
        return min(d, c - d)
    hosts = [i for i, lab in enumerate(bulk.site_properties["wyckoff"]) if lab == "S_16e"]
    chosen = doped.properties["doping"]["sites"]
    rest = set(hosts) - set(chosen)
    assert max(dist(i) for i in chosen) <= min(dist(i) for i in rest) + 1e-9


def test_vacancy_is_nearest_li(bulk):
    doped = substitute(bulk, "F", 0.25, "S_4d", site_rule="wyckoff")
    (site,) = doped.properties["doping"]["sites"]
    original = [i for i, lab in enumerate(bulk.site_properties["wyckoff"]) if lab == "S_4d"][0]
    li = [i for i, s in enumerate(bulk) if s.specie.symbol == "Li"]
    nearest = min(li, key=lambda j: (round(bulk.get_distance(original, j), 6), j))
    remaining = [s.coords for s in doped if s.specie.symbol == "Li"]
    assert not any(np.allclose(bulk[nearest].coords, r) for r in remaining)
    assert np.allclose(doped[site].coords, bulk[original].coords)


def test_bulk_builder():
    assert len(doped_li6ps5cl()) == 52
    assert doped_li6ps5cl(dopant="Se").composition["Se"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dopant": "Te", "concentration": 0.25}, r"unknown dopant 'Te'; allowed: \['F', 'O', 'Se'\]"),
        ({"dopant": "Se", "concentration": 0.25, "host": "Cl_4a"}, r"unknown host site 'Cl_4a'.*closest feasible: S_4d"),
        ({"dopant": "Se", "concentration": 0.3}, r"0.3 of S_4d cannot be represented.*4 S_4d sites.*closest feasible concentration is 0.25"),
        ({"dopant": "O", "concentration": 0.1, "host": "S_16e"}, r"closest feasible concentration is 0.125"),
        ({"dopant": "Se", "concentration": 0.0}, r"must be in \(0, 1\]"),
        ({"dopant": "Se", "concentration": 0.25, "site_rule": "nearest"}, r"unknown site rule 'nearest'"),
        ({"dopant": "Se", "concentration": 0.25, "site_rule": "interface"}, r"'interface' needs an interface"),
    ],
)
def test_bad_requests_say_what_is_feasible(bulk, kwargs, message):
    with pytest.raises(DopingError, match=message):
        substitute(bulk, **kwargs)
