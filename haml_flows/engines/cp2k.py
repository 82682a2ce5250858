"""CP2K reference engine: AIMD segments through atomate2's CP2K MD input set.

For users without a VASP licence: PBE with GTH pseudopotentials and MOLOPT
basis sets (read from CP2K's own data files, e.g. Debian's
``/usr/share/cp2k``), Grimme D3, Gamma point only, NVT Nose-Hoover. The input
is atomate2's CP2K ``MDSetGenerator`` (the generator of its CP2K
``MDMaker``) with three additions pymatgen's input set has no switch for: the
D3 pair potential, the incoming velocities (``&VELOCITY``) and printing the
velocities of every step. CP2K runs under custodian through atomate2's
``run_cp2k`` (the cost is this process's wall and CPU time including CP2K's
when it runs here; with a launcher such as srun the CPU of remote ranks is not
seen); frames are read from CP2K's trajectory files
(``-pos-1.xyz``, ``-frc-1.xyz``, ``-vel-1.xyz``, ``-1.ener``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from ase import units
from ase.io import read
from atomate2.cp2k.files import write_cp2k_input_set
from atomate2.cp2k.run import run_cp2k
from atomate2.cp2k.sets.core import MDSetGenerator
from jobflow import job
from pymatgen.core import Structure
from pymatgen.io.cp2k.inputs import BasisFile, Keyword, PotentialFile, Section

from haml_flows.engines.commands import CP2K
from haml_flows.engines.frames import (
    SegmentFrames,
    atoms_with_velocities,
    bare_structure,
    measure_cost,
)
from haml_flows.engines.reference import (
    DEFAULTS,
    ExternalAimdSegmentMaker,
    segment_settings,
)
from haml_flows.schemas import AimdSegmentDoc
from haml_flows.settings import get_settings
from haml_flows.spec import ReferenceSpec

AU_VELOCITY = units.Bohr / (units._aut * units.second)
"""CP2K's velocity unit (bohr per atomic time unit) in ASE units."""
HARTREE_PER_BOHR = units.Hartree / units.Bohr
PROJECT = "CP2K"


class Cp2kInputError(ValueError):
    """The CP2K data files lack a basis set or potential the run needs."""


@cache
def _data_files(data_dir: str, basis_file: str, potential_file: str):
    directory = Path(data_dir)
    for name in (basis_file, potential_file):
        if not (directory / name).is_file():
            raise Cp2kInputError(
                f"CP2K data file {directory / name} not found; set HAML_CP2K_DATA_DIR "
                "to CP2K's data directory (Debian: /usr/share/cp2k)"
            )
    return (
        BasisFile.from_file(str(directory / basis_file)).objects,
        PotentialFile.from_file(str(directory / potential_file)).objects,
    )


def basis_and_potential(
    elements: list[str],
    data_dir: str,
    basis: str = "DZVP-MOLOPT-SR-GTH",
    potential: str = "GTH-PBE",
    basis_file: str = "BASIS_MOLOPT",
    potential_file: str = "GTH_POTENTIALS",
) -> dict:
    """Basis set and GTH potential objects per element, from CP2K's data files."""
    bases, potentials = _data_files(data_dir, basis_file, potential_file)
    chosen = {}
    for element in elements:
        b = [o for o in bases if str(o.element) == element and o.name == basis]
        p = [o for o in potentials if str(o.element) == element
             and (o.name or "").startswith(potential)]
        if not b or not p:
            missing = f"basis {basis}" if not b else f"potential {potential}"
            raise Cp2kInputError(
                f"no {missing} for {element} in {data_dir} ({basis_file}, {potential_file})"
            )
        chosen[element] = {"basis": b[0], "potential": p[0], "aux_basis": None}
    return chosen


