"""MLP-MD collapse guard: custodian-style handlers checked after every MD step.

A machine-learned potential outside its training data can drive the MD into
unphysical states faster than the extrapolation grade notices: forces that
are NaN or huge, two atoms pressed closer than any reference frame ever had
them, or a temperature that runs away from the thermostat target. Each
condition is a custodian ``ErrorHandler`` (``check()`` -> bool,
``correct()`` -> ``{"errors": [...], "actions": [...]}``). When one fires,
the guard rolls the atoms back to the oldest frame of a small ring of recent
frames that passed every check, and the segment hands over to AIMD early;
each firing is returned as a :class:`~haml_flows.schemas.FaultCorrection`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from custodian.custodian import ErrorHandler

from haml_flows.distances import pair_minimum_distances
from haml_flows.faults.checks import apply_handlers
from haml_flows.schemas import FaultCorrection
from haml_flows.spec import (
    CONTACT_RANGE,
    CONTACT_TOLERANCE,
    DISTANCE_MARGIN,
    MAX_FORCE,
    TEMPERATURE_BAND,
    TEMPERATURE_FACTOR,
)

RING_SIZE = 10
"""Recent frames kept for a roll-back; the oldest is the one restored."""


@dataclass
class Frame:
    """A trusted MD state: positions and momenta at one step."""

    step: int
    positions: np.ndarray
    momenta: np.ndarray


class FrameRing:
    """The last few trusted frames of a segment."""

    def __init__(self, size: int = RING_SIZE) -> None:
        if size < 1:
            raise ValueError(f"ring size must be >= 1, got {size}")
        self.frames: deque[Frame] = deque(maxlen=size)

    def push(self, step: int, atoms: Atoms) -> None:
        """Remember the atoms' state at ``step`` as trusted."""
        self.frames.append(Frame(step, atoms.positions.copy(), atoms.get_momenta().copy()))

    @property
    def oldest(self) -> Frame:
        """The frame a roll-back restores."""
        return self.frames[0]


class _AtomsHandler(ErrorHandler):
    """A handler that inspects the atoms of a running MD segment (its ``check`` subject)."""

    is_monitor = True
    raises_runtime_error = False

    def prepare(self, atoms: Atoms) -> None:
        """Get ready to watch ``atoms`` (the dynamics' own object) every step."""

    def describe(self) -> str:
        """What was found, for the record."""
        raise NotImplementedError

    def correct(self, atoms: Atoms) -> dict:
        """The roll-back itself is done by the guard, once for all handlers that fired."""
        return {
            "errors": [self.describe()],
            "actions": ["roll back to the last trusted frame; hand over to AIMD"],
        }

    def restore(self, atoms: Atoms) -> None:
        """Adjust the rolled-back state before it is handed over (nothing by default)."""


class BadForcesHandler(_AtomsHandler):
    """Forces that are not finite or larger than ``max_force`` (eV/Angstrom)."""

    def __init__(self, max_force: float = MAX_FORCE) -> None:
        self.max_force = max_force
        self._worst = 0.0

    def check(self, atoms: Atoms) -> bool:
        # the MD step has just computed them: read the results, skip ASE's state check
        results = getattr(atoms.calc, "results", {})
        forces = results["forces"] if "forces" in results else atoms.get_forces()
        if not np.all(np.isfinite(forces)):
            self._worst = float("nan")
            return True
        self._worst = float(np.abs(forces).max()) if forces.size else 0.0
        return self._worst > self.max_force

    def describe(self) -> str:
        if np.isnan(self._worst):
            return "non-finite forces"
        return f"force component {self._worst:.3g} eV/A above {self.max_force:g} eV/A"


