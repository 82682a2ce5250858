"""A stand-in for the ``vasp_std`` executable, for tests.

Run with no arguments in a directory holding INCAR, KPOINTS, POSCAR and a
POTCAR (or atomate2's POTCAR.spec), like VASP. It runs the molecular dynamics
the INCAR asks for (IBRION = 0, NSW steps of POTIM fs, Nose-Hoover at TEBEG
for MDALGO = 2) from the POSCAR positions and velocities (Angstrom/fs), with
GFN1-xTB (tblite) energies, forces and stresses in place of DFT, and writes
VASP's output files in their real formats: vasprun.xml (one ``calculation``
per ionic step), OUTCAR (timing, cores), OSZICAR (``T= E= F= E0= EK=``),
XDATCAR, CONTCAR (with velocities) and the standard output. OSZICAR's T=
counts 3N - 3 degrees of freedom, as VASP's does (:func:`vasp_temperature`).

Test hooks (environment):
``FAKE_VASP_ERROR=real_optlay`` prints VASP's "REAL_OPTLAY: internal error"
and stops (exit 1) while the INCAR has LREAL other than .FALSE.; custodian's
VaspErrorHandler sets LREAL = .FALSE. and the rerun finishes.
``FAKE_VASP_CALCULATOR=lj`` uses ASE's Lennard-Jones instead of GFN1-xTB.
``FAKE_VASP_RANKS=N`` reports N MPI ranks in OUTCAR (the CPU time written is
this process's own).
``FAKE_VASP_LOG`` appends one JSON line per run (INCAR, velocities seen).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.md.nose_hoover_chain import NoseHooverChainNVT
from pymatgen.core import Element
from pymatgen.io.vasp import Incar, Kpoints, Poscar

NOBLE_GAS_Z = (0, 2, 10, 18, 36, 54, 86)
LJ = {"sigma": 2.0, "epsilon": 0.05, "rc": 5.0, "smooth": True}


def fail(message: str) -> None:
    print(message, flush=True)
    sys.exit(1)


def valence(symbol: str) -> float:
    z = Element(symbol).Z
    return float(z - max(n for n in NOBLE_GAS_Z if n < z))


def calculator():
    if os.environ.get("FAKE_VASP_CALCULATOR") == "lj":
        from ase.calculators.lj import LennardJones

        return LennardJones(**LJ)
    from tblite.ase import TBLite

    return TBLite(method="GFN1-xTB", verbosity=0, electronic_temperature=300.0)


def run_md(atoms: Atoms, incar: Incar) -> tuple[list[dict], Atoms]:
    """NSW ionic steps; returns the evaluated frames and the state after the last."""
    nsw, potim = int(incar["NSW"]), float(incar["POTIM"])
    atoms.calc = calculator()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if int(incar.get("MDALGO", 0)) == 2:
            dynamics = NoseHooverChainNVT(
                atoms,
                timestep=potim * units.fs,
                temperature_K=float(incar.get("TEBEG", 300.0)),
                tdamp=40 * potim * units.fs,
            )
        else:
            from ase.md.verlet import VelocityVerlet

            dynamics = VelocityVerlet(atoms, timestep=potim * units.fs)
    frames = []
    for step, _ in enumerate(dynamics.irun(steps=nsw)):
        if step == nsw:
            break
        frames.append(
            {
                "positions": atoms.get_scaled_positions(),
                "energy": float(atoms.get_potential_energy()),
                "forces": atoms.get_forces(),
                "stress": atoms.get_stress(voigt=False),
                "kinetic": float(atoms.get_kinetic_energy()),
                "temperature": float(atoms.get_temperature()),
            }
        )
    return frames, atoms


def v(values) -> str:
    return "<v>" + " ".join(f"{x:16.8f}" for x in values) + " </v>"


def structure_xml(cell: np.ndarray, scaled: np.ndarray, name: str | None = None) -> str:
    tag = f'<structure name="{name}">' if name else "<structure>"
    rec = np.linalg.inv(cell).T
    return "\n".join(
        [
            tag,
            " <crystal>",
            '  <varray name="basis">', *(v(r) for r in cell), "  </varray>",
            f'  <i name="volume">{abs(np.linalg.det(cell)):16.8f} </i>',
            '  <varray name="rec_basis">', *(v(r) for r in rec), "  </varray>",
            " </crystal>",
            '  <varray name="positions">', *(v(r) for r in scaled), "  </varray>",
            "</structure>",
        ]
    )


def incar_item(key: str, value) -> str:
    if isinstance(value, bool):
        return f'  <i type="logical" name="{key}"> {"T" if value else "F"}  </i>'
    if isinstance(value, int):
        return f'  <i type="int" name="{key}">{value}</i>'
    if isinstance(value, float):
        return f'  <i name="{key}">{value}</i>'
    if isinstance(value, list):
        return f'  <v name="{key}">' + " ".join(str(x) for x in value) + "</v>"
    return f'  <i type="string" name="{key}">{value}</i>'


def vasprun_xml(incar, kpoints, poscar, frames, cell) -> str:
    symbols = [s.specie.symbol for s in poscar.structure]
    types = list(dict.fromkeys(symbols))
    incar_items = "\n".join(incar_item(k, val) for k, val in incar.items())
    params = {
        "NELM": ("int", incar.get("NELM", 60)), "ISPIN": ("int", incar.get("ISPIN", 1)),
        "NSW": ("int", incar["NSW"]), "IBRION": ("int", incar["IBRION"]),
        "POTIM": ("", incar["POTIM"]), "TEBEG": ("", incar.get("TEBEG", 0.0)),
        "ENCUT": ("", incar.get("ENCUT", 400.0)), "ISYM": ("int", incar.get("ISYM", 2)),
        "LSORBIT": ("logical", "F"), "LORBIT": ("int", incar.get("LORBIT", 0)),
        "NBANDS": ("int", 16), "GGA": ("string", incar.get("GGA", "--")),
        "IVDW": ("int", incar.get("IVDW", 0)), "METAGGA": ("string", "--"),
    }
    param_lines = "\n".join(
        f'  <i type="{t}" name="{k}">{val}</i>' if t else f'  <i name="{k}">{val}</i>'
        for k, (t, val) in params.items()
    )
    atom_rows = "\n".join(
        f"   <rc><c>{s}</c><c>{types.index(s) + 1:4d}</c></rc>" for s in symbols
    )
    type_rows = "\n".join(
        f"   <rc><c>{symbols.count(s):4d}</c><c>{s:2s}</c>"
        f"<c>{Element(s).atomic_mass:16.8f}</c><c>{valence(s):16.8f}</c>"
        f"<c>  PAW_PBE {s} 00000000</c></rc>"
        for s in types
    )
    calcs = []
    for f in frames:
        e = f["energy"]
        stress_kb = -np.asarray(f["stress"]) / (0.1 * units.GPa)
        energy = (
            f'  <i name="e_fr_energy">{e:16.8f} </i>\n'
            f'  <i name="e_wo_entrp">{e:16.8f} </i>\n'
            f'  <i name="e_0_energy">{e:16.8f} </i>'
        )
        calcs.append(
            "\n".join(
                [
                    "<calculation>",
                    " <scstep>", '  <time name="total">0.01 0.01</time>',
                    "  <energy>", energy, "  </energy>", " </scstep>",
                    structure_xml(cell, f["positions"]),
                    ' <varray name="forces">', *(v(r) for r in f["forces"]), " </varray>",
                    ' <varray name="stress">', *(v(r) for r in stress_kb), " </varray>",
                    " <energy>", energy,
                    f'  <i name="kinetic">{f["kinetic"]:16.8f} </i>',
                    f'  <i name="total">{e + f["kinetic"]:16.8f} </i>',
                    " </energy>",
                    '<time name="totalsc">0.01 0.01</time>',
                    "</calculation>",
                ]
            )
        )
    initial = poscar.structure
    return "\n".join(
        [
            '<?xml version="1.0" encoding="ISO-8859-1"?>',
            "<modeling>",
            " <generator>",
            '  <i name="program" type="string">vasp </i>',
            '  <i name="version" type="string">6.4.2  </i>',
            '  <i name="subversion" type="string">20Jul23 (build Nov 25 2026) complex parallel </i>',
            '  <i name="platform" type="string">LinuxGNU </i>',
            f'  <i name="date" type="string">{time.strftime("%Y %m %d")} </i>',
            f'  <i name="time" type="string">{time.strftime("%H:%M:%S")} </i>',
            " </generator>",
            " <incar>", incar_items, " </incar>",
            " <kpoints>",
            f'  <generation param="{kpoints.style.name}">',
            '   <v type="int" name="divisions">'
            + " ".join(str(int(d)) for d in kpoints.kpts[0]) + " </v>",
            "  </generation>",
            '  <varray name="kpointlist">', "   <v>0.0 0.0 0.0</v>", "  </varray>",
            '  <varray name="weights">', "   <v>1.0</v>", "  </varray>",
            " </kpoints>",
            " <parameters>", param_lines, " </parameters>",
            " <atominfo>",
            f"  <atoms>{len(symbols)}</atoms>",
            f"  <types>{len(types)}</types>",
            '  <array name="atoms">', '   <dimension dim="1">ion</dimension>',
            '   <field type="string">element</field>', '   <field type="int">atomtype</field>',
            "   <set>", atom_rows, "   </set>", "  </array>",
            '  <array name="atomtypes">', '   <dimension dim="1">type</dimension>',
            '   <field type="int">atomspertype</field>', '   <field type="string">element</field>',
            "   <field>mass</field>", "   <field>valence</field>",
            '   <field type="string">pseudopotential</field>',
            "   <set>", type_rows, "   </set>", "  </array>",
            " </atominfo>",
            structure_xml(initial.lattice.matrix, initial.frac_coords, "initialpos"),
            *calcs,
            structure_xml(cell, frames[-1]["positions"], "finalpos"),
            "</modeling>",
            "",
        ]
    )


def xdatcar(poscar: Poscar, frames: list[dict], cell: np.ndarray) -> str:
    symbols = [s.specie.symbol for s in poscar.structure]
    types = list(dict.fromkeys(symbols))
    head = [poscar.comment, "           1"]
    head += ["  " + " ".join(f"{x:11.6f}" for x in row) for row in cell]
    head += ["   " + "   ".join(types), "   " + "   ".join(str(symbols.count(t)) for t in types)]
    lines = list(head)
    for i, f in enumerate(frames, start=1):
        lines.append(f"Direct configuration={i:6d}")
        lines += ["  " + " ".join(f"{x:.8f}" for x in row) for row in f["positions"]]
    return "\n".join(lines) + "\n"


def vasp_temperature(kinetic: float, n_atoms: int) -> float:
    """VASP's temperature of a kinetic energy (eV): 3N - 3 degrees of freedom."""
    return 2.0 * kinetic / ((3 * n_atoms - 3) * units.kB)


