"""Li slabs and coherent Li | Li6PS5Cl interfaces."""

from collections import Counter

import numpy as np
import pytest
from conftest import ionic_charge
from pymatgen.core import Composition

from haml_flows.builders.doping import DopingError
from haml_flows.builders.errors import BuilderError, UnknownParameterError
from haml_flows.builders.geometry import check_min_distances
from haml_flows.builders.interfaces import choose_candidate, li_lpsc
from haml_flows.builders.slabs import LI_BCC_LATTICE_PARAMETER, li_slab


@pytest.mark.parametrize(("facet", "per_layer"), [("100", 1), ("110", 2), ("111", 1)])
def test_li_slabs(facet, per_layer):
    slab = li_slab(facet, thickness=8.0)
    assert set(slab.composition.elements) == {slab[0].specie}
    assert np.isclose(slab.lattice.matrix[2, :2], 0).all()  # c along z
    assert check_min_distances(slab)[("Li", "Li")] == pytest.approx(
        LI_BCC_LATTICE_PARAMETER * np.sqrt(3) / 2, abs=1e-3
    )


def test_bad_facet():
    with pytest.raises(ValueError, match="unknown Li facet '210'"):
        li_slab("210")


def test_paper_size_interface(li_lpsc_112):
    s = li_lpsc_112
    p = s.properties
    assert abs(len(s) - 112) <= 6 and len(s) == p["atoms"] == 108
    assert p["mismatch"] <= 0.04
    counts = Counter(s.site_properties["wyckoff"])
    assert counts["Li_bcc"] == p["li_atoms"] == 56
    lpsc = Composition({el: n for el, n in s.composition.items()}) - Composition({"Li": p["li_atoms"]})
    assert lpsc.reduced_formula == "Li6PS5Cl" and p["lpsc_atoms"] == 52
    assert ionic_charge(s) == 0
    check_min_distances(s)
    for site in s:
        if site.specie.symbol == "P":
            assert len([n for n in s.get_neighbors(site, 2.3) if n.specie.symbol == "S"]) == 4


def test_reported_mismatch_matches_cells(li_lpsc_112):
    s = li_lpsc_112
    p = s.properties
    film = np.linalg.norm(p["film_vectors"], axis=1)
    substrate = np.linalg.norm(p["substrate_vectors"], axis=1)
    # the cell is the argyrodite's in-plane lattice
    assert np.allclose(sorted(s.lattice.abc[:2]), sorted(substrate), atol=1e-4)
    # the unstrained Li supercell vectors are bcc lattice vectors of Li(100): n * a
    assert np.allclose(film / LI_BCC_LATTICE_PARAMETER, np.round(film / LI_BCC_LATTICE_PARAMETER), atol=1e-6)
    assert p["mismatch"] == pytest.approx(np.max(np.abs(substrate / film - 1)), rel=1e-9)
    # the strained Li film: nearest in-plane Li-Li distance = a (1 + mismatch)
    li = [i for i, lab in enumerate(s.site_properties["wyckoff"]) if lab == "Li_bcc"]
    z = s.cart_coords[li, 2]
    layer = [i for i, zz in zip(li, z, strict=True) if abs(zz - z[0]) < 0.2]
    in_plane = min(s.get_distance(i, j) for i in layer for j in layer if i != j)
    assert in_plane == pytest.approx(LI_BCC_LATTICE_PARAMETER * (1 + p["mismatch"]), rel=1e-3)


def test_size_knob_small_cell():
    small = li_lpsc(atoms=60)
    assert abs(len(small) - 60) <= 3 and small.properties["mismatch"] <= 0.04
    assert ionic_charge(small) == 0
    check_min_distances(small)