def d3_section(parameter_file: str) -> Section:
    """Grimme D3 (zero damping) for PBE, CP2K's ``&VDW_POTENTIAL``."""
    pair = Section(
        "PAIR_POTENTIAL",
        keywords={
            "TYPE": Keyword("TYPE", "DFTD3"),
            "PARAMETER_FILE_NAME": Keyword("PARAMETER_FILE_NAME", parameter_file),
            "REFERENCE_FUNCTIONAL": Keyword("REFERENCE_FUNCTIONAL", "PBE"),
        },
    )
    return Section(
        "VDW_POTENTIAL",
        keywords={"POTENTIAL_TYPE": Keyword("POTENTIAL_TYPE", "PAIR_POTENTIAL")},
        subsections={"PAIR_POTENTIAL": pair},
    )


def velocity_section(velocities_ase: np.ndarray) -> Section:
    """``&VELOCITY`` lines in CP2K's default unit (bohr / atomic time unit)."""
    au = np.asarray(velocities_ase, dtype=float) / AU_VELOCITY
    return Section(
        "VELOCITY",
        keywords={
            str(i): Keyword(f"{v[0]:.15e}", f"{v[1]:.15e}", f"{v[2]:.15e}")
            for i, v in enumerate(au)
        },
    )


@dataclass
class HamlCp2kMDSetGenerator(MDSetGenerator):
    """atomate2's CP2K MD input set plus D3, incoming velocities and their output."""

    d3_parameter_file: str = "dftd3.dat"
    thermostat_time: float = DEFAULTS.thermostat_time

    def get_input_set(self, structure: Structure = None, *args, **kwargs):
        """The input set; velocities come from the ``velocities`` site property."""
        input_set = super().get_input_set(bare_structure(structure), *args, **kwargs)
        cp2k_input = input_set.cp2k_input
        cp2k_input["FORCE_EVAL"]["DFT"]["XC"].insert(d3_section(self.d3_parameter_file))
        velocities = structure.site_properties.get("velocities")
        if velocities is not None:
            cp2k_input["FORCE_EVAL"]["SUBSYS"].insert(velocity_section(velocities))
        cp2k_input["MOTION"]["MD"]["THERMOSTAT"].insert(
            Section("NOSE", keywords={"TIMECON": Keyword("TIMECON", self.thermostat_time)})
        )
        cp2k_input["MOTION"]["PRINT"].insert(
            Section("VELOCITIES", section_parameters=["ON"])
        )
        return input_set


def read_cp2k_md(directory: str | Path, time_step: float) -> SegmentFrames:
    """Frames (energy, forces), final state and temperatures of a CP2K MD run."""
    directory = Path(directory)
    positions = read(directory / f"{PROJECT}-pos-1.xyz", index=":", format="xyz")
    forces = read(directory / f"{PROJECT}-frc-1.xyz", index=":", format="xyz")
    velocities = read(directory / f"{PROJECT}-vel-1.xyz", index=":", format="xyz")
    energy_table = np.atleast_2d(np.loadtxt(directory / f"{PROJECT}-1.ener"))
    n = min(len(positions), len(forces), len(velocities), len(energy_table))
    if n == 0:
        raise RuntimeError(f"CP2K wrote no MD frames in {directory}")
    cell = _final_cell(directory)
    structures, properties = [], []
    for i in range(n):
        structure = Structure(cell, positions[i].get_chemical_symbols(),
                              positions[i].positions, coords_are_cartesian=True)
        v = velocities[i].positions * AU_VELOCITY
        properties.append(
            {
                "energy": float(energy_table[i, 4]) * units.Hartree,
                "forces": (forces[i].positions * HARTREE_PER_BOHR).tolist(),
                "stress": None,
                "temperature": float(energy_table[i, 3]),
                "velocities": v.tolist(),
            }
        )
        structures.append(structure)
    final = structures[-1].copy()
    final.add_site_property("velocities", properties[-1]["velocities"])
    return SegmentFrames(
        structures=structures,
        properties=properties,
        structure=final,
        n_steps=int(energy_table[n - 1, 0]),
        simulated_fs=float(energy_table[n - 1, 1]),
        temperature_start=properties[0]["temperature"],
        temperature_end=float(atoms_with_velocities(final).get_temperature()),
    )


