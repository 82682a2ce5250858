"""A run's frames in time order, streamed one segment at a time.

The order is, for each cycle, the AIMD segment and then the MLP-MD segment.
Times are absolute simulated times in fs from the start of the first cycle:
an AIMD frame ``i`` of a cycle starting at ``t0`` is at ``t0 + i * dt_aimd``;
an MLP-MD frame with ``step`` ``s`` at ``t0 + aimd_fs + s * dt_mlpmd``.
Hand-over frames appear twice in the store (the last frame of a segment is the
first of the next); with ``dedupe`` only the first copy is yielded.

Only one segment's trajectory is held in memory at a time, so a run of 10^5+
frames streams with memory bounded by its largest segment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from pymatgen.core import Lattice, Structure
from pymatgen.core.trajectory import Trajectory

from haml_flows.queries import cycle_docs, trajectory
from haml_flows.schemas import CycleDoc


@dataclass
class Frame:
    """One configuration with its absolute simulated time."""

    time_fs: float
    symbols: list[str]
    frac_coords: np.ndarray
    lattice: np.ndarray
    cycle: int = 0
    stage: str = "static"
    temperature: float | None = None
    energy: float | None = None
    properties: dict = field(default_factory=dict, repr=False)
    """The frame's stored properties as read (energy, forces, velocities, ...)."""
    _atoms: Atoms | None = field(default=None, repr=False)

    @property
    def time_ps(self) -> float:
        return self.time_fs / 1000.0

    @property
    def cart_coords(self) -> np.ndarray:
        return self.frac_coords @ self.lattice

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.lattice)))

    def to_atoms(self) -> Atoms:
        """ASE atoms (periodic), cached."""
        if self._atoms is None:
            self._atoms = Atoms(
                symbols=self.symbols,
                scaled_positions=self.frac_coords,
                cell=self.lattice,
                pbc=True,
            )
        return self._atoms

    def to_structure(self) -> Structure:
        return Structure(Lattice(self.lattice), self.symbols, self.frac_coords)


def as_frame(obj: Frame | Structure | Atoms, time_fs: float = 0.0) -> Frame:
    """A Frame from a Frame, a pymatgen Structure or ASE Atoms."""
    if isinstance(obj, Frame):
        return obj
    if isinstance(obj, Structure):
        return Frame(
            time_fs,
            [site.specie.symbol for site in obj],
            np.array(obj.frac_coords, dtype=float),
            np.array(obj.lattice.matrix, dtype=float),
        )
    if isinstance(obj, Atoms):
        return Frame(
            time_fs,
            list(obj.get_chemical_symbols()),
            np.array(obj.get_scaled_positions(wrap=False), dtype=float),
            np.array(obj.cell[:], dtype=float),
        )
    raise TypeError(f"cannot make a frame from {type(obj).__name__}")


def _symbols(traj: Trajectory) -> list[str]:
    out = []
    for sp in traj.species:
        out.append(getattr(sp, "symbol", None) or str(sp))
    return out


def trajectory_frames(
    traj: Trajectory,
    t0_fs: float = 0.0,
    dt_fs: float = 1.0,
    cycle: int = 0,
    stage: str = "static",
) -> Iterator[Frame]:
    """Frames of one pymatgen Trajectory.

    A frame's time is ``t0_fs + step * dt_fs`` where ``step`` is the frame
    property 'step' when present (MLP-MD saves every n-th step), else the
    frame index.
    """
    if traj.coords_are_displacement:
        traj.to_positions()
    symbols = _symbols(traj)
    coords = np.asarray(traj.coords, dtype=float)
    lattice = np.asarray(traj.lattice, dtype=float)
    props = traj.frame_properties or [{} for _ in range(len(coords))]
    for index in range(len(coords)):
        p = props[index] if index < len(props) else {}
        step = p.get("step", index)
        lat = lattice if lattice.ndim == 2 else lattice[index]
        yield Frame(
            time_fs=t0_fs + float(step) * dt_fs,
            symbols=symbols,
            frac_coords=coords[index],
            lattice=lat,
            cycle=cycle,
            stage=stage,
            temperature=_float_or_none(p.get("temperature")),
            energy=_float_or_none(p.get("energy")),
            properties=p,
        )


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


@dataclass
class Segment:
    """Where a segment sits in time (from the CycleDocs only)."""

    cycle: int
    stage: str
    job_uuid: str
    start_fs: float
    end_fs: float
    time_step_fs: float
    engine: str = ""
    """The engine whose energies and forces the frames carry, e.g. 'GFN1-xTB'."""


def _step_and_engine(store, job_uuid: str, simulated_fs: float, steps: int
                     ) -> tuple[float, str]:
    doc = store.query_one(
        {"uuid": job_uuid}, properties=["output.time_step_fs", "output.engine"], load=False
    )
    output = (doc or {}).get("output") or {}
    step = output.get("time_step_fs")
    if step is None:
        step = simulated_fs / steps if steps else 1.0
    return float(step), str(output.get("engine", ""))


def segments(store, run_id: str, docs: list[CycleDoc] | None = None) -> list[Segment]:
    """The run's segments in time order, without loading any trajectory."""
    docs = cycle_docs(store, run_id) if docs is None else docs
    out = []
    for doc in docs:
        start = doc.cumulative_fs - doc.aimd_fs - doc.mlpmd_fs
        if doc.aimd_job is not None:  # a continued cycle has no AIMD segment
            out.append(
                Segment(
                    doc.cycle, "aimd", doc.aimd_job, start, start + doc.aimd_fs,
                    *_step_and_engine(store, doc.aimd_job, doc.aimd_fs, doc.aimd_steps),
                )
            )
        out.append(
            Segment(
                doc.cycle, "mlpmd", doc.mlpmd_job, start + doc.aimd_fs,
                doc.cumulative_fs,
                *_step_and_engine(store, doc.mlpmd_job, doc.mlpmd_fs, doc.mlpmd_steps),
            )
        )
    return out


def run_timeline(
    store,
    run_id: str,
    dedupe: bool = True,
    segment_list: list[Segment] | None = None,
) -> Iterator[Frame]:
    """Stream a run's frames in time order, one segment in memory at a time."""
    segment_list = segments(store, run_id) if segment_list is None else segment_list
    last_time = -np.inf
    for seg in segment_list:
        traj = trajectory(store, seg.job_uuid)
        for frame in trajectory_frames(
            traj, seg.start_fs, seg.time_step_fs, seg.cycle, seg.stage
        ):
            if dedupe and frame.time_fs <= last_time + 1e-9:
                continue
            last_time = frame.time_fs
            yield frame
        del traj


def frames_from_structures(
    structures: Iterable[Structure | Atoms], dt_fs: float = 1.0, t0_fs: float = 0.0
) -> Iterator[Frame]:
    """Frames at t0, t0 + dt, ... from structures or ASE atoms (tests, scripts)."""
    for index, obj in enumerate(structures):
        frame = as_frame(obj)
        frame.time_fs = t0_fs + index * dt_fs
        yield frame