class CloseContactHandler(_AtomsHandler):
    """Two atoms closer than their pair's limit, learned from the reference frames.

    Two rules, the looser of which sets a pair's limit:

    - ``margin`` times the pair's shortest training distance, capped at the
      sum of covalent radii (a pair the training set only saw far apart, e.g.
      the two Cl of a small cell, is not held to that distance): atoms
      pressed into each other;
    - with ``tolerance`` (Angstrom), the pair's shortest training distance,
      at most ``contact_range``, less ``tolerance``: no pair comes closer
      than the reference's own dynamics has ever brought it (the fidelity
      gate's closest-contact rule, against the run's own reference frames).
      A new bond the reference never made is left to the reference: the
      segment hands over, and the AIMD that follows teaches it.

    Distances are minimum-image vectors from rounded fractional differences,
    exact for every distance below half the smallest cell height; the
    tolerance rule's limits are kept under it, the margin rule's (a few
    Angstrom) must be. Pairs the training set never had get the smallest
    limit of all pairs.
    """

    def __init__(
        self,
        pair_minima: dict[tuple[int, int], float],
        margin: float = DISTANCE_MARGIN,
        tolerance: float | None = CONTACT_TOLERANCE,
        contact_range: float = CONTACT_RANGE,
    ) -> None:
        if not pair_minima:
            raise ValueError("pair_minima is empty: the training set has no atom pairs")
        if not 0 < margin <= 1:
            raise ValueError(f"distance margin must be in (0, 1], got {margin}")
        if tolerance is not None and tolerance < 0:
            raise ValueError(f"contact tolerance must be >= 0 A, got {tolerance}")
        self.margin = margin
        self.tolerance = tolerance
        self.margin_limits = {
            (a, b): margin * min(d, covalent_radii[a] + covalent_radii[b])
            for (a, b), d in pair_minima.items()
        }
        self.reference_limits = (
            {}
            if tolerance is None
            else {key: min(d, contact_range) - tolerance for key, d in pair_minima.items()}
        )
        self.limits = {
            key: max(limit, self.reference_limits.get(key, 0.0))
            for key, limit in self.margin_limits.items()
        }
        self._found = ""

    def prepare(self, atoms: Atoms) -> None:
        """The distance limit of every pair of these atoms, and their cell."""
        limit = _pair_matrix(self.limits, atoms.numbers)
        cell = atoms.cell.array
        self._cell = cell
        self._inverse = np.linalg.inv(cell) if atoms.cell.rank == 3 else None
        if self._inverse is not None:
            half_height = 0.5 / np.linalg.norm(self._inverse, axis=0).max()
            margin_limit = _pair_matrix(self.margin_limits, atoms.numbers)
            if margin_limit.max() >= half_height:
                raise ValueError(
                    f"distance limit {margin_limit.max():.2f} A is not below half the "
                    f"smallest cell height ({2 * half_height:.2f} A)"
                )
            limit = np.minimum(limit, np.maximum(margin_limit, half_height - 1e-3))
        upper = np.triu(np.ones_like(limit, dtype=bool), k=1)
        self._limit2 = np.where(upper, limit**2, -1.0)
        self._limit = limit

    def check(self, atoms: Atoms) -> bool:
        positions = atoms.positions
        if not np.all(np.isfinite(positions)):
            self._found = "non-finite positions"
            return True
        if self._inverse is None:
            vectors = positions[:, None, :] - positions[None, :, :]
        else:
            frac = positions @ self._inverse
            diff = frac[:, None, :] - frac[None, :, :]
            diff -= np.round(diff) * atoms.pbc
            vectors = diff @ self._cell
        dist2 = np.einsum("ijk,ijk->ij", vectors, vectors)
        close = np.argwhere(dist2 < self._limit2)
        if not len(close):
            return False
        a, b = close[np.argmin(dist2[close[:, 0], close[:, 1]])]
        self._found = (
            f"atoms {a} ({atoms[a].symbol}) and {b} ({atoms[b].symbol}) "
            f"{np.sqrt(dist2[a, b]):.3f} A apart, below {self._limit[a, b]:.3f} A "
            f"({self._rule(atoms.numbers[a], atoms.numbers[b])})"
        )
        return True

    def _rule(self, a: int, b: int) -> str:
        key = (int(min(a, b)), int(max(a, b)))
        if self.reference_limits.get(key, 0.0) > self.margin_limits.get(key, 0.0):
            return (f"{self.tolerance:g} A below the closest the reference dynamics "
                    "brought the pair")
        return f"{self.margin:g} x the shortest training distance of the pair"

    def describe(self) -> str:
        return self._found


def _pair_matrix(limits: dict[tuple[int, int], float], numbers: np.ndarray) -> np.ndarray:
    """``limits[(Z_i, Z_j)]`` for every pair of atoms; pairs without one get the smallest."""
    default = min(limits.values())
    return np.array(
        [[limits.get((min(a, b), max(a, b)), default) for b in numbers] for a in numbers]
    )


class OverheatingHandler(_AtomsHandler):
    """Temperature above ``factor`` times the thermostat target."""

    def __init__(self, target: float, factor: float = TEMPERATURE_FACTOR) -> None:
        self.limit = factor * target
        self._temperature = 0.0

    def check(self, atoms: Atoms) -> bool:
        self._temperature = float(atoms.get_temperature())
        return not np.isfinite(self._temperature) or self._temperature > self.limit

    def describe(self) -> str:
        return f"temperature {self._temperature:.0f} K above {self.limit:.0f} K"


