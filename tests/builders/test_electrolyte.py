"""Li | LiFSI + DME packed with Packmol."""

import numpy as np
import pytest
from pymatgen.core import Composition

from haml_flows.builders.electrolyte import (
    AVOGADRO,
    MOLAR_MASS,
    composition_for,
    dme,
    fsi,
    li_lifsi_dme,
    packmol_available,
    verify_packing,
)

needs_packmol = pytest.mark.skipif(not packmol_available(), reason="packmol not on PATH")


def test_molecules():
    assert dme().composition == Composition("C4H10O2")
    assert fsi().composition == Composition("NS2O4F2") and fsi().charge == -1
    for molecule in (dme(), fsi()):
        d = molecule.distance_matrix + 10 * np.eye(len(molecule))
        assert d.min() > 1.0


def test_amounts_follow_molarity_and_density():
    # 1 M, 1.0 g/cm3: (1000 - 187.07) g DME per mol LiFSI = 9.02 DME per LiFSI
    assert composition_for(1.0, 1.0, 1) == 9
    assert composition_for(1.0, 1.0, 2) == 18
    assert composition_for(4.0, 1.3, 1) == round((1300 - 4 * 187.07) / 90.12 / 4)
    with pytest.raises(ValueError, match="closest feasible molarity is below 5.35 M"):
        composition_for(6.0, 1.0, 1)
    with pytest.raises(ValueError, match="must be positive"):
        composition_for(-1.0, 1.0, 1)


@pytest.fixture(scope="module")
def packed():
    return li_lifsi_dme(molarity=1.0, density=1.0, lifsi=1, li_supercell=3, seed=5)


@needs_packmol
def test_composition_and_density(packed):
    p = packed.properties
    expected = Composition({"Li": p["li_slab_atoms"]}) + Composition("LiNS2O4F2") + 9 * Composition("C4H10O2")
    assert packed.composition == expected and p["dme"] == 9
    mass = MOLAR_MASS["LiFSI"] + 9 * MOLAR_MASS["DME"]
    volume = packed.lattice.a * packed.lattice.b * p["liquid_height"]
    assert mass / AVOGADRO / volume * 1e24 == pytest.approx(1.0, rel=1e-6)
    # charge: one Li+ and one FSI- -> neutral liquid


@needs_packmol
def test_minimum_distance_guarantee(packed):
    assert verify_packing(packed, 1.8) >= 1.8
    ids = np.array(packed.site_properties["molecule"])
    slab = ids == -1
    liquid_to_slab = packed.distance_matrix[np.ix_(slab, ~slab)].min()
    assert liquid_to_slab >= 1.8


@needs_packmol
def test_same_seed_same_structure(packed):
    again = li_lifsi_dme(molarity=1.0, density=1.0, lifsi=1, li_supercell=3, seed=5)
    assert np.allclose(again.cart_coords, packed.cart_coords)


@needs_packmol
def test_verify_packing_rejects_close_molecules(packed):
    broken = packed.copy()
    ids = broken.site_properties["molecule"]
    first_dme = ids.index(max(ids))
    target = broken[ids.index(0)].coords  # the Li+ ion
    broken.translate_sites([first_dme], target + [1.0, 0, 0] - broken[first_dme].coords,
                           frac_coords=False, to_unit_cell=True)
    with pytest.raises(ValueError, match="packing failed: atoms .* of different molecules"):
        verify_packing(broken, 1.8)
