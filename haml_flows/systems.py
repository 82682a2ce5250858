"""Small interface models for the embedded engines.

The full interface builders (ordered argyrodite, dopants, coherent interfaces,
liquid electrolytes) live in ``builders``; this module builds the small,
deterministic Li | Li6PS5Cl model the main job and the tests run on, and
turns a spec's ``system`` section into a structure.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

from haml_flows.builders.doping import doped_li6ps5cl
from haml_flows.builders.electrolyte import li_lifsi_dme
from haml_flows.builders.errors import BuilderError, UnknownParameterError
from haml_flows.builders.interfaces import li_lpsc
from haml_flows.spec import BUILDER_NAMES, SpecError, SystemSpec

LPSC_LATTICE_PARAMETER = 9.85
LI_BCC_LATTICE_PARAMETER = 3.44


def li6ps5cl_ordered(a: float = LPSC_LATTICE_PARAMETER) -> Structure:
    """Cubic Li6PS5Cl (F-43m) with Li ordered on the 24g-like site (52 atoms).

    Cl on 4a, P on 4b, free S on 4d, PS4 sulfur on 16e; each pair of
    half-occupied 48h Li sites is replaced by one site close to their 24g
    midpoint, which orders the Li sublattice without a search.
    """
    return Structure.from_spacegroup(
        "F-43m",
        Lattice.cubic(a),
        ["Cl", "P", "S", "S", "Li"],
        [
            (0.0, 0.0, 0.0),
            (0.5, 0.5, 0.5),
            (0.75, 0.75, 0.75),
            (0.38, 0.38, 0.38),
            (0.98, 0.25, 0.25),
        ],
    )


def _surface_cell(conventional: Structure) -> Structure:
    """The a/sqrt(2) x a/sqrt(2) x a cell of a cubic F structure, axes along x, y, z."""
    a = conventional.lattice.a
    vectors = np.array([[a / 2, a / 2, 0.0], [-a / 2, a / 2, 0.0], [0.0, 0.0, a]])
    frac = np.mod(conventional.cart_coords @ np.linalg.inv(vectors), 1.0)
    unique: dict[tuple, str] = {}
    for site, f in zip(conventional, frac, strict=True):
        key = tuple(np.round(f, 4) % 1.0)
        unique.setdefault(key, site.specie.symbol)
    side = a / np.sqrt(2)
    return Structure(
        Lattice.orthorhombic(side, side, a),
        list(unique.values()),
        list(unique.keys()),
    ).get_sorted_structure()


def _whole_ps4_cartesian(lpsc: Structure) -> tuple[list[str], np.ndarray]:
    """Cartesian coordinates with every PS4 unit kept whole across the z boundary."""
    cart = lpsc.cart_coords.copy()
    species = [site.specie.symbol for site in lpsc]
    p_indices = [i for i, s in enumerate(species) if s == "P"]
    for i, symbol in enumerate(species):
        if symbol != "S":
            continue
        for p in p_indices:
            dist, image = lpsc[p].distance_and_image(lpsc[i])
            if dist < 2.5:
                cart[i] = lpsc.lattice.get_cartesian_coords(
                    lpsc[i].frac_coords + image
                )
                break
    return species, cart


def li_lpsc_mini(li_layers: int = 4, gap: float = 2.4) -> Structure:
    """A small Li | Li6PS5Cl interface (26 + 4*li_layers atoms, periodic in z).

    The argyrodite cell is reduced to its a/sqrt(2) x a/sqrt(2) (001) surface
    cell (26 atoms, two formula units); a 2 x 2 bcc Li (001) slab of
    ``li_layers`` layers is strained onto it (about 1.2 %) and stacked with
    ``gap`` Angstrom between the blocks on both sides.
    """
    if li_layers < 1:
        raise BuilderError(f"li_layers must be >= 1, got {li_layers}")
    if gap <= 1.0:
        raise BuilderError(f"gap must be > 1.0 Angstrom, got {gap}")
    lpsc = _surface_cell(li6ps5cl_ordered())
    species, cart = _whole_ps4_cartesian(lpsc)
    cart[:, 2] -= cart[:, 2].min()
    lpsc_thickness = cart[:, 2].max()

    lateral = lpsc.lattice.a
    layer_spacing = LI_BCC_LATTICE_PARAMETER / 2
    li_cart = []
    for layer in range(li_layers):
        shift = 0.25 if layer % 2 else 0.0
        for i in range(2):
            for j in range(2):
                li_cart.append(
                    [
                        (i / 2 + shift) * lateral,
                        (j / 2 + shift) * lateral,
                        lpsc_thickness + gap + layer * layer_spacing,
                    ]
                )
    c = lpsc_thickness + 2 * gap + (li_layers - 1) * layer_spacing
    lattice = Lattice.orthorhombic(lateral, lateral, c)
    all_species = species + ["Li"] * len(li_cart)
    all_cart = np.vstack([cart, np.array(li_cart)])
    return Structure(
        lattice, all_species, all_cart, coords_are_cartesian=True, to_unit_cell=True
    )


def _checked(name: str, builder):
    """``builder`` refusing keywords it does not take, with the list it does."""
    allowed = list(inspect.signature(builder).parameters)

    @functools.wraps(builder)
    def build(**parameters):
        unknown = [key for key in parameters if key not in allowed]
        if unknown:
            guesses = [g for key in unknown for g in difflib.get_close_matches(key, allowed, 1)]
            hint = f" (did you mean {', '.join(map(repr, guesses))}?)" if guesses else ""
            raise UnknownParameterError(
                f"unknown parameter {', '.join(map(repr, unknown))} of builder {name}"
                f"{hint}; allowed: {', '.join(allowed)}"
            )
        return builder(**parameters)

    return build


BUILDERS = {
    name: _checked(name, builder)
    for name, builder in {
        "li_lpsc_mini": li_lpsc_mini,
        "li6ps5cl": doped_li6ps5cl,
        "li_lpsc": li_lpsc,
        "li_lifsi_dme": li_lifsi_dme,
    }.items()
}
"""The named builders a spec's ``system.builder`` picks; keyword arguments only."""
assert set(BUILDERS) == set(BUILDER_NAMES), "spec.BUILDER_NAMES names the builders"


def build_system(system: SystemSpec, base_dir: Path | None = None) -> Structure:
    """The structure a spec's ``system`` section describes."""
    if (system.builder is None) == (system.file is None):
        raise SpecError("system: give exactly one of 'builder' or 'file'")
    if system.builder is not None:
        try:
            return BUILDERS[system.builder](**system.parameters)
        except (TypeError, BuilderError) as exc:
            raise SpecError(f"system.parameters: {exc}") from exc
    path = Path(system.file)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.exists():
        raise SpecError(f"system.file: {path} does not exist")
    return Structure.from_file(path)
