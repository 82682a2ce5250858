"""Fixtures for the production-engine tests: a tiny cell and a working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure


@pytest.fixture
def li_cell() -> Structure:
    """16-atom bcc Li (2x2x2 conventional cells), fast on GFN1-xTB."""
    return Structure(Lattice.cubic(3.44), ["Li", "Li"], [[0, 0, 0], [0.5, 0.5, 0.5]]) * (
        2, 2, 2
    )


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run the test inside its own temporary directory (engines write to cwd)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
