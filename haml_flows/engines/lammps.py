"""MLP-MD seam on LAMMPS with MLIP's interface (``pair_style mlip mlip.ini``).

A segment runs in the job's directory:

1. ``mlp calc-grade pot.mtp train.cfg train.cfg out.cfg --als-filename=state.als``
   builds the MaxVol active set of the training set (MLIP-2's ``state.als``);
2. ``mlip.ini`` switches selection on (``select:threshold-break`` = γ_break,
   ``select:load-state state.als``, ``select:save-selected preselected.cfg``)
   and ``in.lammps`` runs NVT Nose-Hoover from ``data.lammps`` (positions and
   velocities), with a ``dump`` of positions, velocities and forces every step
   and the thermo table (step, temperature, potential energy) every step;
3. ``<lmp_cmd> -in in.lammps``: exit status 0 ends at ``max_steps``; exit
   status 8 with MLIP's "Breaking threshold exceeded (MV-grade: X)" is the
   normal γ break; anything else is an error quoting the output's tail.

The final frame is the last dumped step (LAMMPS stops inside the force call
of the breaking step, before its dump); ``gamma_at_stop`` is the grade MLIP
reported for that breaking step. The γ history is the grade of every saved
frame (``mlp calc-grade``) plus the breaking step's grade.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.data import chemical_symbols
from ase.io.lammpsdata import write_lammps_data
from jobflow import Maker, job
from pymatgen.core import Structure
from pymatgen.io.lammps.outputs import parse_lammps_dumps

from haml_flows.engines.commands import LMP, MLP, failure_message, run_command
from haml_flows.engines.frames import (
    SegmentFrames,
    atoms_with_velocities,
    measure_cost,
    mlpmd_start,
    standard_frame,
    structure_with_velocities,
)
from haml_flows.engines.mlip import calc_grade_with_mlp, run_mlp
from haml_flows.engines.selection import SelectedFrames
from haml_flows.mtp.frames import GRADE_FEATURE, cfg_to_frames, frames_to_cfg
from haml_flows.mtp.grade import load_potential, mtp_calculator
from haml_flows.mtp.sampling import recent_and_spread
from haml_flows.schemas import ActiveSetDoc, MlpMdDoc
from haml_flows.spec import ACTIVE_SET_FRAMES, MlpMdSpec

BREAK_EXIT_STATUS = 8
BREAK_MESSAGE = re.compile(r"Breaking threshold exceeded \(MV-grade:\s*([-+0-9.eE]+)\)")
ANGSTROM_PER_PS = 1.0 / (1000.0 * units.fs)
"""One Angstrom/ps (LAMMPS metal units) in ASE velocity units."""


class LammpsError(RuntimeError):
    """LAMMPS failed, or its outputs cannot be read."""


def lammps_frame(atoms: Atoms) -> Atoms:
    """The atoms rotated so that the cell is lower triangular, as LAMMPS needs."""
    return standard_frame(atoms, "lower")


def mlip_ini(gamma_break: float, select_threshold: float) -> str:
    """MLIP-2's settings file for MD with the extrapolation grade watching."""
    return "\n".join(
        [
            "mtp-filename            pot.mtp",
            "calculate-efs           TRUE",
            "select                  TRUE",
            f"select:threshold        {select_threshold!r}",
            f"select:threshold-break  {gamma_break!r}",
            "select:save-selected    preselected.cfg",
            "select:load-state       state.als",
            "",
        ]
    )


def in_lammps(
    symbols: list[str],
    time_step: float,
    temperature: float,
    thermostat_time: float,
    max_steps: int,
) -> str:
    """The LAMMPS input: NVT Nose-Hoover on the MTP, dump and thermo every step."""
    return "\n".join(
        [
            "units           metal",
            "atom_style      atomic",
            "boundary        p p p",
            "read_data       data.lammps",
            "pair_style      mlip mlip.ini",
            "pair_coeff      * *",
            "neighbor        1.0 bin",
            f"timestep        {time_step / 1000.0!r}",
            f"fix             nvt all nvt temp {temperature!r} {temperature!r} "
            f"{thermostat_time / 1000.0!r}",
            "thermo_style    custom step temp pe ke etotal press",
            "thermo          1",
            "dump            traj all custom 1 dump.lammpstrj "
            "id type element x y z vx vy vz fx fy fz",
            f"dump_modify     traj element {' '.join(symbols)} sort id",
            f"run             {max_steps}",
            "",
        ]
    )


