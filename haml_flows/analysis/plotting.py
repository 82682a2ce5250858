"""What every figure of the analysis shares: the headless pyplot, integer ticks, saving, JSON.

matplotlib loads on the first figure, not with the analysis modules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def integer_ticks():
    """A tick locator for counts: integers only."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def save(fig, path: Path, rect: tuple[float, float, float, float] | None = None) -> None:
    """Lay the figure out (within ``rect`` of the figure, leaving room for a note below
    or a legend), write it as PNG (110 dpi) and close it."""
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)


def jsonable(value):
    """Plain JSON values: numpy arrays and numbers converted, NaN and inf as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if np.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
