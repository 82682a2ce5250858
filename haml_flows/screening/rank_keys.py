"""The keys a screen's candidates can be ranked by (no imports: the command line reads them)."""

from __future__ import annotations

#: rank key -> (row field, True when larger is better)
RANK_KEYS: dict[str, tuple[str, bool]] = {
    "similarity": ("similarity", True),
    "bonds": ("bond_change_total", False),
    "cost": ("haml_cpu_h_per_ps", False),
    "speedup": ("speedup", True),
}
