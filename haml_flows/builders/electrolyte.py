"""LiFSI + DME liquid electrolyte packed on a bcc Li slab with Packmol.

The amounts follow from the molarity (mol of LiFSI per litre of solution)
and the density: per litre, the DME mass is ``1000 density - molarity
M(LiFSI)``. The liquid fills the gap between the slab and its periodic image
in c, ``surface_clearance`` away from the metal on both sides; lateral box
edges are inset by half the Packmol tolerance, so the guarantee holds across
periodic images too.

Each LiFSI goes in as a contact ion pair inside the liquid, not where Packmol
happens to drop a lone Li+ (it landed on the metal as an adatom): the Li+ is
fixed in the liquid region and Packmol is asked for one sulfonyl O of its
FSI- and one ether O of each of up to three DME within ``SHELL_RADIUS`` of
it, a four-coordinate first shell like the Li+ of a LiFSI + DME solution.
The AIMD relaxes the shell from there. All of it is verified after packing.

The ``packmol`` PyPI package ships the binary; the input is written here
because Packmol's per-atom sphere and fixed-position constraints are what
place the ion pair.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Molecule, Structure

from haml_flows.builders.errors import BuilderError
from haml_flows.builders.geometry import check_min_distances
from haml_flows.builders.slabs import LI_BCC_LATTICE_PARAMETER, li_slab

AVOGADRO = 6.02214076e23
ANGSTROM3_PER_CM3 = 1e24
SURFACE_CLEARANCE = 2.5
"""Closest approach (Angstrom) of any electrolyte atom (solvent H and O
included) to a metal atom, unless the builder is given another."""
BOX_MARGIN = 0.2
"""Packmol's box constraint is met to about 0.1 A; the box is this much inside
the clearance so that the verified distance is the one asked for."""
SHELL_RADIUS = 2.2
"""Largest Li+-O distance (Angstrom) Packmol may use for a first-shell O; the
packing tolerance (``min_distance`` + 0.2) is the smallest."""
SHELL_DME = 3
"""DME molecules per Li+ that give one ether O to its first shell."""
FSI_SHELL_ATOM = 3
"""Index of the FSI- O (of its first SO2F group) that binds the Li+."""
DME_SHELL_ATOM = 1
"""Index of the DME ether O that binds the Li+."""
SHELL_CUTOFF = 2.6
"""Largest Li+-O distance (Angstrom) accepted for a first-shell O after packing:
Li-O bonds are 1.9-2.1 A, and Packmol's soft sphere constraint lets them
stretch (2.0-2.4 A in the packings tested)."""
PACKMOL_TIMEOUT = 120.0
"""Seconds Packmol may take before the build is refused."""


class PackingError(BuilderError):
    """Packmol could not place the electrolyte; the message says what was asked and what to change."""


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _perpendiculars(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    trial = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    p1 = _unit(np.cross(axis, trial))
    return p1, np.cross(axis, p1)


def _umbrella(center, neighbour, length, count, angle=109.47, phase=0.0):
    """``count`` bonds from ``center`` at ``angle`` to the bond towards ``neighbour``."""
    axis = _unit(np.asarray(center) - np.asarray(neighbour))
    p1, p2 = _perpendiculars(axis)
    tilt = np.radians(180.0 - angle)
    out = []
    for k in range(count):
        phi = phase + 2 * np.pi * k / count
        direction = np.cos(tilt) * axis + np.sin(tilt) * (np.cos(phi) * p1 + np.sin(phi) * p2)
        out.append(np.asarray(center) + length * direction)
    return out


def dme() -> Molecule:
    """1,2-dimethoxyethane, all-trans (C4H10O2, 16 atoms)."""
    chain = ["C", "O", "C", "C", "O", "C"]
    bonds = [1.41, 1.41, 1.51, 1.41, 1.41]
    half_angle = np.radians((180.0 - 111.0) / 2)
    coords = [np.zeros(3)]
    for i, length in enumerate(bonds):
        sign = 1 if i % 2 == 0 else -1
        coords.append(coords[-1] + length * np.array([np.cos(half_angle), sign * np.sin(half_angle), 0.0]))
    species = list(chain)
    hydrogens = []
    hydrogens += _umbrella(coords[0], coords[1], 1.09, 3)
    hydrogens += _umbrella(coords[5], coords[4], 1.09, 3)
    for c in (2, 3):
        center, a, b = coords[c], coords[c - 1], coords[c + 1]
        u = -_unit(_unit(a - center) + _unit(b - center))
        n = _unit(np.cross(a - center, b - center))
        half = np.radians(109.47 / 2)
        hydrogens += [center + 1.09 * (np.cos(half) * u + s * np.sin(half) * n) for s in (1, -1)]
    species += ["H"] * len(hydrogens)
    return Molecule(species, np.vstack([coords, hydrogens]))


def fsi() -> Molecule:
    """Bis(fluorosulfonyl)imide anion N(SO2F)2-, charge -1 (9 atoms)."""
    half = np.radians(125.0 / 2)
    n = np.zeros(3)
    s1 = 1.58 * np.array([np.sin(half), np.cos(half), 0.0])
    s2 = 1.58 * np.array([-np.sin(half), np.cos(half), 0.0])
    species, coords = ["N", "S", "S"], [n, s1, s2]
    for s, phase in ((s1, 0.0), (s2, np.pi)):
        o1, o2, _ = _umbrella(s, n, 1.43, 3, angle=108.0, phase=phase)
        (f,) = [_umbrella(s, n, 1.58, 3, angle=104.0, phase=phase)[2]]
        species += ["O", "O", "F"]
        coords += [o1, o2, f]
    return Molecule(species, np.array(coords), charge=-1)


MOLAR_MASS = {"LiFSI": 187.07, "DME": 90.12}


def composition_for(molarity: float, density: float, lifsi: int) -> int:
    """Number of DME molecules for ``lifsi`` ion pairs at the given molarity and density."""
    if molarity <= 0 or density <= 0 or lifsi < 1:
        raise BuilderError(
            f"molarity ({molarity} M), density ({density} g/cm3) and lifsi ({lifsi}) "
            "must be positive"
        )
    dme_mass = 1000.0 * density - molarity * MOLAR_MASS["LiFSI"]
    if dme_mass <= 0:
        closest = 1000.0 * density / MOLAR_MASS["LiFSI"]
        raise BuilderError(
            f"molarity {molarity} M at density {density} g/cm3 leaves no room for DME; "
            f"closest feasible molarity is below {closest:.2f} M"
        )
    ratio = dme_mass / MOLAR_MASS["DME"] / molarity
    count = round(ratio * lifsi)
    if count < 1:
        raise BuilderError(
            f"{lifsi} LiFSI at {molarity} M needs {ratio * lifsi:.2f} DME; closest "
            f"feasible: lifsi >= {int(np.ceil(0.5 / ratio))}"
        )
    return count


def packmol_available() -> bool:
    return shutil.which("packmol") is not None


@dataclass
class _Block:
    """One Packmol ``structure`` block: a molecule, how many, its constraints."""

    name: str
    molecule: Molecule
    number: int
    constraints: list[str] = field(default_factory=list)

    def text(self, filename: str) -> str:
        lines = [f"structure {filename}", f"  number {self.number}", *self.constraints, "end structure"]
        return "\n".join(lines)


def _shell_positions(box: list[float], lifsi: int) -> np.ndarray:
    """Where each Li+ is fixed: spread along the liquid's height, mid-box laterally."""
    x0, y0, z0, x1, y1, z1 = box
    return np.array([
        [x0 + (0.5 + 0.25 * (i % 2)) * (x1 - x0), y0 + 0.5 * (y1 - y0),
         z0 + (i + 0.5) * (z1 - z0) / lifsi]
        for i in range(lifsi)
    ])


