"""Frames an MLP-MD segment keeps for labelling: graded above gamma_select.

As MLIP's ``select:threshold`` (``select:save-selected``): a frame whose
grade lies above the selection threshold and not above the breaking one is
extrapolating, but not so far that the segment stopped. A segment keeps at
most ``limit`` of them, the highest graded, at least ``spacing`` steps apart
(consecutive MD steps teach nearly the same thing).
"""

from __future__ import annotations

from collections.abc import Callable

from pymatgen.core import Structure
from pymatgen.core.trajectory import Trajectory


class SelectedFrames:
    """The bounded set of frames with gamma_select < grade <= gamma_break."""

    def __init__(
        self, gamma_select: float, gamma_break: float, limit: int, spacing: int = 1
    ) -> None:
        self.gamma_select = gamma_select
        self.gamma_break = gamma_break
        self.limit = limit
        self.spacing = max(1, spacing)
        self.kept: list[tuple[int, float, Structure, dict]] = []

    def offer(
        self, step: int, gamma: float, frame: Callable[[], tuple[Structure, dict]]
    ) -> None:
        """Keep the frame at ``step`` if it qualifies; ``frame()`` is called only then."""
        if self.limit == 0 or not self.gamma_select < gamma <= self.gamma_break:
            return
        if self.kept and step - self.kept[-1][0] < self.spacing:
            if gamma <= self.kept[-1][1]:
                return
            self.kept.pop()
        elif len(self.kept) >= self.limit:
            lowest = min(range(len(self.kept)), key=lambda i: self.kept[i][1])
            if gamma <= self.kept[lowest][1]:
                return
            self.kept.pop(lowest)
        structure, properties = frame()
        self.kept.append((step, gamma, structure, {**properties, "step": step, "gamma": gamma}))

    def drop_after(self, step: int) -> None:
        """Forget frames after ``step`` (a roll-back restored it)."""
        self.kept = [k for k in self.kept if k[0] <= step]

    def __len__(self) -> int:
        return len(self.kept)

    def trajectory(self) -> Trajectory | None:
        """The kept frames in step order (frame properties 'step', 'gamma', ...)."""
        if not self.kept:
            return None
        ordered = sorted(self.kept, key=lambda k: k[0])
        return Trajectory.from_structures(
            [k[2] for k in ordered], frame_properties=[k[3] for k in ordered],
            constant_lattice=True,
        )