class TemperatureBandHandler(_AtomsHandler):
    """Running temperature (mean over a window) outside ``target x (1 +- band)``.

    A 42-atom cell's instantaneous temperature scatters by about 13 % at
    300 K, so the mean over ``window`` steps is judged, once half the window
    has run. The frame handed over gets its velocities scaled to the target:
    the heat (or chill) the potential produced is not carried into AIMD.
    """

    def __init__(self, target: float, band: float = TEMPERATURE_BAND, window: int = 200) -> None:
        if not 0 < band < 1:
            raise ValueError(f"temperature band must be in (0, 1), got {band}")
        if window < 1:
            raise ValueError(f"temperature window must be >= 1 step, got {window}")
        self.target = target
        self.low, self.high = (1 - band) * target, (1 + band) * target
        self.temperatures: deque[float] = deque(maxlen=window)
        self.needed = max(1, window // 2)
        self.mean = float("nan")
        self._restored_from = float("nan")

    def check(self, atoms: Atoms) -> bool:
        self.temperatures.append(float(atoms.get_temperature()))
        if len(self.temperatures) < self.needed:
            return False
        self.mean = float(np.mean(self.temperatures))
        return not self.low <= self.mean <= self.high

    def describe(self) -> str:
        return (
            f"running temperature {self.mean:.0f} K (mean of the last "
            f"{len(self.temperatures)} steps) outside {self.low:.0f}-{self.high:.0f} K"
        )

    def correct(self, atoms: Atoms) -> dict:
        return {
            "errors": [self.describe()],
            "actions": [
                "roll back to the last trusted frame",
                f"velocities of the frame handed over scaled to {self.target:.0f} K",
                "hand over to AIMD",
            ],
        }

    def restore(self, atoms: Atoms) -> None:
        current = float(atoms.get_temperature())
        if current > 0:
            atoms.set_momenta(atoms.get_momenta() * np.sqrt(self.target / current))


class CollapseGuard:
    """Checks an MD segment every step and rolls it back when it collapses.

    ``check(step)`` runs every handler on the current state; if none fires,
    the state joins the ring of trusted frames and ``None`` is returned. If
    any fires, each firing handler's ``correct()`` is recorded, the atoms are
    restored to the oldest trusted frame (the segment's start when nothing
    was trusted yet) and the records are returned.
    """

    def __init__(
        self, atoms: Atoms, handlers: Sequence[_AtomsHandler], ring_size: int = RING_SIZE
    ) -> None:
        self.atoms = atoms
        self.handlers = list(handlers)
        for handler in self.handlers:
            handler.prepare(atoms)
        self.ring = FrameRing(ring_size)
        self.start = Frame(0, atoms.positions.copy(), atoms.get_momenta().copy())
        self.seconds = 0.0
        self.rolled_back_to: int | None = None

    @classmethod
    def for_training_set(
        cls,
        atoms: Atoms,
        training_frames: Sequence[Atoms],
        temperature: float,
        *,
        max_force: float = MAX_FORCE,
        distance_margin: float = DISTANCE_MARGIN,
        contact_tolerance: float | None = CONTACT_TOLERANCE,
        temperature_factor: float = TEMPERATURE_FACTOR,
        temperature_band: float | None = None,
        temperature_window: int = 200,
        ring_size: int = RING_SIZE,
    ) -> CollapseGuard:
        """The handlers; the distance limits from the reference dynamics' pair minima.

        Frames the reference only relabelled (``info['origin'] == 'audit'``:
        MLP-MD geometries) are left out of the minima: a limit says how close
        the reference's own dynamics ever brought a pair.
        """
        dynamics = [f for f in training_frames if f.info.get("origin", "aimd") == "aimd"]
        handlers = [
            BadForcesHandler(max_force),
            CloseContactHandler(
                pair_minimum_distances(dynamics or training_frames), distance_margin,
                contact_tolerance,
            ),
            OverheatingHandler(temperature, temperature_factor),
        ]
        if temperature_band is not None:
            handlers.append(
                TemperatureBandHandler(temperature, temperature_band, temperature_window)
            )
        return cls(atoms, handlers, ring_size)

    def check(self, step: int) -> list[FaultCorrection] | None:
        """None when the step is trusted; otherwise the corrections, after the roll-back."""
        begin = time.perf_counter()
        try:
            corrections = apply_handlers(self.handlers, self.atoms, step=step)
            if not corrections:
                self.ring.push(step, self.atoms)
                return None
            frame = self.ring.oldest if self.ring.frames else self.start
            self.atoms.set_positions(frame.positions)
            self.atoms.set_momenta(frame.momenta)
            fired = {c.handler for c in corrections}
            for handler in self.handlers:
                if type(handler).__name__ in fired:
                    handler.restore(self.atoms)
            self.rolled_back_to = frame.step
            return corrections
        finally:
            self.seconds += time.perf_counter() - begin
