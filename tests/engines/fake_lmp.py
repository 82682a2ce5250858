"""A stand-in for LAMMPS built with MLIP-2's interface (``lmp``), for tests.

Run as ``python fake_lmp.py -in in.lammps``. It accepts the commands of our
``in.lammps`` (anything else: "ERROR: Unknown command", exit 1), reads the
data file (positions, velocities, masses), ``mlip.ini`` and the files it
names, and runs NVT Nose-Hoover (ASE's chain thermostat) on the MTP (motep) with the MaxVol
grade of every step, as ``pair_style mlip`` with ``select TRUE`` does. It
writes LAMMPS's outputs in their formats: ``log.lammps`` (input echo, thermo
table, "Loop time" at a normal end), the custom dump, and MLIP's
``select:save-selected`` .cfg with an ``MV_grade`` feature per selected
configuration. At γ > ``select:threshold-break`` it prints
"Breaking threshold exceeded (MV-grade: X)" and exits with status 8, as
MLIP does.

MLIP-2's ``state.als`` is binary; the fake mlp writes a text file with the
active-set indices instead, so this fake rebuilds the active set from
``train.cfg`` next to it and checks the indices against that file.

Test hooks (environment): ``FAKE_LMP_LOG`` appends the argv and the
``mlip.ini`` settings as a JSON line; ``FAKE_LMP_MODE=crash`` exits with
status 1 and a LAMMPS error line.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from ase import units
from ase.data import atomic_numbers
from ase.io.lammpsdata import read_lammps_data
from ase.md.nose_hoover_chain import NoseHooverChainNVT

KNOWN = {
    "units", "atom_style", "boundary", "read_data", "pair_style", "pair_coeff",
    "neighbor", "timestep", "fix", "thermo_style", "thermo", "dump", "dump_modify", "run",
}
ANGSTROM_PER_PS = 1.0 / (1000.0 * units.fs)
THERMO_NAMES = {"step": "Step", "temp": "Temp", "pe": "PotEng", "ke": "KinEng",
                "etotal": "TotEng", "press": "Press"}


class LammpsFailure(Exception):
    pass


def error(message: str) -> None:
    raise LammpsFailure(f"ERROR: {message}")


def parse_input(path: Path) -> dict:
    script: dict = {"dumps": {}, "echo": []}
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].strip()
        if not line:
            continue
        script["echo"].append(line)
        words = line.split()
        command, args = words[0], words[1:]
        if command not in KNOWN:
            error(f"Unknown command: {line}")
        if command == "units" and args != ["metal"]:
            error("fake lmp supports units metal only")
        if command == "atom_style" and args != ["atomic"]:
            error("fake lmp supports atom_style atomic only")
        if command == "read_data":
            script["data"] = args[0]
        elif command == "pair_style":
            if args[:1] != ["mlip"] or len(args) != 2:
                error(f"Unrecognized pair style: {' '.join(args)}")
            script["mlip_ini"] = args[1]
        elif command == "timestep":
            script["dt_fs"] = float(args[0]) * 1000.0
        elif command == "fix":
            if args[2] != "nvt" or args[3] != "temp":
                error(f"fake lmp supports fix nvt temp only: {line}")
            script["temperature"] = float(args[4])
            script["tdamp_fs"] = float(args[6]) * 1000.0
        elif command == "thermo_style":
            script["thermo_style"] = args[1:]
        elif command == "thermo":
            script["thermo_every"] = int(args[0])
        elif command == "dump":
            dump_id, _, style, every, filename, *columns = args
            if style != "custom":
                error(f"fake lmp supports dump custom only: {line}")
            script["dumps"][dump_id] = {"every": int(every), "file": filename,
                                        "columns": columns, "element": None}
        elif command == "dump_modify":
            dump = script["dumps"].get(args[0]) or error(f"Could not find dump ID {args[0]}")
            rest = args[1:]
            while rest:
                key = rest.pop(0)
                if key == "element":
                    names = []
                    while rest and rest[0] not in ("sort",):
                        names.append(rest.pop(0))
                    dump["element"] = names
                elif key == "sort":
                    if rest.pop(0) != "id":
                        error("fake lmp sorts by id only")
                else:
                    error(f"Illegal dump_modify command: {key}")
        elif command == "run":
            script["run"] = int(args[0])
    for needed in ("data", "mlip_ini", "dt_fs", "temperature", "run"):
        if needed not in script:
            error(f"input script sets no {needed}")
    return script


def read_mlip_ini(path: Path) -> dict:
    if not path.is_file():
        error(f"Cannot open MLIP settings file {path}")
    settings = {}
    for line in path.read_text().splitlines():
        words = line.split("#")[0].split()
        if len(words) >= 2:
            settings[words[0]] = words[1]
    for key in ("mtp-filename", "select:threshold-break", "select:load-state",
                "select:save-selected"):
        if key not in settings:
            error(f"mlip.ini has no {key}")
    if settings.get("select") != "TRUE" or settings.get("calculate-efs") != "TRUE":
        error("fake lmp expects calculate-efs TRUE and select TRUE")
    return settings


def box_lines(cell: np.ndarray) -> list[str]:
    lx, ly, lz = (float(cell[i, i]) for i in range(3))
    xy, xz, yz = float(cell[1, 0]), float(cell[2, 0]), float(cell[2, 1])
    if np.allclose([xy, xz, yz], 0.0):
        return ["ITEM: BOX BOUNDS pp pp pp",
                f"0.0 {lx!r}", f"0.0 {ly!r}", f"0.0 {lz!r}"]
    xlo = min(0.0, xy, xz, xy + xz)
    xhi = lx + max(0.0, xy, xz, xy + xz)
    return ["ITEM: BOX BOUNDS xy xz yz pp pp pp",
            f"{xlo!r} {xhi!r} {xy!r}", f"{min(0.0, yz)!r} {ly + max(0.0, yz)!r} {xz!r}",
            f"0.0 {lz!r} {yz!r}"]


def dump_frame(handle, step: int, atoms, types: list[int], elements: list[str],
               columns: list[str]) -> None:
    positions = atoms.get_positions(wrap=True)
    velocities = atoms.get_velocities() / ANGSTROM_PER_PS
    forces = atoms.get_forces()
    values = {"x": positions[:, 0], "y": positions[:, 1], "z": positions[:, 2],
              "vx": velocities[:, 0], "vy": velocities[:, 1], "vz": velocities[:, 2],
              "fx": forces[:, 0], "fy": forces[:, 1], "fz": forces[:, 2]}
    lines = ["ITEM: TIMESTEP", str(step), "ITEM: NUMBER OF ATOMS", str(len(atoms)),
             *box_lines(atoms.cell[:]), "ITEM: ATOMS " + " ".join(columns)]
    for i in range(len(atoms)):
        row = []
        for column in columns:
            if column == "id":
                row.append(str(i + 1))
            elif column == "type":
                row.append(str(types[i]))
            elif column == "element":
                row.append(elements[types[i] - 1])
            elif column in values:
                row.append(f"{values[column][i]:.10g}")
            else:
                error(f"Invalid attribute {column} in dump custom command")
        lines.append(" ".join(row))
    handle.write("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    start = time.perf_counter()
    if len(argv) != 2 or argv[0] not in ("-in", "-i"):
        print("ERROR: fake lmp needs '-in FILE'", flush=True)
        return 1
    if os.environ.get("FAKE_LMP_MODE") == "crash":
        print("ERROR: Lost atoms: original 16 current 15 (src/thermo.cpp:481)", flush=True)
        return 1
    log = open("log.lammps", "w")

    def say(text: str) -> None:
        print(text, flush=True)
        log.write(text + "\n")
        log.flush()

    say("LAMMPS (2 Aug 2023 - Update 3)")
    try:
        script = parse_input(Path(argv[1]))
        for line in script["echo"]:
            log.write(line + "\n")
        settings = read_mlip_ini(Path(script["mlip_ini"]))
        if hook := os.environ.get("FAKE_LMP_LOG"):
            with open(hook, "a") as out:
                out.write(json.dumps({"argv": argv, "mlip_ini": settings,
                                      "script": script["echo"]}) + "\n")
        return run(script, settings, say, log, start)
    except LammpsFailure as exc:
        say(str(exc))
        return 1
    finally:
        log.close()


def run(script: dict, settings: dict, say, log, start: float) -> int:
    from haml_flows.mtp.frames import GRADE_FEATURE, cfg_to_frames, frames_to_cfg
    from haml_flows.mtp.grade import ActiveSet, load_potential, mtp_calculator

    (dump,) = script["dumps"].values()
    elements = dump["element"] or error("dump_modify element is needed to name types")
    species = [atomic_numbers[e] for e in elements]
    with open(script["data"]) as handle:
        atoms = read_lammps_data(handle, Z_of_type=dict(enumerate(species, start=1)),
                                 units="metal", atom_style="atomic")
    types = [species.index(int(z)) + 1 for z in atoms.numbers]
    potential = Path(settings["mtp-filename"])
    if not potential.is_file():
        error(f"Cannot open {potential}")
    data = load_potential(potential.read_text(), species)
    if len(data.species) != len(species):
        error(f"potential has {len(data.species)} species, LAMMPS {len(species)} types")
    state = Path(settings["select:load-state"])
    if not state.is_file() or not state.read_text().startswith("MVS"):
        error(f"Cannot load selection state from {state}")
    training = cfg_to_frames(Path("train.cfg").read_text(), species=species)
    active_set = ActiveSet.from_training(data, training, require_span=False)  # as MLIP
    stored = state.read_text().split("\n", 1)[1].split()
    if stored != [f"{f}:{a}" for f, a in active_set.indices]:
        error(f"{state} does not match the active set of train.cfg")
    calc = mtp_calculator(data, active_set, every=1)
    atoms.calc = calc
    threshold = float(settings.get("select:threshold", 2.0))
    gamma_break = float(settings["select:threshold-break"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dynamics = NoseHooverChainNVT(atoms, timestep=script["dt_fs"] * units.fs,
                                      temperature_K=script["temperature"],
                                      tdamp=script["tdamp_fs"] * units.fs)
    style = script.get("thermo_style", ["step", "temp", "pe"])
    thermo_every = script.get("thermo_every", 0)
    selected = []
    say("Per MPI rank memory allocation (min/avg/max) = 3.1 | 3.1 | 3.1 Mbytes")
    say("   " + "   ".join(f"{THERMO_NAMES[k]:>12s}" for k in style))
    code = 0
    with open(dump["file"], "w") as dump_file:
        for step, _ in enumerate(dynamics.irun(steps=script["run"])):
            gamma = float(calc.last_gamma)
            if gamma > threshold:
                probe = atoms.copy()
                probe.info[GRADE_FEATURE] = gamma
                selected.append(probe)
            if gamma > gamma_break:
                say(f"Breaking threshold exceeded (MV-grade: {gamma:.6g})")
                code = 8
                break
            if step % dump["every"] == 0:
                dump_frame(dump_file, step, atoms, types, elements, dump["columns"])
            if thermo_every and (step % thermo_every == 0 or step == script["run"]):
                values = {"step": step, "temp": atoms.get_temperature(),
                          "pe": atoms.get_potential_energy(),
                          "ke": atoms.get_kinetic_energy(),
                          "etotal": atoms.get_total_energy(), "press": 0.0}
                say("   " + "   ".join(
                    f"{int(values[k]):12d}" if k == "step" else f"{values[k]:12.6f}"
                    for k in style))
    Path(settings["select:save-selected"]).write_text(
        frames_to_cfg(selected, species=species) if selected else "")
    if code == 0:
        say(f"Loop time of {time.perf_counter() - start:.3f} on 1 procs for "
            f"{script['run']} steps with {len(atoms)} atoms")
        say("Total wall time: 0:00:01")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