def test_doped_interface_rule_and_determinism(li_lpsc_112):
    doped = li_lpsc(atoms=112, dopant="Se", concentration=0.25, site_rule="interface")
    assert doped.composition["Se"] == 1 and ionic_charge(doped) == 0
    (site,) = doped.properties["doping"]["sites"]
    planes = doped.properties["interface_z"]
    c = doped.lattice.c

    def dist(i):
        return min(min((doped.cart_coords[i, 2] - h) % c, (h - doped.cart_coords[i, 2]) % c) for h in planes)

    hosts = [i for i, lab in enumerate(doped.site_properties["wyckoff"]) if lab == "S_4d"]
    assert all(dist(site) <= dist(i) + 1e-9 for i in hosts)
    assert doped == li_lpsc(atoms=112, dopant="Se", concentration=0.25, site_rule="interface")
    a = li_lpsc(atoms=112, dopant="O", host="S_16e", concentration=0.125, site_rule="random", seed=3)
    b = li_lpsc(atoms=112, dopant="O", host="S_16e", concentration=0.125, site_rule="random", seed=3)
    assert a == b


def test_fluorine_on_sulfur_removes_argyrodite_li():
    doped = li_lpsc(atoms=112, dopant="F", host="S_4d", concentration=0.25)
    assert doped.properties["doping"]["li_vacancies"] == 1
    assert Counter(doped.site_properties["wyckoff"])["Li_bcc"] == 56
    assert ionic_charge(doped) == 0 and len(doped) == 107


def test_mismatch_impossible_names_closest_choice():
    with pytest.raises(ValueError, match=r"mismatch <= 4 %; closest feasible choice: smallest mismatch within the size: Li\(110\).*4\.55 %"):
        choose_candidate(112, facets=("110",))
    with pytest.raises(BuilderError, match=r"atoms=112 is below the smallest Li\(111\) \| LPSC\(001\) cell .* 178 atoms .*: use atoms >= 170"):
        li_lpsc(atoms=112, li_facet="111")


def test_concentration_impossible_in_cell():
    with pytest.raises(DopingError, match="closest feasible concentration is 0.25"):
        li_lpsc(atoms=112, dopant="Se", concentration=0.3)
    with pytest.raises(DopingError, match="unknown dopant 'Xx'"):
        li_lpsc(dopant="Xx")


SMALLEST_LI100 = (
    "is below the smallest Li(100) | LPSC(001) cell with mismatch <= 4 %, "
    "42 atoms (26 LPSC + 16 Li(100), mismatch 1.24 %): use atoms >= 40"
)


@pytest.mark.parametrize("atoms", [10, -5, 0])
def test_impossible_atom_count_names_the_smallest_cell(atoms):
    """It was a RecursionError (1,106 lines) from the facet hint calling itself."""
    with pytest.raises(BuilderError) as error:
        li_lpsc(atoms=atoms)
    assert str(error.value) == f"atoms={atoms} {SMALLEST_LI100}"
    assert isinstance(error.value, ValueError)


def test_smallest_requested_count_builds():
    assert len(li_lpsc(atoms=40)) == 42
    with pytest.raises(BuilderError, match="use atoms >= 40"):
        li_lpsc(atoms=39)


def test_atom_count_between_cells_names_both_neighbours():
    with pytest.raises(BuilderError, match=(
        r"^atoms=46: no Li\(100\) \| LPSC\(001\) cell with mismatch <= 4 % has 46 \+- 2 atoms; "
        r"nearest: 42 atoms \(26 LPSC \+ 16 Li\(100\), mismatch 1.24 %\) or 50 atoms"
    )):
        li_lpsc(atoms=46)
    with pytest.raises(BuilderError, match="atoms must be a whole number of atoms, got 10.5"):
        li_lpsc(atoms=10.5)


def test_spec_parameters_get_the_builders_message():
    """A spec's system.parameters reach the same checks as ``haml build``."""
    from haml_flows.spec import SpecError, SystemSpec
    from haml_flows.systems import build_system

    with pytest.raises(SpecError, match=r"^system.parameters: atoms=10 is below") as small:
        build_system(SystemSpec(builder="li_lpsc", parameters={"atoms": 10}))
    assert isinstance(small.value.__cause__, BuilderError)
    with pytest.raises(SpecError) as error:
        build_system(SystemSpec(builder="li_lpsc", parameters={"facet": "110"}))
    assert str(error.value) == (
        "system.parameters: unknown parameter 'facet' of builder li_lpsc (did you mean "
        "'li_facet'?); allowed: atoms, li_facet, max_mismatch, dopant, concentration, host, "
        "site_rule, seed, gap, atoms_tolerance"
    )
    assert isinstance(error.value.__cause__, UnknownParameterError)