def lmp_arguments(lmp_cmd: str) -> list[str]:
    """The LAMMPS command line; ``-in in.lammps`` is added unless given."""
    words = shlex.split(lmp_cmd)
    if not {"-in", "-i"} & set(words):
        words += ["-in", "in.lammps"]
    return words


def run_lammps(lmp_cmd: str, directory: Path) -> float | None:
    """Run LAMMPS; return the breaking grade, None for a run to the end."""
    proc = run_command(
        lmp_arguments(lmp_cmd), directory, error=LammpsError,
        allowed_status=(0, BREAK_EXIT_STATUS), keep_output_as="lmp",
    )
    if proc.returncode == 0:
        return None
    log = directory / "log.lammps"
    text = proc.stdout + proc.stderr + (log.read_text() if log.exists() else "")
    found = BREAK_MESSAGE.findall(text)
    if not found:
        raise LammpsError(failure_message(proc))
    return float(found[-1])


def read_dump_frames(path: Path, symbols: list[str]) -> list[tuple[int, Atoms]]:
    """(step, atoms with velocities in ASE units) of every frame of a LAMMPS dump.

    The dump's forces (eV/Angstrom in metal units) are kept as the atoms'
    ``forces`` array.
    """
    frames = []
    for dump in parse_lammps_dumps(str(path)):
        data = dump.data.sort_values("id")
        lattice = dump.box.to_lattice()
        origin = np.asarray(dump.box.bounds)[:, 0]  # pymatgen gives xlo, not xlo_bound
        elements = (
            list(data["element"])
            if "element" in data
            else [symbols[int(t) - 1] for t in data["type"]]
        )
        atoms = Atoms(
            elements,
            positions=data[["x", "y", "z"]].to_numpy() - origin,
            cell=lattice.matrix,
            pbc=True,
        )
        atoms.set_velocities(data[["vx", "vy", "vz"]].to_numpy() * ANGSTROM_PER_PS)
        if {"fx", "fy", "fz"} <= set(data.columns):
            atoms.arrays["forces"] = data[["fx", "fy", "fz"]].to_numpy(dtype=float)
        frames.append((int(dump.timestep), atoms))
    return frames


def read_thermo(path: Path) -> dict[int, dict]:
    """Step -> thermo row (Temp, PotEng, ...) of a LAMMPS log, finished or not.

    pymatgen's ``parse_lammps_log`` skips runs without the closing "Loop
    time" line, which is exactly how a run stopped by a γ break ends, so the
    one-line thermo table is read here.
    """
    rows: dict[int, dict] = {}
    header: list[str] | None = None
    for line in path.read_text().splitlines():
        words = line.split()
        if words[:1] == ["Step"]:
            header = words
            continue
        if header is None:
            continue
        try:
            values = [float(w) for w in words]
        except ValueError:
            header = None
            continue
        if len(values) != len(header):
            header = None
            continue
        row = dict(zip(header, values))
        rows[int(row["Step"])] = row
    return rows


def candidate_frames(training_set: str, candidates: list[int] | None) -> list[Atoms]:
    """The training frames the active set is chosen from (training-set indices).

    None: the newest half and older ones evenly spaced, as the training job
    picks them (a training stored before it kept its active set).
    """
    frames = cfg_to_frames(training_set)
    if candidates is None:
        candidates = recent_and_spread(len(frames), ACTIVE_SET_FRAMES)
    return [frames[i] for i in candidates]


