"""A run's trajectory as one extended-XYZ file, for ``ase gui`` and OVITO.

The frames are the run's MD frames in time order, as ``timeline.run_timeline``
streams them: per cycle the AIMD segment, then the MLP-MD segment. Each is
written as it is read, so memory is bounded by the one segment the timeline
holds. Every frame carries what the store has for it, as its stage's engine
computed it, and nothing else: species, positions (Å), velocities as ``velo``
(Å/fs, OVITO's Velocity), ``energy`` (eV) and ``forces`` (eV/Å) when stored,
and the info keys ``time_fs``, ``stage``, ``cycle``, ``engine``,
``temperature_K`` and, on MLP-MD frames, ``gamma`` (the extrapolation grade).

A hand-over configuration is stored twice, as the last frame of one segment and
the first of the next; it is written once, as the AIMD copy (the reference
engine's energy and forces) when one of the two is AIMD, else the first copy.
The geometry optimization keeps no frames (only its start and end structures,
and the end is the first AIMD frame), and the audits' relabelled frames are
copies of MLP-MD frames: neither is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io.extxyz import write_extxyz

from haml_flows.analysis.timeline import Frame, run_timeline, segments

STAGE_NAMES = {"aimd": "AIMD", "mlpmd": "MLP-MD"}
QUANTITIES = ("energy", "forces", "velocities")
SAME_TIME_FS = 1e-6
"""Two frames closer in time than this are copies of one hand-over configuration."""


@dataclass
class ExportSummary:
    """What an export wrote: frames per stage, and what the store lacked."""

    path: Path
    frames: dict[str, int] = field(default_factory=dict)
    missing: dict[tuple[str, str], int] = field(default_factory=dict)
    merged: int = 0
    out_of_order: list[int] = field(default_factory=list)
    first_fs: float | None = None
    last_fs: float | None = None

    @property
    def total(self) -> int:
        return sum(self.frames.values())

    def add(self, atoms: Atoms) -> None:
        stage = atoms.info["stage"]
        self.frames[stage] = self.frames.get(stage, 0) + 1
        for quantity in _absent(atoms):
            self.missing[stage, quantity] = self.missing.get((stage, quantity), 0) + 1
        time_fs = atoms.info["time_fs"]
        if self.first_fs is None:
            self.first_fs = time_fs
        elif time_fs <= self.last_fs and atoms.info["cycle"] not in self.out_of_order:
            self.out_of_order.append(atoms.info["cycle"])
        self.last_fs = max(time_fs, self.last_fs if self.last_fs is not None else time_fs)

    def notes(self) -> list[str]:
        """One line per stage and quantity the store does not have."""
        lines = []
        for (stage, quantity), count in self.missing.items():
            name = STAGE_NAMES.get(stage, stage)
            lines.append(
                f"{name} frames carry no {quantity} ({count} of {self.frames[stage]}): "
                f"the {name} segments do not store them"
            )
        if self.out_of_order:
            cycles = ", ".join(str(c) for c in self.out_of_order)
            lines.append(
                f"cycle {cycles}: frames not later than the frame before them; an AIMD "
                "correction shortened the time step and the store keeps no per-frame "
                "time, so their time_fs assume the requested step"
            )
        return lines


def _absent(atoms: Atoms) -> list[str]:
    results = atoms.calc.results if atoms.calc is not None else {}
    present = {"energy": "energy" in results, "forces": "forces" in results,
               "velocities": "velo" in atoms.arrays}
    return [q for q in QUANTITIES if not present[q]]


def frame_atoms(frame: Frame, engine: str = "") -> Atoms:
    """ASE atoms of one stored frame: positions, velocities, energy, forces, info keys.

    Velocities are stored in ASE units and written in Å/fs; energy and forces
    go on a SinglePointCalculator, which the extxyz writer turns into the
    ``energy`` key and the ``forces`` column.
    """
    props = frame.properties
    atoms = Atoms(
        symbols=frame.symbols, scaled_positions=frame.frac_coords,
        cell=frame.lattice, pbc=True,
    )
    if props.get("velocities") is not None:
        atoms.new_array("velo", np.asarray(props["velocities"], dtype=float) * units.fs)
    results = {}
    if frame.energy is not None:
        results["energy"] = frame.energy
    if props.get("forces") is not None:
        results["forces"] = np.asarray(props["forces"], dtype=float)
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info.update(time_fs=frame.time_fs, stage=frame.stage, cycle=frame.cycle)
    if engine:
        atoms.info["engine"] = engine
    if frame.temperature is not None:
        atoms.info["temperature_K"] = frame.temperature
    if props.get("gamma") is not None:
        atoms.info["gamma"] = float(props["gamma"])
    return atoms


def one_per_time(frames: Iterable[Frame], summary: ExportSummary | None = None
                 ) -> Iterator[Frame]:
    """Frames with each time once: of two copies at one time the AIMD one, else the first.

    Holds one frame back to see whether the next is its copy; the number of
    copies dropped is counted in ``summary.merged``.
    """
    held: Frame | None = None
    for frame in frames:
        if held is not None and abs(frame.time_fs - held.time_fs) < SAME_TIME_FS:
            if frame.stage == "aimd" and held.stage != "aimd":
                held = frame
            if summary is not None:
                summary.merged += 1
            continue
        if held is not None:
            yield held
        held = frame
    if held is not None:
        yield held


def run_atoms(store, run_id: str, summary: ExportSummary | None = None) -> Iterator[Atoms]:
    """The run's frames as ASE atoms, in time order, one segment read at a time."""
    segment_list = segments(store, run_id)
    engines = {(s.cycle, s.stage): s.engine for s in segment_list}
    frames = run_timeline(store, run_id, dedupe=False, segment_list=segment_list)
    for frame in one_per_time(frames, summary):
        yield frame_atoms(frame, engines.get((frame.cycle, frame.stage), ""))


def write_frames(atoms_stream: Iterable[Atoms], path: Path,
                 summary: ExportSummary | None = None) -> ExportSummary:
    """Write the frames to ``path`` as extended XYZ, each as it arrives.

    The file appears under its name only when complete: it is written next to
    it as ``NAME.part`` and renamed at the end (removed on failure).
    """
    path = Path(path)
    summary = summary or ExportSummary(path)
    summary.path = path
    partial = path.with_name(path.name + ".part")
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            for atoms in atoms_stream:
                write_extxyz(handle, atoms)
                summary.add(atoms)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return summary


def export_run(store, run_id: str, path: Path) -> ExportSummary:
    """Stream a stored run's frames into one extended-XYZ file at ``path``."""
    summary = ExportSummary(Path(path))
    return write_frames(run_atoms(store, run_id, summary), path, summary)
