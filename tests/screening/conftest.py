"""Screens on the Lennard-Jones reference: small, fast, real flows."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

DATA = Path(__file__).parents[1] / "data"


def write_screen(directory: Path, **screen) -> Path:
    """A base spec (tests/data/lj_small.yaml on bulk doped Li6PS5Cl) and a screen file."""
    base = yaml.safe_load((DATA / "lj_small.yaml").read_text())
    base["name"] = "lj_lpsc"
    base["system"] = {"builder": "li6ps5cl", "parameters": {}}
    base["stop"]["max_cycles"] = 1
    (directory / "base.yaml").write_text(yaml.safe_dump(base))
    body = {"name": "lj_screen", "base": "base.yaml", "vary": "system.parameters",
            "dopants": ["Se", "O"], "concentrations": [0.25], "seeds": [1, 2]}
    body.update(screen)
    body = {k: v for k, v in body.items() if v is not None}
    path = directory / "screen.yaml"
    path.write_text(yaml.safe_dump({"screen": body}))
    return path


@pytest.fixture
def screen_file():
    """The function that writes a base spec and a screen file into a directory."""
    return write_screen


@pytest.fixture
def clients(haml_settings, job_store):
    """Settings, JobStore, a reset LaunchPad and the pymongo database of one test."""
    from haml_flows.database.stores import connect
    from haml_flows.database.stores import make_launchpad

    launchpad = make_launchpad(haml_settings)
    launchpad.reset("", require_password=False)
    db = connect(haml_settings)
    yield haml_settings, job_store, launchpad, db
    db.client.close()
