"""Reference checks inside an MLP-MD segment: the audit's rule applied while it runs.

The audit relabels a segment's frames after it ended; by then a segment
that drifted where the potential is wrong has already been kept. Measured
on the mini Li | Li6PS5Cl (docs/performance.md, "Why the solid's audit
fails"), the MLP's force error rises with the time into a segment while the
grade stays low, and crosses the audit's threshold within about 50 fs. A
reference check computes the reference engine's forces on the running
frame every few fs; the segment stops at the first check whose force RMSE
exceeds the threshold, rolled back to the last check that passed (the
segment's start when none had), and hands over to AIMD like a gamma break.
The failing frame, labelled, joins the next training set.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from jobflow import Maker
from pymatgen.core import Structure

from haml_flows.engines.audit import reference_calculator, reference_single_point
from haml_flows.engines.frames import bare_structure, structure_with_velocities
from haml_flows.faults.collapse import Frame
from haml_flows.schemas import ReferenceCheckDoc

logger = logging.getLogger(__name__)


@dataclass
class ReferenceCheck:
    """Every ``every`` steps, the running frame's MLP forces against the reference's.

    ``reference`` is the run's AIMD segment maker; ``max_force_rmse`` the
    threshold (eV/Angstrom, the audit's). ``check`` returns True when the
    frame passes (or the reference failed on it: recorded, the segment goes
    on), False when the segment must stop; ``restore`` then rolls the atoms
    back to the last passing check.
    """

    reference: Maker
    every: int
    max_force_rmse: float
    records: list[ReferenceCheckDoc] = field(default_factory=list)
    failed: list[tuple[Structure, dict]] = field(default_factory=list)
    seconds: float = 0.0
    last_passed: Frame | None = None
    _calculator: object = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"reference checks need a step interval >= 1, got {self.every}")
        try:
            self._calculator = reference_calculator(self.reference)
        except Exception as exc:  # noqa: BLE001 - each check then records the failure
            logger.warning("reference checks without a calculator: %s", exc)

    def due(self, step: int) -> bool:
        """A check falls on ``step`` (never on the segment's start, the reference's own frame)."""
        return step > 0 and step % self.every == 0

    def check(self, atoms: Atoms, step: int, gamma: float | None = None) -> bool:
        """Label the frame with the reference; False when its force RMSE is over the threshold."""
        begin = time.perf_counter()
        try:
            structure = bare_structure(structure_with_velocities(atoms))
            try:
                label = reference_single_point(self.reference, structure, self._calculator)
            except Exception as exc:  # noqa: BLE001 - a failed label is recorded
                logger.warning("reference check at step %d failed: %s", step, exc)
                self.records.append(ReferenceCheckDoc(
                    step=step, gamma=gamma, passed=None, error=f"{type(exc).__name__}: {exc}"
                ))
                return True
            # the step's own MLP forces and energy, kept by the calculator
            error = atoms.get_forces() - np.asarray(label["forces"])
            rmse = float(np.sqrt(np.mean(error**2)))
            passed = rmse <= self.max_force_rmse
            self.records.append(ReferenceCheckDoc(
                step=step,
                gamma=gamma,
                force_rmse=rmse,
                force_max_error=float(np.abs(error).max()),
                energy_error=float(
                    (atoms.get_potential_energy() - label["energy"]) / len(atoms)
                ),
                passed=passed,
            ))
            if passed:
                self.last_passed = Frame(step, atoms.positions.copy(), atoms.get_momenta().copy())
            else:
                self.failed.append((structure, {
                    "energy": float(label["energy"]),
                    "forces": np.asarray(label["forces"]).tolist(),
                    "stress": None if label["stress"] is None
                    else np.asarray(label["stress"]).tolist(),
                    "step": step, "kind": "check",
                }))
            return passed
        finally:
            self.seconds += time.perf_counter() - begin

    def restore(self, atoms: Atoms, start: Frame) -> int:
        """Put the atoms back at the last passing check (``start`` if none); its step."""
        frame = self.last_passed or start
        atoms.set_positions(frame.positions)
        atoms.set_momenta(frame.momenta)
        return frame.step

    @property
    def latest_rmse(self) -> float | None:
        """Force RMSE of the newest check that labelled its frame, for progress lines."""
        for record in reversed(self.records):
            if record.force_rmse is not None:
                return record.force_rmse
        return None
