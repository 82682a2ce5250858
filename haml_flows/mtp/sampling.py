"""Which frames of a growing training set a bounded stage looks at."""

from __future__ import annotations

import numpy as np


def evenly_spaced(n_frames: int, n: int | None) -> list[int]:
    """Indices of at most ``n`` of ``n_frames`` frames spread over the run, the last included."""
    if n is None or n_frames <= n:
        return list(range(n_frames))
    return [int(i) for i in np.unique(np.round(np.linspace(0, n_frames - 1, n)).astype(int))]


def recent_and_spread(n_frames: int, n: int | None) -> list[int]:
    """Indices of at most ``n`` frames: the newest half of ``n``, older ones evenly spaced.

    The newest frames are where the previous potential extrapolated; the
    spread keeps every earlier part of the run represented.
    """
    if n is None or n_frames <= n:
        return list(range(n_frames))
    recent = n // 2
    older = n_frames - recent
    return evenly_spaced(older, n - recent) + list(range(older, n_frames))
