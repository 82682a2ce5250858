"""VASP reference engine: AIMD segments through atomate2's VASP ``MDMaker``.

The input set is atomate2's ``MDSetGenerator`` with the paper's settings
(PBE + PAW + Grimme D3 zero damping, ENCUT 520 eV, Gamma-only 1x1x1, NVT
Nose-Hoover, 1 fs, ISYM 0), and VASP runs under custodian with the MD
handlers of atomate2's ``MDMaker`` (``run_vasp``). Velocities continue from
the previous segment through the POSCAR (VASP's unit, Angstrom/fs); only a
structure without velocities gets a seeded Maxwell-Boltzmann draw.

The segment reads VASP's own outputs: frames (free energy, forces, stress)
from vasprun.xml, temperatures from OSZICAR, the final positions and
velocities from CONTCAR, and the CPU time and core count from OUTCAR.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import units
from ase.stress import full_3x3_to_voigt_6_stress
from atomate2.vasp.files import write_vasp_input_set
from atomate2.vasp.jobs.md import MDMaker
from atomate2.vasp.run import run_vasp
from atomate2.vasp.sets.core import MDSetGenerator
from jobflow import job
from pymatgen.core import Structure
from pymatgen.io.vasp import Kpoints, Oszicar, Outcar, Poscar, Vasprun

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


def read_vasp_md(directory: str | Path, time_step: float) -> SegmentFrames:
    """Frames, final state, temperatures and cost of a finished VASP MD run.

    The start temperature is OSZICAR's first; the end temperature is that of
    the CONTCAR velocities, the state the next segment starts from.

    Stresses are converted to ASE's convention (Voigt order, eV/Angstrom^3,
    tension positive); velocities to ASE units. ``cpu_seconds`` is OUTCAR's
    "Total CPU time used" (one MPI rank's) times the number of ranks.
    """
    directory = Path(directory)
    with warnings.catch_warnings():
        # POTCARs are checked by custodian, not needed to read frames
        warnings.filterwarnings("ignore", "No POTCAR file", UserWarning)
        vasprun = Vasprun(
            directory / "vasprun.xml",
            parse_dos=False, parse_eigen=False, parse_potcar_file=False,
        )
    steps = vasprun.ionic_steps
    if not steps:
        raise RuntimeError(f"{directory / 'vasprun.xml'} holds no ionic steps")
    temperatures = [s["T"] for s in Oszicar(directory / "OSZICAR").ionic_steps]
    if len(temperatures) != len(steps):
        raise RuntimeError(
            f"OSZICAR has {len(temperatures)} MD steps, vasprun.xml {len(steps)}"
        )
    structures, properties = [], []
    for step, temperature in zip(steps, temperatures):
        structures.append(bare_structure(step["structure"]))
        properties.append(
            {
                "energy": float(step["e_fr_energy"]),
                "forces": np.asarray(step["forces"]).tolist(),
                "stress": full_3x3_to_voigt_6_stress(
                    -np.asarray(step["stress"]) * KBAR_TO_EV_A3
                ).tolist(),
                "temperature": float(temperature),
            }
        )
    contcar = Poscar.from_file(directory / "CONTCAR", check_for_potcar=False)
    final = bare_structure(contcar.structure)
    if contcar.velocities is None:
        raise RuntimeError(f"{directory / 'CONTCAR'} holds no velocities")
    final.add_site_property(
        "velocities", (np.asarray(contcar.velocities) / units.fs).tolist()
    )
    stats = Outcar(directory / "OUTCAR").run_stats
    cores = int(stats.get("cores") or 1)
    return SegmentFrames(
        structures=structures,
        properties=properties,
        structure=final,
        n_steps=len(steps),
        simulated_fs=len(steps) * time_step,
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
