"""LiFSI + DME liquid electrolyte packed on a bcc Li slab with Packmol.

Packmol runs through pymatgen's ``PackmolBoxGen`` (the ``packmol`` PyPI
package ships the binary). The amounts follow from the molarity (mol of
LiFSI per litre of solution) and the density: per litre, the DME mass is
``1000 density - molarity M(LiFSI)``. The liquid fills the gap between the
slab and its periodic image in c; lateral box edges are inset by half the
tolerance, so the guarantee holds across periodic images too, and it is
verified after packing.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Molecule, Structure

from haml_flows.builders.geometry import check_min_distances
from haml_flows.builders.slabs import LI_BCC_LATTICE_PARAMETER, li_slab

AVOGADRO = 6.02214076e23
ANGSTROM3_PER_CM3 = 1e24
LI_LIQUID_GAP = 2.0
"""Closest approach (Angstrom) of any electrolyte atom to the slab's atomic planes."""


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
        raise ValueError(
            f"molarity ({molarity} M), density ({density} g/cm3) and lifsi ({lifsi}) "
            "must be positive"
        )
    dme_mass = 1000.0 * density - molarity * MOLAR_MASS["LiFSI"]
    if dme_mass <= 0:
        closest = 1000.0 * density / MOLAR_MASS["LiFSI"]
        raise ValueError(
            f"molarity {molarity} M at density {density} g/cm3 leaves no room for DME; "
            f"closest feasible molarity is below {closest:.2f} M"
        )
    ratio = dme_mass / MOLAR_MASS["DME"] / molarity
    count = round(ratio * lifsi)
    if count < 1:
        raise ValueError(
            f"{lifsi} LiFSI at {molarity} M needs {ratio * lifsi:.2f} DME; closest "
            f"feasible: lifsi >= {int(np.ceil(0.5 / ratio))}"
        )
    return count


def packmol_available() -> bool:
    return shutil.which("packmol") is not None


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
) -> Structure:
    """Li | LiFSI + DME: ``lifsi`` ion pairs and the matching DME on a Li slab.

    ``li_supercell`` repeats the slab surface cell in a and b; the liquid
    height follows from its mass and ``density``. Every pair of atoms from
    different molecules (periodic images included) ends at least
    ``min_distance`` apart; this is checked after packing.
    """
    from pymatgen.io.packmol import PackmolBoxGen

    if not packmol_available():
        raise RuntimeError("packmol is not on PATH; install it with 'pip install packmol'")
    n_dme = composition_for(molarity, density, lifsi)
    slab = li_slab(li_facet, thickness=li_thickness, vacuum=10.0, a=li_a,
                   supercell=(li_supercell, li_supercell))
    lattice = slab.lattice
    if abs(lattice.gamma - 90) > 1e-3:
        raise ValueError(f"Li({li_facet}) has no orthogonal surface cell; use '100' or '110'")
    z = slab.cart_coords[:, 2]
    slab_height = z.max() - z.min()
    mass = lifsi * MOLAR_MASS["LiFSI"] + n_dme * MOLAR_MASS["DME"]
    volume = mass / AVOGADRO / density * ANGSTROM3_PER_CM3
    liquid_height = volume / (lattice.a * lattice.b)
    c = slab_height + liquid_height + 2 * LI_LIQUID_GAP
    tolerance = min_distance + 0.2
    low = slab_height + LI_LIQUID_GAP
    box = [tolerance / 2, tolerance / 2, low, lattice.a - tolerance / 2, lattice.b - tolerance / 2, low + liquid_height]

    li_ion = Molecule(["Li"], [[0.0, 0.0, 0.0]], charge=1)
    molecules = [
        {"name": "li", "number": lifsi, "coords": li_ion},
        {"name": "fsi", "number": lifsi, "coords": fsi()},
        {"name": "dme", "number": n_dme, "coords": dme()},
    ]
    with tempfile.TemporaryDirectory(prefix="haml-packmol-") as tmp:
        generator = PackmolBoxGen(tolerance=tolerance, seed=seed)
        input_set = generator.get_input_set(molecules, box=box)
        input_set.write_input(tmp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            input_set.run(tmp, timeout=120)
        packed = Molecule.from_file(str(Path(tmp) / "packmol_out.xyz"))
    molecule_ids = np.repeat(
        np.arange(lifsi * 2 + n_dme),
        [1] * lifsi + [len(fsi())] * lifsi + [len(dme())] * n_dme,
    )
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
        "seed": seed,
    }
    return structure


def verify_packing(structure: Structure, min_distance: float) -> float:
    """Shortest distance between atoms of different molecules (slab = one body); raise if short."""
    ids = np.array(structure.site_properties["molecule"])
    distances = structure.distance_matrix
    other = ids[:, None] != ids[None, :]
    shortest = float(distances[other].min())
    if shortest < min_distance:
        i, j = np.argwhere(other & (distances == shortest))[0]
        raise ValueError(
            f"packing failed: atoms {i} ({structure[i].specie}) and {j} "
            f"({structure[j].specie}) of different molecules are {shortest:.2f} A apart "
            f"(minimum {min_distance} A); try another seed or a lower density"
        )
    return shortest
