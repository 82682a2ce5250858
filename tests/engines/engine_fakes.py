"""Command lines of the fake engine executables kept in this folder."""

from __future__ import annotations

import sys
from pathlib import Path

FAKES = Path(__file__).parent
FAKE_MLP = f"{sys.executable} {FAKES.parent / 'mtp' / 'fake_mlp.py'}"


def fake_command(script: str) -> str:
    """The command line that runs one of the fake executables of this folder."""
    return f"{sys.executable} {FAKES / script}"
