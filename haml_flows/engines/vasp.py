"""VASP reference engine: AIMD segments through atomate2's VASP ``MDMaker``.

The input set is atomate2's ``MDSetGenerator`` with the paper's settings
(PBE + PAW + Grimme D3 zero damping, ENCUT 520 eV, Gamma-only 1x1x1, NVT
Nose-Hoover, 1 fs, ISYM 0), and VASP runs under custodian with the MD
handlers of atomate2's ``MDMaker`` (``run_vasp``). Velocities continue from
the previous segment through the POSCAR (VASP's unit, Angstrom/fs); only a
structure without velocities gets a seeded Maxwell-Boltzmann draw.

The segment reads VASP's own outputs: frames (free energy, forces, stress,
kinetic energy) from vasprun.xml, the final positions and velocities from
CONTCAR, and the CPU time and core count from OUTCAR; each file plain or
compressed (atomate2 stores run folders gzipped: vasprun.xml.gz, ...).

Temperatures are ASE's, 2 E_kin / (3 N k_B), like every other engine's here:
the frames' from vasprun.xml's kinetic energy, the handed-over state's from
the CONTCAR velocities. VASP's own (OSZICAR's T=, the thermostat's target)
counts 3N - 3 degrees of freedom, N / (N - 1) times ASE's: 2 % at 50 atoms,
20 % at 6.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import units
from monty.os.path import zpath
from ase.stress import full_3x3_to_voigt_6_stress
from atomate2.vasp.files import write_vasp_input_set
from atomate2.vasp.jobs.md import MDMaker
from atomate2.vasp.run import run_vasp
from atomate2.vasp.sets.core import MDSetGenerator
from jobflow import job
from pymatgen.core import Structure
from pymatgen.io.vasp import Kpoints, Outcar, Poscar, Vasprun

from haml_flows.engines.commands import VASP
from haml_flows.engines.frames import SegmentFrames, atoms_with_velocities, bare_structure
from haml_flows.engines.reference import ExternalAimdSegmentMaker
from haml_flows.schemas import AimdSegmentDoc, StageCost

PAPER_INCAR = {
    "GGA": "PE",  # PBE with the PAW potentials of the input set
    "IVDW": 11,  # Grimme D3, zero damping
    "ENCUT": 520,
    "ISYM": 0,
    "ISPIN": 1,
    "MAGMOM": None,
    "LAECHG": False,
    "LVTOT": False,
    "LORBIT": None,
}
"""INCAR settings of the paper's AIMD on top of atomate2's MD input set."""

KBAR_TO_EV_A3 = 0.1 * units.GPa


def kinetic_temperature(kinetic_energy: float, n_atoms: int) -> float:
    """Temperature (K) of a kinetic energy (eV) over 3N degrees of freedom, as ASE counts."""
    return 2.0 * kinetic_energy / (3 * n_atoms * units.kB)


def vasp_file(directory: str | Path, name: str) -> Path:
    """``directory/name``, or its compressed copy (name.gz, .bz2, ...) where that is what exists."""
    return Path(zpath(Path(directory) / name))


def read_vasprun_frames(path: str | Path) -> tuple[list[Structure], list[dict]]:
    """The ionic steps of a VASP MD vasprun.xml (plain or compressed) as frames.

    Each frame: the structure and its free energy, forces, stress (ASE's
    convention: Voigt order, eV/Angstrom^3, tension positive; None where VASP
    wrote none, ISIF = 0) and temperature (:func:`kinetic_temperature` of
    VASP's kinetic energy of that step).
    """
    with warnings.catch_warnings():
        # POTCARs are checked by custodian, not needed to read frames
        warnings.filterwarnings("ignore", "No POTCAR file", UserWarning)
        vasprun = Vasprun(
            path, parse_dos=False, parse_eigen=False, parse_potcar_file=False,
        )
    steps = vasprun.ionic_steps
    if not steps:
        raise RuntimeError(f"{path} holds no ionic steps")
    if any("kinetic" not in step for step in steps):
        raise RuntimeError(f"{path} holds no kinetic energies: not a molecular dynamics run")
    structures, properties = [], []
    for step in steps:
        structure = bare_structure(step["structure"])
        structures.append(structure)
        properties.append(
            {
                "energy": float(step["e_fr_energy"]),
                "forces": np.asarray(step["forces"]).tolist(),
                "stress": full_3x3_to_voigt_6_stress(
                    -np.asarray(step["stress"]) * KBAR_TO_EV_A3
                ).tolist() if "stress" in step else None,
                "temperature": kinetic_temperature(float(step["kinetic"]), len(structure)),
            }
        )
    return structures, properties


def read_vasp_md(directory: str | Path, time_step: float) -> dict:
    """Frames, final state, temperatures and cost of a finished VASP MD run.

    The start temperature is the first frame's, the end temperature that of
    the CONTCAR velocities (the state the next segment starts from), both
    counted as ASE counts (:func:`kinetic_temperature`). Velocities come back
    in ASE units. ``cpu_seconds`` is OUTCAR's "Total CPU time used" (one MPI
    rank's) times the number of ranks.
    """
    structures, properties = read_vasprun_frames(vasp_file(directory, "vasprun.xml"))
    contcar = Poscar.from_file(vasp_file(directory, "CONTCAR"), check_for_potcar=False)
    final = bare_structure(contcar.structure)
    if contcar.velocities is None:
        raise RuntimeError(f"{vasp_file(directory, 'CONTCAR')} holds no velocities")
    final.add_site_property(
        "velocities", (np.asarray(contcar.velocities) / units.fs).tolist()
    )
    stats = Outcar(vasp_file(directory, "OUTCAR")).run_stats
    cores = int(stats.get("cores") or 1)
    return SegmentFrames(
        structures=structures,
        properties=properties,
        structure=final,
        n_steps=len(structures),
        simulated_fs=len(structures) * time_step,
        temperature_start=properties[0]["temperature"],
        # the state handed over is CONTCAR's, one step after the last frame
        temperature_end=float(atoms_with_velocities(final).get_temperature()),
        cpu_seconds=float(stats["Total CPU time used (sec)"]) * cores,
        cores=cores,
    )


@dataclass
class VaspAimdSegmentMaker(ExternalAimdSegmentMaker):
    """One NVT Nose-Hoover AIMD segment on VASP (PBE + D3), run by custodian.

    The command is ``HAML_VASP_CMD`` read on the worker (a command such as
    ``"srun vasp_std"`` or ``">>vasp_cmd<<"`` for the FireWorker's
    ``env.vasp_cmd``); ``vasp_cmd`` overrides it. It also serves Gamma-only
    runs unless ``vasp_gamma_cmd`` is given. ``incar_updates`` change the paper's INCAR,
    ``write_input_set_kwargs`` and ``run_vasp_kwargs`` go to atomate2's
    ``write_vasp_input_set`` and ``run_vasp`` (e.g. custodian options).
    """

    name: str = "aimd segment (vasp)"
    vasp_cmd: str | None = None
    vasp_gamma_cmd: str | None = None
    incar_updates: dict = field(default_factory=dict)
    write_input_set_kwargs: dict = field(default_factory=dict)
    run_vasp_kwargs: dict = field(default_factory=dict)
    engine_name: str = "VASP PBE+D3"

    def md_maker(self) -> MDMaker:
        """atomate2's VASP MDMaker with this segment's input set and handlers."""
        generator = MDSetGenerator(
            ensemble="nvt",
            nsteps=self.n_steps,
            time_step=self.time_step,
            start_temp=self.temperature,
            end_temp=self.temperature,
            user_incar_settings={**PAPER_INCAR, **self.incar_updates},
            user_kpoints_settings=Kpoints.gamma_automatic((1, 1, 1)),
        )
        maker = MDMaker(input_set_generator=generator)
        maker.write_input_set_kwargs.update(self.write_input_set_kwargs)
        maker.run_vasp_kwargs.update(self.run_vasp_kwargs)
        return maker

    def prepared_structure(self, structure: Structure) -> Structure:
        """The structure with velocities in VASP's units, drawn if missing."""
        prepared = bare_structure(structure)
        prepared.add_site_property(
            "velocities", (self.start_velocities(structure) * units.fs).tolist()
        )
        return prepared

    @job(data=["trajectory"])
    def make(self, structure: Structure) -> AimdSegmentDoc:
        """Write the inputs, run VASP under custodian and read the segment back."""
        command = VASP.require(self.vasp_cmd)
        gamma_command = VASP.require(self.vasp_gamma_cmd) if self.vasp_gamma_cmd else command
        wall = time.perf_counter()
        maker = self.md_maker()
        write_vasp_input_set(
            self.prepared_structure(structure),
            maker.input_set_generator,
            **maker.write_input_set_kwargs,
        )
        run_vasp(
            **{
                **maker.run_vasp_kwargs,
                "vasp_cmd": command,
                "vasp_gamma_cmd": gamma_command,
            }
        )
        segment = read_vasp_md(Path.cwd(), self.time_step)
        cost = StageCost(
            wall_seconds=time.perf_counter() - wall,
            cpu_seconds=segment.cpu_seconds,
            cores=segment.cores,
        )
        return segment.aimd_doc(self.engine_name, self.time_step, cost)
