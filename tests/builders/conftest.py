"""Helpers shared by the builder tests."""

from __future__ import annotations

import pytest
from pymatgen.core import Structure

CHARGES = {"Li": 1, "P": 5, "S": -2, "Se": -2, "O": -2, "Cl": -1, "F": -1}


def ionic_charge(structure: Structure) -> int:
    """Net charge of an argyrodite-derived cell; metal Li (Li_bcc) counts zero."""
    labels = structure.site_properties.get("wyckoff", [None] * len(structure))
    return sum(
        0 if label == "Li_bcc" else CHARGES[site.specie.symbol]
        for site, label in zip(structure, labels, strict=True)
    )


@pytest.fixture(scope="session")
def li_lpsc_112():
    from haml_flows.builders.interfaces import li_lpsc

    return li_lpsc(atoms=112)