def _blocks(lifsi: int, n_dme: int, box: list[float], shell_radius: float):
    """Packmol blocks for ``lifsi`` contact ion pairs and ``n_dme`` DME.

    Also returns, per Li+, its block and the (block, atom) of each O asked
    to sit in its first shell.
    """
    inside = "  inside box " + " ".join(f"{x:.4f}" for x in box)
    li_ion = Molecule(["Li"], [[0.0, 0.0, 0.0]], charge=1)
    shell_dme = min(SHELL_DME, n_dme // lifsi)
    blocks: list[_Block] = []
    shells = []
    for center in _shell_positions(box, lifsi):
        xyz = " ".join(f"{x:.4f}" for x in center)
        sphere = [f"    inside sphere {xyz} {shell_radius:.4f}", "  end atoms"]
        li_block = len(blocks)
        blocks.append(_Block("li", li_ion, 1, ["  center", f"  fixed {xyz} 0. 0. 0."]))
        members = [(len(blocks), FSI_SHELL_ATOM)]
        blocks.append(_Block("fsi", fsi(), 1, [inside, f"  atoms {FSI_SHELL_ATOM + 1}", *sphere]))
        for _ in range(shell_dme):
            members.append((len(blocks), DME_SHELL_ATOM))
            blocks.append(_Block("dme", dme(), 1, [inside, f"  atoms {DME_SHELL_ATOM + 1}", *sphere]))
        shells.append((li_block, members))
    free = n_dme - shell_dme * lifsi
    if free:
        blocks.append(_Block("dme", dme(), free, [inside]))
    return blocks, shells


def _packmol_reason(stdout: str) -> str:
    """Packmol's own first sentence after its last ERROR, on one line."""
    if "ERROR" not in stdout:
        return ""
    text = " ".join(stdout.rsplit("ERROR", 1)[1].lstrip(": ").split())
    return text.split(". ")[0].rstrip(".")


def _run_packmol(
    blocks: list[_Block], tolerance: float, seed: int, directory: Path, request: str, advice: str
) -> Molecule:
    """Write the input, run Packmol, return the packed molecule or raise PackingError."""
    lines = [f"tolerance {tolerance}", f"seed {seed}", "filetype xyz", "output packed.xyz", ""]
    for i, block in enumerate(blocks):
        filename = f"{block.name}_{i}.xyz"
        block.molecule.to(filename=str(directory / filename), fmt="xyz")
        lines += [block.text(filename), ""]
    (directory / "packmol.inp").write_text("\n".join(lines))
    try:
        with open(directory / "packmol.inp") as stdin:
            run = subprocess.run(
                ["packmol"], stdin=stdin, cwd=directory, capture_output=True, text=True,
                timeout=PACKMOL_TIMEOUT,
            )
    except subprocess.TimeoutExpired:
        raise PackingError(
            f"packmol did not finish packing {request} within {PACKMOL_TIMEOUT:g} s; {advice}"
        ) from None
    reason = _packmol_reason(run.stdout)
    if run.returncode != 0 or reason or not (directory / "packed.xyz").exists():
        why = reason or (run.stderr.strip() or "no reason given")
        raise PackingError(
            f"packmol could not pack {request}: {why} (exit code {run.returncode}); {advice}"
        )
    return Molecule.from_file(str(directory / "packed.xyz"))


def li_lifsi_dme(
    molarity: float = 1.0,
    density: float = 1.0,
    lifsi: int = 1,
    li_facet: str = "100",
    li_supercell: int = 3,
    li_thickness: float = 5.0,
    min_distance: float = 1.8,
    seed: int = 1,
    li_a: float = LI_BCC_LATTICE_PARAMETER,
    surface_clearance: float = SURFACE_CLEARANCE,
) -> Structure:
    """Li | LiFSI + DME: ``lifsi`` contact ion pairs and the matching DME on a Li slab.

    ``li_supercell`` repeats the slab surface cell in a and b; the liquid
    height follows from its mass and ``density``. Every pair of atoms from
    different molecules (periodic images included) ends at least
    ``min_distance`` apart, every electrolyte atom at least
    ``surface_clearance`` from every metal atom, and each Li+ with four O
    within ``SHELL_RADIUS``, one of them its FSI-'s; all checked after packing.
    """
    if not packmol_available():
        raise RuntimeError("packmol is not on PATH; install it with 'pip install packmol'")
    n_dme = composition_for(molarity, density, lifsi)
    if surface_clearance < min_distance:
        raise BuilderError(
            f"surface_clearance {surface_clearance} A must be >= min_distance {min_distance} A"
        )
    slab = li_slab(li_facet, thickness=li_thickness, vacuum=10.0, a=li_a,
                   supercell=(li_supercell, li_supercell))
    lattice = slab.lattice
    if abs(lattice.gamma - 90) > 1e-3:
        raise BuilderError(f"li_facet: Li({li_facet}) has no orthogonal surface cell; use '100' or '110'")
    z = slab.cart_coords[:, 2]
    slab_height = z.max() - z.min()
    mass = lifsi * MOLAR_MASS["LiFSI"] + n_dme * MOLAR_MASS["DME"]
    volume = mass / AVOGADRO / density * ANGSTROM3_PER_CM3
    liquid_height = volume / (lattice.a * lattice.b)
    gap = surface_clearance + BOX_MARGIN
    c = slab_height + liquid_height + 2 * gap
    tolerance = min_distance + 0.2
    low = slab_height + gap
    box = [tolerance / 2, tolerance / 2, low, lattice.a - tolerance / 2, lattice.b - tolerance / 2, low + liquid_height]
    shell_radius = max(SHELL_RADIUS, tolerance + 0.2)
    blocks, shells = _blocks(lifsi, n_dme, box, shell_radius)
    shell_dme = min(SHELL_DME, n_dme // lifsi)
    width = min(box[3] - box[0], box[4] - box[1])
    request = (
        f"{lifsi} Li+ (each with an O of its FSI- and of {shell_dme} DME within "
        f"{shell_radius:g} A), {lifsi} FSI- and {n_dme} DME into a "
        f"{box[3] - box[0]:.2f} x {box[4] - box[1]:.2f} x {liquid_height:.2f} A box over "
        f"Li({li_facet}) {li_supercell}x{li_supercell} (tolerance {tolerance:g} A, seed {seed})"
    )
    dme_length = float(dme().distance_matrix.max())
    if width < dme_length:
        advice = (
            f"the box is {width:.2f} A wide, less than a DME molecule ({dme_length:.1f} A): "
            f"use a larger li_supercell"
        )
    else:
        advice = "try a lower density, a smaller min_distance, a larger li_supercell or another seed"
    with tempfile.TemporaryDirectory(prefix="haml-packmol-") as tmp:
        packed = _run_packmol(blocks, tolerance, seed, Path(tmp), request, advice)
    sizes = [len(b.molecule) for b in blocks for _ in range(b.number)]
    molecule_ids = np.repeat(np.arange(len(sizes)), sizes)
    block_starts = len(slab) + np.cumsum([0] + [b.number * len(b.molecule) for b in blocks])
    frame = Lattice.orthorhombic(lattice.a, lattice.b, c)
    slab_cart = slab.cart_coords - np.array([0, 0, z.min()])
    structure = Structure(
        frame,
        [s.specie for s in slab] + [s.specie for s in packed],
        np.vstack([slab_cart, packed.cart_coords]),
        coords_are_cartesian=True,
        site_properties={
            "molecule": [-1] * len(slab) + [int(i) for i in molecule_ids],
        },
    )
    verify_packing(structure, min_distance)
    verify_surface_clearance(structure, surface_clearance)
    shells = [
        verify_shell(
            structure, int(block_starts[li_block]),
            [int(block_starts[block] + atom) for block, atom in members],
        )
        for li_block, members in shells
    ]
    check_min_distances(structure, minima={("Li", "Li"): 2.0})
    structure.properties = {
        "builder": "li_lifsi_dme",
        "molarity": molarity,
        "density": density,
        "lifsi": lifsi,
        "dme": n_dme,
        "li_slab_atoms": len(slab),
        "liquid_height": float(liquid_height),
        "min_distance": min_distance,
        "surface_clearance": surface_clearance,
        "li_ion_shells": shells,
        "seed": seed,
    }
    return structure


def _metal_and_liquid(structure: Structure) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array(structure.site_properties["molecule"])
    return np.flatnonzero(ids == -1), np.flatnonzero(ids != -1)


def verify_surface_clearance(structure: Structure, clearance: float) -> float:
    """Shortest electrolyte-metal distance (periodic); raise PackingError if below ``clearance``."""
    metal, liquid = _metal_and_liquid(structure)
    distances = structure.lattice.get_all_distances(
        structure.frac_coords[liquid], structure.frac_coords[metal]
    )
    shortest = float(distances.min())
    if shortest < clearance - 1e-6:
        i, j = np.unravel_index(np.argmin(distances), distances.shape)
        raise PackingError(
            f"electrolyte atom {liquid[i]} ({structure[liquid[i]].specie}) is {shortest:.2f} A "
            f"from metal atom {metal[j]}; surface_clearance is {clearance} A"
        )
    return shortest


def verify_shell(structure: Structure, li_index: int, shell: list[int]) -> dict:
    """Distances of the Li+ at ``li_index`` to its ``shell`` O, its FSI- N and the metal.

    Raises PackingError if a shell O is farther than ``SHELL_CUTOFF``.
    """
    metal, _ = _metal_and_liquid(structure)
    nitrogen = [i for i, site in enumerate(structure) if site.specie.symbol == "N"]

    def distances(indices):
        return structure.lattice.get_all_distances(
            structure.frac_coords[[li_index]], structure.frac_coords[indices]
        )[0]

    to_shell = distances(shell)
    if to_shell.max() > SHELL_CUTOFF:
        raise PackingError(
            f"the Li+ (atom {li_index}) has a first-shell O {to_shell.max():.2f} A away "
            f"(> {SHELL_CUTOFF} A); the contact ion pair did not form, try another seed"
        )
    return {
        "li_index": li_index,
        "shell_o": shell,
        "o_distances": to_shell.round(4).tolist(),
        "fsi_n_distance": float(distances(nitrogen).min()),
        "metal_distance": float(distances(metal).min()),
    }


def verify_packing(structure: Structure, min_distance: float) -> float:
    """Shortest distance between atoms of different molecules (slab = one body); raise if short."""
    ids = np.array(structure.site_properties["molecule"])
    distances = structure.distance_matrix
    other = ids[:, None] != ids[None, :]
    shortest = float(distances[other].min())
    if shortest < min_distance:
        i, j = np.argwhere(other & (distances == shortest))[0]
        raise PackingError(
            f"packing failed: atoms {i} ({structure[i].specie}) and {j} "
            f"({structure[j].specie}) of different molecules are {shortest:.2f} A apart "
            f"(minimum {min_distance} A); try another seed or a lower density"
        )
    return shortest
