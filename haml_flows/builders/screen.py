"""Screens: one base RunSpec and named variants, expanded into RunSpec mappings.

A screen file holds only a top-level ``screen`` key::

    screen:
      name: lpsc_dopant_screen
      base: li_lpsc.yaml          # RunSpec file, relative to the screen file
      vary: system.parameters     # dotted path of the mapping to update
      variants: {se: {dopant: Se, ...}, f: {...}}

Each variant is the base with its keys merged into ``vary`` and the name
``<base name>_<variant key>``; the expanded mappings validate as RunSpecs.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

SCREEN_KEYS = {"name", "base", "vary", "variants"}


def expand_screen(path: str | Path) -> dict[str, dict]:
    """Variant name -> RunSpec mapping. Raises ValueError on a malformed screen."""
    path = Path(path)
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or set(data) != {"screen"}:
        raise ValueError(f"{path}: a screen file holds exactly one top-level key 'screen'")
    screen = data["screen"]
    unknown = set(screen) - SCREEN_KEYS
    missing = SCREEN_KEYS - set(screen)
    if unknown or missing:
        raise ValueError(
            f"{path}: screen keys {sorted(SCREEN_KEYS)}; unknown {sorted(unknown)}, "
            f"missing {sorted(missing)}"
        )
    base = yaml.safe_load((path.parent / screen["base"]).read_text())
    specs = {}
    for key, changes in screen["variants"].items():
        spec = copy.deepcopy(base)
        target = spec
        for part in screen["vary"].split("."):
            target = target.setdefault(part, {})
        target.update(changes)
        spec["name"] = f"{base['name']}_{key}"
        specs[spec["name"]] = spec
    return specs
