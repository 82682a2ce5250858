"""Li | LiFSI + DME packed with Packmol."""

import numpy as np
import pytest
from pymatgen.core import Composition

from haml_flows.builders import electrolyte
from haml_flows.builders.electrolyte import (
    AVOGADRO,
    MOLAR_MASS,
    SURFACE_CLEARANCE,
    PackingError,
    composition_for,
    dme,
    fsi,
    li_lifsi_dme,
    packmol_available,
    verify_packing,
    verify_surface_clearance,
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


def _metal_distances(structure, symbols=None):
    """Distances (periodic) of the electrolyte atoms, or those of ``symbols``, to every metal atom."""
    ids = np.array(structure.site_properties["molecule"])
    metal = ids == -1
    chosen = ~metal
    if symbols is not None:
        chosen &= np.isin([site.specie.symbol for site in structure], symbols)
    return structure.distance_matrix[np.ix_(chosen, metal)]


@needs_packmol
@pytest.mark.parametrize("symbols", [["H"], ["O"], None])
def test_electrolyte_keeps_clear_of_the_metal(packed, symbols):
    assert SURFACE_CLEARANCE == 2.5
    assert _metal_distances(packed, symbols).min() >= SURFACE_CLEARANCE
    assert packed.properties["surface_clearance"] == SURFACE_CLEARANCE


@needs_packmol
@pytest.mark.parametrize("seed", [1, 5])
def test_salt_is_a_solvated_contact_ion_pair(seed):
    """The Li+ sat 2.1 A above the metal, 3.1 A from its nearest O, 5.6 A from its FSI-."""
    packed = li_lifsi_dme(seed=seed)
    ids = np.array(packed.site_properties["molecule"])
    symbols = np.array([site.specie.symbol for site in packed])
    (li,) = [i for i in np.flatnonzero(symbols == "Li") if ids[i] != -1]
    d = packed.distance_matrix[li]
    oxygen = np.flatnonzero(symbols == "O")
    shell = oxygen[d[oxygen] <= electrolyte.SHELL_CUTOFF]
    assert 4 <= len(shell) <= 5 and d[shell].min() >= 1.8
    fsi_id = ids[np.flatnonzero(symbols == "N")[0]]
    assert any(ids[o] == fsi_id for o in shell)  # contact ion pair
    assert sum(ids[o] != fsi_id for o in shell) >= 3  # ether O of three DME
    assert len({ids[o] for o in shell if ids[o] != fsi_id}) == 3
    assert d[ids == fsi_id].min() <= electrolyte.SHELL_CUTOFF
    assert d[symbols == "N"].min() < 5.0
    metal = ids == -1
    assert d[metal].min() > 8.0  # mid-liquid, not an adatom
    (shell_record,) = packed.properties["li_ion_shells"]
    assert shell_record["li_index"] == li
    assert sorted(shell_record["o_distances"]) == pytest.approx(sorted(d[shell_record["shell_o"]]), abs=1e-3)


@needs_packmol
def test_two_ion_pairs_each_get_a_shell():
    packed = li_lifsi_dme(lifsi=2, seed=5)
    shells = packed.properties["li_ion_shells"]
    assert len(shells) == 2
    for shell in shells:
        assert len(shell["o_distances"]) == 4
        assert max(shell["o_distances"]) <= electrolyte.SHELL_CUTOFF
        assert shell["metal_distance"] > 8.0


@needs_packmol
def test_surface_clearance_is_checked(packed):
    moved = packed.copy()
    ids = moved.site_properties["molecule"]
    hydrogen = next(i for i, site in enumerate(moved) if site.specie.symbol == "H")
    top = max(range(len(moved)), key=lambda i: moved.cart_coords[i, 2] if ids[i] == -1 else -1)
    target = moved.cart_coords[top] + [0.0, 0.0, 2.0]
    moved.translate_sites([hydrogen], target - moved[hydrogen].coords, frac_coords=False)
    with pytest.raises(PackingError, match=rf"atom {hydrogen} \(H\) is 2.00 A from metal atom {top}; surface_clearance is 2.5 A"):
        verify_surface_clearance(moved, SURFACE_CLEARANCE)


@needs_packmol
def test_packmol_timeout_is_one_message(monkeypatch):
    monkeypatch.setattr(electrolyte, "PACKMOL_TIMEOUT", 0.01)
    with pytest.raises(PackingError, match=r"^packmol did not finish packing 1 Li\+ .* within 0.01 s; try"):
        li_lifsi_dme()
