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


def with_priority(
    pick, n_frames: int, n: int | None, priority: list[int]
) -> list[int]:
    """``pick(n_frames, n)`` with the ``priority`` frames taking up to half of ``n``.

    The priority frames (the newest of them first) are kept, and ``pick``
    chooses the rest of the budget among the other frames. A HAML training
    set is mostly AIMD frames, a hundred or more per cycle, and a handful of
    MLP-MD frames the audit relabelled: left to ``pick``, the caps kept the
    newest AIMD frames and almost never an audited one, so the potential did
    not learn where its own MLP-MD went (audited error 0.2-0.3 eV/A after
    100 MLP-MD steps against 0.1-0.13 at the hand-over frame, mini
    Li | Li6PS5Cl gate of 2026-12-04).
    """
    if n is None or n_frames <= n:
        return list(range(n_frames))
    kept = sorted(priority)[-(n // 2):] if n // 2 else []
    taken = set(kept)
    others = [i for i in range(n_frames) if i not in taken]
    return sorted(kept + [others[i] for i in pick(len(others), n - len(kept))])