def _final_cell(directory: Path) -> np.ndarray:
    from pymatgen.io.cp2k.inputs import Cp2kInput

    cell = Cp2kInput.from_file(directory / "cp2k.inp")["FORCE_EVAL"]["SUBSYS"]["CELL"]
    return np.array([[float(x) for x in cell[k].values] for k in ("A", "B", "C")])


@dataclass
class Cp2kAimdSegmentMaker(ExternalAimdSegmentMaker):
    """One NVT Nose-Hoover AIMD segment on CP2K (PBE + GTH + D3), under custodian.

    The command is ``HAML_CP2K_CMD`` read on the worker (a command such as
    ``"srun cp2k.psmp"`` or ``">>cp2k_cmd<<"``); ``cp2k_cmd`` overrides it.
    ``data_dir`` holds CP2K's BASIS_MOLOPT, GTH_POTENTIALS and dftd3.dat
    (None: ``HAML_CP2K_DATA_DIR`` of the worker).
    ``input_updates`` go to atomate2's input generator (e.g. ``cutoff``).
    """

    name: str = "aimd segment (cp2k)"
    thermostat_time: float = DEFAULTS.thermostat_time
    cp2k_cmd: str | None = None
    data_dir: str | None = None
    basis: str = "DZVP-MOLOPT-SR-GTH"
    cutoff: float = 400.0
    input_updates: dict = field(default_factory=dict)
    run_cp2k_kwargs: dict = field(default_factory=dict)
    engine_name: str = "CP2K PBE+D3"

    @classmethod
    def from_spec(cls, reference: ReferenceSpec) -> Cp2kAimdSegmentMaker:
        """The segment a spec's ``reference`` section asks for."""
        return cls(**segment_settings(reference), thermostat_time=reference.thermostat_time)

    def input_set_generator(self, structure: Structure) -> HamlCp2kMDSetGenerator:
        """atomate2's CP2K MD generator with this segment's settings."""
        data_dir = self.data_dir or get_settings().CP2K_DATA_DIR
        elements = sorted({site.specie.symbol for site in structure})
        settings = {
            "activate_motion": {
                "ensemble": "NVT",
                "temperature": self.temperature,
                "timestep": self.time_step,
                "nsteps": self.n_steps,
                # pymatgen puts a bare string here otherwise, which it cannot write
                "thermostat": Keyword("TYPE", "NOSE"),
            },
            "xc_functionals": ["PBE"],
            "dft_plus_u": False,
            "spin_polarized": False,
            "cutoff": self.cutoff,
            "basis_and_potential": basis_and_potential(
                elements, data_dir, basis=self.basis
            ),
            **self.input_updates,
        }
        return HamlCp2kMDSetGenerator(
            user_input_settings=settings,
            user_kpoints_settings={"reciprocal_density": 0},
            d3_parameter_file=str(Path(data_dir) / "dftd3.dat"),
            thermostat_time=self.thermostat_time,
        )

    def prepared_structure(self, structure: Structure) -> Structure:
        """The structure with velocities (ASE units), drawn if missing."""
        prepared = bare_structure(structure)
        prepared.add_site_property("velocities", self.start_velocities(structure).tolist())
        return prepared

    def write_inputs(self, structure: Structure, directory: str | Path = ".") -> None:
        """Write cp2k.inp, BASIS and POTENTIAL through atomate2."""
        prepared = self.prepared_structure(structure)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            write_cp2k_input_set(
                prepared, self.input_set_generator(prepared), directory=directory
            )

    @job(data=["trajectory"])
    def make(self, structure: Structure) -> AimdSegmentDoc:
        """Write the inputs, run CP2K under custodian and read the segment back."""
        command = CP2K.require(self.cp2k_cmd)
        with measure_cost() as meter:
            self.write_inputs(structure)
            run_cp2k(**{**self.run_cp2k_kwargs, "cp2k_cmd": command})
            segment = read_cp2k_md(Path.cwd(), self.time_step)
        return segment.aimd_doc(self.engine_name, self.time_step, meter.cost)
