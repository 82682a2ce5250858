"""Conversions between MD frames, ASE atoms and pymatgen structures.

Velocities travel between segments as the ``velocities`` site property in ASE
units (Angstrom per ASE time unit), which is what atomate2's ASE makers read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from pydantic import BaseModel, Field
from pymatgen.core import Structure
from pymatgen.core.trajectory import Trajectory
from pymatgen.io.ase import AseAtomsAdaptor

from haml_flows.schemas import AimdSegmentDoc, StageCost
from haml_flows.spec import MlpMdSpec


def bare_structure(structure: Structure) -> Structure:
    """A copy of the lattice, species and positions without site properties."""
    return Structure(structure.lattice, structure.species, structure.frac_coords)


def structure_with_velocities(atoms: Atoms) -> Structure:
    """A structure with the atoms' positions and velocities and nothing else."""
    structure = Structure(
        atoms.cell[:], atoms.get_chemical_symbols(), atoms.positions,
        coords_are_cartesian=True,
    )
    structure.add_site_property("velocities", atoms.get_velocities().tolist())
    return structure


def atoms_with_velocities(structure: Structure) -> Atoms:
    """ASE atoms carrying the structure's velocities when it has them."""
    atoms = AseAtomsAdaptor.get_atoms(bare_structure(structure))
    velocities = structure.site_properties.get("velocities")
    if velocities is not None:
        atoms.set_velocities(np.asarray(velocities, dtype=float))
    return atoms


def standard_frame(atoms: Atoms, form: str) -> Atoms:
    """A copy of ``atoms`` rotated so that the cell is ``form`` ('upper' or 'lower') triangular.

    ASE's Nose-Hoover (NPT) needs an upper-triangular cell and LAMMPS a lower
    one. Positions and velocities are rotated together, so the dynamics are
    the same; an orthorhombic cell is left unchanged.
    """
    rotated = atoms.copy()
    cell, rotation = atoms.cell.standard_form(form=form)
    rotated.set_cell(cell, scale_atoms=False)
    rotated.positions = atoms.positions @ rotation.T
    rotated.set_velocities(atoms.get_velocities() @ rotation.T)
    return rotated


def mlpmd_start(structure: Structure, mlpmd: MlpMdSpec) -> tuple[Structure, float | None]:
    """The frame an MLP-MD segment starts from: the AIMD's, cooled if too hot.

    A frame whose kinetic temperature is above ``mlpmd.start_temperature_factor``
    x ``mlpmd.temperature`` gets its velocities scaled to the target
    (directions kept); the second value is the temperature it had, or None
    when it was left alone.
    """
    velocities = structure.site_properties.get("velocities")
    if velocities is None:
        raise ValueError("MLP-MD needs a structure with 'velocities' from AIMD")
    target = mlpmd.temperature
    current = float(atoms_with_velocities(structure).get_temperature())
    if current <= mlpmd.start_temperature_factor * target:
        return structure, None
    scaled = structure.copy()
    scaled.add_site_property(
        "velocities",
        (np.asarray(velocities, dtype=float) * np.sqrt(target / current)).tolist(),
    )
    return scaled, current


def final_structure(trajectory: Trajectory) -> Structure:
    """The last frame of an MD trajectory with its velocities."""
    structure = bare_structure(trajectory[-1])
    velocities = trajectory.frame_properties[-1]["velocities"]
    structure.add_site_property("velocities", np.asarray(velocities).tolist())
    return structure


def trajectory_frames(trajectory: Trajectory) -> list[Atoms]:
    """Reference frames (energy, forces, stress) of a trajectory as ASE atoms."""
    frames = []
    for index in range(len(trajectory)):
        props = trajectory.frame_properties[index]
        atoms = AseAtomsAdaptor.get_atoms(bare_structure(trajectory[index]))
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=float(props["energy"]),
            forces=np.asarray(props["forces"], dtype=float),
            stress=np.asarray(props["stress"], dtype=float)
            if props.get("stress") is not None
            else None,
        )
        frames.append(atoms)
    return frames


class CostMeter:
    """Wall and process CPU seconds of a block, read as a StageCost."""

    def __init__(self) -> None:
        self.cost = StageCost(wall_seconds=0.0, cpu_seconds=0.0)


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes (mlp, ...)."""
    times = os.times()
    return time.process_time() + times.children_user + times.children_system


@contextmanager
def measure_cost() -> Iterator[CostMeter]:
    """Measure the wall and CPU time of the enclosed block."""
    meter = CostMeter()
    wall, cpu = time.perf_counter(), _cpu_seconds()
    try:
        yield meter
    finally:
        meter.cost = StageCost(
            wall_seconds=time.perf_counter() - wall,
            cpu_seconds=_cpu_seconds() - cpu,
        )


class SegmentFrames(BaseModel):
    """An MD segment read back from an external engine's files (VASP, CP2K, LAMMPS)."""

    structures: list[Structure] = Field(description="The saved frames, in order.")
    properties: list[dict] = Field(
        description="Per saved frame: energy, forces, stress, temperature, "
        "velocities, step, as the engine reports them."
    )
    structure: Structure = Field(
        description="The state handed over; site property 'velocities' in ASE units."
    )
    n_steps: int = Field(description="MD steps run.")
    simulated_fs: float = Field(description="Simulated time, fs.")
    temperature_start: float = Field(description="Temperature of the first frame, K.")
    temperature_end: float = Field(description="Temperature of the state handed over, K.")
    cpu_seconds: float | None = Field(
        None, description="CPU seconds the engine reported (all ranks); None: not reported."
    )
    cores: int | None = Field(None, description="Cores the engine reported.")

    def trajectory(self) -> Trajectory:
        """The saved frames with their properties."""
        return Trajectory.from_structures(
            self.structures, frame_properties=self.properties, constant_lattice=True
        )

    def aimd_doc(self, engine: str, time_step: float, cost: StageCost) -> AimdSegmentDoc:
        """The AimdSegmentDoc of this segment."""
        return AimdSegmentDoc(
            engine=engine,
            structure=self.structure,
            trajectory=self.trajectory(),
            n_steps=self.n_steps,
            time_step_fs=time_step,
            simulated_fs=self.simulated_fs,
            temperature_start=self.temperature_start,
            temperature_end=self.temperature_end,
            cost=cost,
        )