@dataclass
class LammpsMlpMdMaker(Maker):
    """One NVT Nose-Hoover MLP-MD segment in LAMMPS + MLIP, stopped at γ > γ_break.

    ``mlpmd`` is the spec's section, as for the ASE maker; ``gamma_every`` and
    the collapse guard's thresholds do not apply (MLIP grades every step inside
    LAMMPS and stops at its own γ break). The commands are read on the worker
    (``HAML_LMP_CMD``, ``HAML_MLP_CMD``); ``lmp_cmd`` and ``mlp_cmd`` override
    them. ``mlpmd.gamma_select`` is MLIP's ``select:threshold``: frames above
    it go to preselected.cfg, and the segment keeps at most
    ``mlpmd.max_selected`` of them. MLIP builds the active set (``state.als``)
    from the frames the training job chose its own from, so both grades are
    the same MaxVol over the same rows.
    """

    name: str = "mlpmd segment (lammps)"
    mlpmd: MlpMdSpec = field(default_factory=MlpMdSpec)
    lmp_cmd: str | None = None
    mlp_cmd: str | None = None

    def write_inputs(
        self,
        directory: Path,
        structure: Structure,
        potential: str,
        training_set: str,
        candidates: list[int] | None = None,
    ) -> list[str]:
        """Write pot.mtp, train.cfg, mlip.ini, data.lammps, in.lammps; return symbols.

        train.cfg holds the active set's candidate frames (``candidates``,
        training-set indices; default: the newest half and older ones evenly
        spaced, as the training job picks them).
        """
        md = self.mlpmd
        species = [int(z) for z in load_potential(potential).species]
        symbols = [chemical_symbols[z] for z in species]
        missing = sorted({s.specie.symbol for s in structure} - set(symbols))
        if missing:
            raise ValueError(f"the potential does not describe the elements {missing}")
        (directory / "pot.mtp").write_text(potential)
        frames = candidate_frames(training_set, candidates)
        (directory / "train.cfg").write_text(frames_to_cfg(frames, species=species))
        (directory / "mlip.ini").write_text(mlip_ini(md.gamma_break, md.gamma_select))
        atoms = lammps_frame(atoms_with_velocities(structure))
        with open(directory / "data.lammps", "w") as handle:
            write_lammps_data(
                handle, atoms, specorder=symbols, masses=True, velocities=True,
                units="metal", atom_style="atomic",
            )
        (directory / "in.lammps").write_text(
            in_lammps(symbols, md.time_step, md.temperature, md.thermostat_time, md.max_steps)
        )
        return symbols

    @job(data=["trajectory", "gamma_history", "selected"])
    def make(
        self,
        structure: Structure,
        potential: str,
        training_set: str,
        active_set: dict | None = None,
        active_set_slots: list[list[int]] | None = None,
    ) -> MlpMdDoc:
        """Run LAMMPS from the structure's positions and velocities until a stop rule.

        ``active_set`` (the training job's ActiveSetDoc) names the candidate
        frames MLIP builds its active set from; ``active_set_slots`` is not
        needed (MLIP selects the same rows itself).
        """
        del active_set_slots
        md = self.mlpmd
        candidates = (
            ActiveSetDoc.model_validate(active_set).candidate_frames
            if active_set is not None else None
        )
        structure, cooled_from = mlpmd_start(structure, md)
        lmp_cmd = LMP.require(self.lmp_cmd)
        mlp_cmd = MLP.require(self.mlp_cmd)
        directory = Path.cwd()
        with measure_cost() as meter:
            symbols = self.write_inputs(
                directory, structure, potential, training_set, candidates
            )
            gamma_wall = time.perf_counter()
            run_mlp(
                mlp_cmd,
                ["calc-grade", "pot.mtp", "train.cfg", "train.cfg", "out.cfg",
                 "--als-filename=state.als"],
                directory,
            )
            gamma_seconds = time.perf_counter() - gamma_wall
            broke_at = run_lammps(lmp_cmd, directory)
            segment = self._read_back(directory, symbols, structure, broke_at, potential)
            gamma_wall = time.perf_counter()
            saved = [atoms_with_velocities(frame) for frame in segment.structures]
            grades = calc_grade_with_mlp(
                potential, candidate_frames(training_set, candidates), saved, mlp_cmd
            ) if saved else []
            gamma_seconds += time.perf_counter() - gamma_wall
        history = [
            [float(props["step"]), float(grade)]
            for props, grade in zip(segment.properties, grades)
        ]
        for props, grade in zip(segment.properties, grades):
            props["gamma"] = float(grade)
        if broke_at is not None:
            history.append([float(segment.n_steps + 1), broke_at])
        gammas = [g for _, g in history]
        selection = self._selected(directory, md)
        return MlpMdDoc(
            engine="lammps+mlip",
            structure=segment.structure,
            trajectory=segment.trajectory(),
            gamma_history=history,
            n_steps=segment.n_steps,
            time_step_fs=md.time_step,
            simulated_fs=segment.simulated_fs,
            stop_reason="gamma_break" if broke_at is not None else "max_steps",
            gamma_at_stop=broke_at if broke_at is not None else gammas[-1],
            gamma_max=float(np.max(gammas)),
            grade_mode="neighborhood",
            gamma_select=md.gamma_select,
            selected=selection.trajectory(),
            n_selected=len(selection),
            temperature_start=segment.temperature_start,
            temperature_end=segment.temperature_end,
            start_cooled_from=cooled_from,
            cost=meter.cost,
            gamma_seconds=gamma_seconds,
        )

    @staticmethod
    def _selected(directory: Path, md: MlpMdSpec) -> SelectedFrames:
        """The frames MLIP saved to preselected.cfg, bounded as the ASE loop bounds them."""
        selection = SelectedFrames(md.gamma_select, md.gamma_break, md.max_selected)
        path = directory / "preselected.cfg"
        text = path.read_text() if path.exists() else ""
        if "BEGIN_CFG" not in text:
            return selection
        for order, atoms in enumerate(cfg_to_frames(text)):
            gamma = float(atoms.info.get(GRADE_FEATURE, float("nan")))
            selection.offer(order, gamma, lambda atoms=atoms: (
                structure_with_velocities(atoms), {"order": order}
            ))
        return selection

    def _read_back(
        self, directory: Path, symbols: list[str], structure: Structure,
        broke_at: float | None, potential: str,
    ) -> SegmentFrames:
        dump = directory / "dump.lammpstrj"
        has_frames = dump.exists() and dump.stat().st_size > 0
        frames = read_dump_frames(dump, symbols) if has_frames else []
        if not frames and broke_at is None:
            raise LammpsError(f"LAMMPS wrote no frame to {dump}")
        thermo = read_thermo(directory / "log.lammps")
        if not frames:
            # MLIP broke in the set-up force call: the segment hands back its start
            start = atoms_with_velocities(structure)
            start.calc = mtp_calculator(potential)
            frames = [(0, start)]
            thermo[0] = {"PotEng": float(start.get_potential_energy())}
        last_step = frames[-1][0]
        structures, properties = [], []
        for step, atoms in frames:
            if step % self.mlpmd.save_interval and step != last_step:
                continue
            if step not in thermo:
                raise LammpsError(f"log.lammps has no thermo line for step {step}")
            structures.append(structure_with_velocities(atoms))
            properties.append(
                {
                    "step": step,
                    "energy": float(thermo[step]["PotEng"]),
                    "temperature": float(atoms.get_temperature()),
                    "velocities": atoms.get_velocities().tolist(),
                    **({"forces": atoms.arrays["forces"].tolist()}
                       if "forces" in atoms.arrays else {}),
                }
            )
        return SegmentFrames(
            structures=structures,
            properties=properties,
            structure=structure_with_velocities(frames[-1][1]),
            n_steps=last_step,
            simulated_fs=last_step * self.mlpmd.time_step,
            temperature_start=properties[0]["temperature"],
            temperature_end=properties[-1]["temperature"],
        )
