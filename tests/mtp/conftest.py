"""Fixtures: small Cu/Al frames labelled with ASE's EMT (a cheap stand-in for AIMD)."""

from __future__ import annotations

import pytest
from ase import Atoms

from mtp_test_frames import labelled_frames


@pytest.fixture(scope="session")
def frames() -> list[Atoms]:
    """Twelve 16-atom Cu/Al frames."""
    return labelled_frames(12)
