"""bcc Li metal and its (100), (110), (111) slabs via pymatgen's SlabGenerator."""

from __future__ import annotations

from pymatgen.core import Lattice, Structure
from pymatgen.core.surface import SlabGenerator

from haml_flows.builders.errors import BuilderError

LI_BCC_LATTICE_PARAMETER = 3.44
LI_FACETS = {"100": (1, 0, 0), "110": (1, 1, 0), "111": (1, 1, 1)}


def li_bcc(a: float = LI_BCC_LATTICE_PARAMETER) -> Structure:
    """Conventional bcc Li (2 atoms)."""
    return Structure(Lattice.cubic(a), ["Li", "Li"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def parse_facet(facet) -> tuple[int, int, int]:
    """'100', (1, 0, 0) or [1, 0, 0] -> (1, 0, 0); only the three low-index facets."""
    key = "".join(str(abs(int(i))) for i in facet) if not isinstance(facet, str) else facet.strip("()")
    if key not in LI_FACETS:
        raise BuilderError(f"unknown Li facet {facet!r}; allowed: {sorted(LI_FACETS)}")
    return LI_FACETS[key]


def li_slab(
    facet="100",
    thickness: float = 10.0,
    vacuum: float = 15.0,
    a: float = LI_BCC_LATTICE_PARAMETER,
    supercell: tuple[int, int] = (1, 1),
) -> Structure:
    """An orthogonalised bcc Li slab, at least ``thickness`` Angstrom thick, c along z.

    Atoms carry the ``wyckoff`` label ``Li_bcc`` so that dopants and Li
    vacancies never land in the metal.
    """
    generator = SlabGenerator(
        li_bcc(a),
        parse_facet(facet),
        min_slab_size=thickness,
        min_vacuum_size=vacuum,
        center_slab=True,
        primitive=True,
        lll_reduce=True,
    )
    slab = generator.get_slab().get_orthogonal_c_slab()
    slab.make_supercell([supercell[0], supercell[1], 1])
    structure = Structure(
        slab.lattice, slab.species, slab.frac_coords, site_properties={"wyckoff": ["Li_bcc"] * len(slab)}
    )
    return structure
