"""Fixtures: small Cu/Al frames labelled with ASE's EMT (a cheap stand-in for AIMD)."""

from __future__ import annotations

import pytest
from ase import Atoms

from mtp_test_frames import labelled_frames


@pytest.fixture(scope="session")
def frames() -> list[Atoms]:
    """Twelve 16-atom Cu/Al frames."""
    return labelled_frames(12)


@pytest.fixture(scope="session")
def mlip_reference() -> dict:
    """MLIP's level-10 potential, its training set and the grades MLIP wrote.

    Downloaded from PyPI on first use; CI (``HAML_REQUIRE_PUBLIC_DATA=1``)
    fails when it cannot be had, a machine without the network skips.
    """
    import os

    from public_mlip_data import mlip_multi10

    try:
        return mlip_multi10()
    except OSError as exc:
        message = f"MLIP reference data from PyPI not available: {exc}"
        if os.environ.get("HAML_REQUIRE_PUBLIC_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
