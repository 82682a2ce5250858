"""``haml mtp``: untrained potentials and extrapolation grades in MLIP's formats."""

from __future__ import annotations

from pathlib import Path

import typer
from pymatgen.core import Element

from haml_flows.files import write_atomic

mtp_app = typer.Typer(
    help="Moment Tensor Potentials: templates and extrapolation grades (MLIP files).",
    no_args_is_help=True,
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


@mtp_app.command()
def template(
    level: int = typer.Option(..., "--level", help="lev_max: even, 2 to 28."),
    species: list[str] = typer.Option(
        ..., "--species", help="Element symbols, e.g. --species Li --species P."
    ),
    cutoff: float = typer.Option(5.0, help="Radial cutoff, Angstrom."),
    min_dist: float = typer.Option(1.5, help="Inner radius of the radial basis."),
    radial_basis_size: int = typer.Option(8, help="Chebyshev radial functions."),
    output: Path = typer.Option(..., "-o", "--output", help="The .mtp file to write."),
) -> None:
    """Write an untrained MTP of any even level in MLIP's .mtp format."""
    from haml_flows.mtp.basis import untrained_mtp
    from haml_flows.mtp.grade import potential_text

    symbols = [s for item in species for s in item.replace(",", " ").split()]
    unknown = [s for s in symbols if not Element.is_valid_symbol(s)]
    if unknown:
        _fail(f"--species: unknown elements {unknown}")
    try:
        data = untrained_mtp(
            level,
            [Element(s).Z for s in symbols],
            cutoff=cutoff,
            min_dist=min_dist,
            radial_basis_size=radial_basis_size,
        )
    except ValueError as exc:
        _fail(str(exc))
    write_atomic(output, potential_text(data))
    typer.echo(
        f"wrote {output}: level {level}, {data.alpha_scalar_moments} basis functions,"
        f" {data.alpha_moments_count} moments, species {' '.join(symbols)}"
    )


@mtp_app.command()
def grade(
    potential: Path = typer.Argument(..., help="Trained potential (.mtp)."),
    training: Path = typer.Argument(..., help="Training set (.cfg) for the active set."),
    inputs: Path = typer.Argument(..., help="Configurations to grade (.cfg)."),
    output: Path = typer.Argument(..., help="Output .cfg with the MV_grade feature."),
) -> None:
    """Grade configurations as MLIP's calc-grade does (MaxVol, neighbourhoods).

    With an ``mlp`` command configured (HAML_MLP_CMD) MLIP's own
    ``mlp calc-grade`` computes the grades; otherwise motep does.
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    from haml_flows.mtp.frames import cfg_to_frames, frames_to_cfg
    from haml_flows.mtp.grade import ActiveSet, load_potential, mtp_calculator
    from haml_flows.engines.commands import MLP
    from haml_flows.engines.mlip import calc_grade_with_mlp

    for path in (potential, training, inputs):
        if not path.exists():
            _fail(f"{path} does not exist")
    pot_text = potential.read_text()
    data = load_potential(pot_text)

    def read(path: Path):
        text = path.read_text()
        has_species = "Feature   species" in text
        return cfg_to_frames(text, species=None if has_species else list(data.species))

    mlp_cmd = MLP.resolve()
    if mlp_cmd is not None:
        graded = read(inputs)
        try:
            grades = calc_grade_with_mlp(
                pot_text, read(training), graded, mlp_cmd, species=list(data.species)
            )
        except RuntimeError as exc:
            _fail(str(exc))
        for atoms, value in zip(graded, grades):
            atoms.info["MV_grade"] = value
    else:
        active_set = ActiveSet.from_training(pot_text, read(training))
        graded = []
        for atoms in read(inputs):
            results = dict(atoms.calc.results)
            atoms.calc = mtp_calculator(pot_text, active_set)
            atoms.info["MV_grade"] = active_set.gamma(atoms)
            atoms.calc = SinglePointCalculator(atoms, **results)
            graded.append(atoms)
    write_atomic(output, frames_to_cfg(graded, species=list(data.species)))
    grades = [a.info["MV_grade"] for a in graded]
    typer.echo(
        f"wrote {output}: {len(graded)} configurations, MV_grade "
        f"min {min(grades):.3g} max {max(grades):.3g}"
    )
