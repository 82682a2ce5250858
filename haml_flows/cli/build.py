"""``haml build``: the paper's interface models from the command line."""

from __future__ import annotations

from pathlib import Path

import typer

from haml_flows.cli._common import fail, quiet_dependencies, show

build_app = typer.Typer(
    rich_markup_mode=None,
    help="Build Li | Li6PS5Cl (doped) and Li | LiFSI + DME models.",
    no_args_is_help=True,
    add_completion=False,
)


def _write(structure, output: Path | None) -> None:
    if output is None:
        show(f"built {structure.composition.reduced_formula}, {len(structure)} atoms; "
             "nothing written (give -o FILE, e.g. -o interface.cif)")
        return
    structure.to(filename=str(output))
    show(f"wrote {output.resolve()}")


@build_app.command("li-lpsc")
def build_li_lpsc(
    atoms: int = typer.Option(112, help="Target number of atoms."),
    li_facet: str = typer.Option("100", help="Li facet: 100, 110, 111 or auto."),
    max_mismatch: float = typer.Option(0.04, help="Largest lattice mismatch (fraction)."),
    dopant: str | None = typer.Option(None, help="Se, O or F."),
    concentration: float = typer.Option(0.25, help="Fraction of the host family doped."),
    host: str | None = typer.Option(None, help="S_4d, S_16e or Cl_4a (default per dopant)."),
    site_rule: str = typer.Option("interface", help="interface, wyckoff or random."),
    seed: int = typer.Option(0, help="Seed of the 'random' site rule."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Structure file (CIF, POSCAR, ...)."),
) -> None:
    """Li | Li6PS5Cl(001), coherent, optionally doped."""
    from haml_flows.builders.interfaces import li_lpsc

    try:
        with quiet_dependencies(Warning):
            structure = li_lpsc(
                atoms=atoms, li_facet=li_facet, max_mismatch=max_mismatch, dopant=dopant,
                concentration=concentration, host=host, site_rule=site_rule, seed=seed,
            )
    except ValueError as exc:
        fail(str(exc), code=2)
    p = structure.properties
    show(f"composition: {structure.composition.formula}", highlight=False)
    show(
        f"atoms: {len(structure)} ({p['lpsc_atoms']} LPSC + {p['li_atoms']} Li)  "
        f"Li({p['facet']}) | LPSC(001)  mismatch: {100 * p['mismatch']:.2f} %  "
        f"von Mises strain: {100 * p['von_mises_strain']:.2f} %",
        highlight=False,
    )
    if "doping" in p:
        d = p["doping"]
        show(
            f"doping: {d['dopant']} on {d['host']} at {d['concentration']:g} "
            f"({d['site_rule']}), sites {d['sites']}, Li vacancies {d['li_vacancies']}",
            highlight=False,
        )
    _write(structure, output)


@build_app.command("li-lifsi-dme")
def build_li_lifsi_dme(
    molarity: float = typer.Option(1.0, help="LiFSI, mol per litre of solution."),
    density: float = typer.Option(1.0, help="Solution density, g/cm3."),
    lifsi: int = typer.Option(1, help="Number of LiFSI ion pairs."),
    li_supercell: int = typer.Option(3, help="Li slab surface cell repeated n x n."),
    li_facet: str = typer.Option("100", help="Li facet: 100 or 110."),
    min_distance: float = typer.Option(1.8, help="Minimum distance between molecules, A."),
    seed: int = typer.Option(1, help="Packmol seed."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Structure file."),
) -> None:
    """Li | LiFSI + DME, packed with Packmol, each Li+ in a contact ion pair."""
    from haml_flows.builders.electrolyte import li_lifsi_dme

    try:
        structure = li_lifsi_dme(
            molarity=molarity, density=density, lifsi=lifsi, li_facet=li_facet,
            li_supercell=li_supercell, min_distance=min_distance, seed=seed,
        )
    except (ValueError, RuntimeError) as exc:
        fail(str(exc), code=2)
    p = structure.properties
    show(f"composition: {structure.composition.formula}", highlight=False)
    show(
        f"atoms: {len(structure)} ({p['li_slab_atoms']} Li slab + {p['lifsi']} LiFSI + "
        f"{p['dme']} DME)  liquid height: {p['liquid_height']:.1f} A  cell: "
        + " x ".join(f"{x:.2f}" for x in structure.lattice.abc),
        highlight=False,
    )
    for shell in p["li_ion_shells"]:
        show(
            f"Li+ (atom {shell['li_index']}): {len(shell['o_distances'])} O at "
            f"{min(shell['o_distances']):.2f}-{max(shell['o_distances']):.2f} A (one of its "
            f"FSI-), FSI- N {shell['fsi_n_distance']:.2f} A, "
            f"{shell['metal_distance']:.2f} A from the metal",
            highlight=False,
        )
    _write(structure, output)
