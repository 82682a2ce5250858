"""The small Li | Li6PS5Cl model the main job runs on."""

import numpy as np
import pytest

from haml_flows.systems import li6ps5cl_ordered, li_lpsc_mini


def test_argyrodite_composition_and_neutrality():
    lpsc = li6ps5cl_ordered()
    assert lpsc.composition.reduced_formula == "Li6PS5Cl"
    assert len(lpsc) == 52
    charges = {"Li": 1, "P": 5, "S": -2, "Cl": -1}
    assert sum(charges[s.specie.symbol] for s in lpsc) == 0


def test_mini_interface_is_small_and_sane():
    s = li_lpsc_mini()
    assert len(s) <= 60
    counts = s.composition.as_dict()
    assert counts["P"] == 2 and counts["S"] == 10 and counts["Cl"] == 2
    assert counts["Li"] == 12 + 16
    d = s.distance_matrix + np.eye(len(s)) * 100
    assert d.min() > 2.0
    p = [i for i, x in enumerate(s) if x.specie.symbol == "P"]
    for i in p:
        ps = sorted(d[i][j] for j, x in enumerate(s) if x.specie.symbol == "S")[:4]
        assert np.allclose(ps, 2.047, atol=0.01)


def test_mini_interface_is_deterministic_and_sized_by_layers():
    assert li_lpsc_mini() == li_lpsc_mini()
    assert len(li_lpsc_mini(li_layers=1)) == 30


def test_bad_builder_arguments():
    with pytest.raises(ValueError, match="li_layers"):
        li_lpsc_mini(li_layers=0)