def oszicar_line(step: int, f: dict, n_atoms: int) -> str:
    e, ek = f["energy"], f["kinetic"]
    return (
        f"{step:6d} T= {vasp_temperature(ek, n_atoms):6.0f}. E= {e + ek:.8E} F= {e:.8E} "
        f"E0= {e:.8E}  EK= {ek:.5E} SP= 0.00E+00 SK= 0.00E+00"
    )


def outcar(incar, poscar, frames, ranks: int, cpu: float, wall: float) -> str:
    n = len(poscar.structure)
    lines = [
        " vasp.6.4.2 20Jul23 (build Nov 25 2026) complex",
        f" running {ranks:4d} mpi-ranks, with    1 threads/rank",
        " POSCAR = " + poscar.comment,
        f"   number of dos      NEDOS =    301   number of ions     NIONS = {n:6d}",
        "   number of bands    NBANDS=     16",
        "   total plane-waves  NPLWV =  32768",
        f"   IBRION = {int(incar['IBRION']):6d}    ionic relax: 0-MD 1-quasi-New 2-CG",
        f"   NSW    = {int(incar['NSW']):6d}    number of steps for IOM",
        f"   POTIM  = {float(incar['POTIM']):8.4f}    time-step for ionic-motion",
        "",
    ]
    for step, f in enumerate(frames, start=1):
        lines += [
            f"--------------------------------------- Iteration {step:6d}(   1)"
            "  ---------------------------------------",
            " POSITION                                       TOTAL-FORCE (eV/Angst)",
            " " + "-" * 83,
        ]
        cart = np.asarray(f["positions"]) @ poscar.structure.lattice.matrix
        for pos, force in zip(cart, f["forces"]):
            lines.append(
                "  " + " ".join(f"{x:12.5f}" for x in pos) + "    "
                + " ".join(f"{x:13.6f}" for x in force)
            )
        lines += [
            " " + "-" * 83,
            "",
            "  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)",
            "  ---------------------------------------------------",
            f"  free  energy   TOTEN  = {f['energy']:18.8f} eV",
            "",
            f"  energy  without entropy= {f['energy']:18.8f}"
            f"  energy(sigma->0) = {f['energy']:18.8f}",
            "",
        ]
    lines += [
        " General timing and accounting informations for this job:",
        " ========================================================",
        "",
        f"                  Total CPU time used (sec):  {cpu:11.3f}",
        f"                            User time (sec):  {cpu:11.3f}",
        "                          System time (sec):        0.000",
        f"                         Elapsed time (sec):  {wall:11.3f}",
        "",
        "                   Maximum memory used (kb):      100000.",
        "                   Average memory used (kb):          N/A",
        "",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    start_wall = time.perf_counter()
    if len(sys.argv) > 1:
        fail(f"vasp takes no arguments, got {sys.argv[1:]}")
    for name in ("INCAR", "KPOINTS", "POSCAR"):
        if not Path(name).is_file():
            fail(f" VERY BAD NEWS! internal error in subroutine IBZKPT: {name} not found")
    if not (Path("POTCAR").is_file() or Path("POTCAR.spec").is_file()):
        fail(" ERROR: POTCAR not found")
    incar, kpoints = Incar.from_file("INCAR"), Kpoints.from_file("KPOINTS")
    poscar = Poscar.from_file("POSCAR", check_for_potcar=False)
    if log := os.environ.get("FAKE_VASP_LOG"):
        with open(log, "a") as out:
            out.write(json.dumps({"incar": dict(incar), "cwd": os.getcwd(),
                                  "velocities": None if poscar.velocities is None
                                  else np.asarray(poscar.velocities).tolist()}, default=str) + "\n")
    ranks = int(os.environ.get("FAKE_VASP_RANKS", "1"))
    print(f" running {ranks:4d} mpi-ranks, with    1 threads/rank", flush=True)
    print(" vasp.6.4.2 20Jul23 (build Nov 25 2026) complex", flush=True)
    if os.environ.get("FAKE_VASP_ERROR") == "real_optlay" and incar.get("LREAL", False) not in (
        False, "F", ".FALSE."
    ):
        fail(" REAL_OPTLAY: internal error (1)")
    if int(incar.get("IBRION", -1)) != 0 or int(incar.get("NSW", 0)) < 1:
        fail(" fake vasp runs molecular dynamics only (IBRION = 0, NSW > 0)")

    structure = poscar.structure
    atoms = Atoms(
        [s.specie.symbol for s in structure], cell=structure.lattice.matrix,
        scaled_positions=structure.frac_coords, pbc=True,
    )
    if poscar.velocities is not None:
        atoms.set_velocities(np.asarray(poscar.velocities) / units.fs)
    frames, final = run_md(atoms, incar)
    cell = structure.lattice.matrix
    with open("OSZICAR", "w") as osz:
        osz.write("       N       E                     dE             d eps       ncg     rms          rms(c)\n")
        for step, f in enumerate(frames, start=1):
            osz.write(f"RMM:   1    {f['energy']:.12E}   -0.1E-05   -0.1E-07   100   0.1E-02\n")
            osz.write(oszicar_line(step, f, len(atoms)) + "\n")
            print(oszicar_line(step, f, len(atoms)), flush=True)
    Path("XDATCAR").write_text(xdatcar(poscar, frames, cell))
    Poscar(
        structure.__class__(structure.lattice, structure.species, final.get_scaled_positions()),
        comment=poscar.comment,
        velocities=(final.get_velocities() * units.fs).tolist(),
    ).write_file("CONTCAR")
    Path("vasprun.xml").write_text(vasprun_xml(incar, kpoints, poscar, frames, cell))
    cpu = time.process_time()
    Path("OUTCAR").write_text(
        outcar(incar, poscar, frames, ranks, cpu, time.perf_counter() - start_wall)
    )


if __name__ == "__main__":
    main()
