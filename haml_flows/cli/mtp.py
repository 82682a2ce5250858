"""``haml mtp``: untrained potentials and extrapolation grades in MLIP's formats."""

from __future__ import annotations

from pathlib import Path

import typer

from haml_flows.files import write_atomic

mtp_app = typer.Typer(
    rich_markup_mode=None,
    help="MTP templates and extrapolation grades (MLIP files).",
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
    from pymatgen.core import Element

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
    potential: Path = typer.Argument(..., metavar="POTENTIAL", help="Trained potential (.mtp)."),
    training: Path = typer.Argument(..., metavar="TRAINING", help="Training set (.cfg) for the active set."),
    inputs: Path = typer.Argument(..., metavar="INPUTS", help="Configurations to grade (.cfg)."),
    output: Path = typer.Argument(..., metavar="OUTPUT", help="Output .cfg with the MV_grade feature."),
    mode: str = typer.Option(
        "neighborhood", "--mode",
        help="neighborhood (site energies, MLIP's default) or configuration.",
    ),
) -> None:
    """Grade configurations as MLIP's calc-grade does.

    The MaxVol active set of the training set over the derivatives of the
    energies with respect to all MTP parameters (moment, species and radial
    coefficients), chosen by MLIP's procedure; MV_grade is the largest
    coefficient of a configuration's rows against it. With an mlp
    command configured (HAML_MLP_CMD) MLIP's own mlp calc-grade computes
    the grades instead (neighbourhood mode).
    """
    from haml_flows.engines.commands import MLP
    from haml_flows.engines.mlip import calc_grade_with_mlp
    from haml_flows.mtp.frames import cfg_to_frames, frames_to_cfg
    from haml_flows.mtp.grade import GRADE_MODES, ActiveSet, GradeError, load_potential

    if mode not in GRADE_MODES:
        _fail(f"--mode: {mode!r} is not one of {', '.join(GRADE_MODES)}")
    for path in (potential, training, inputs):
        if not path.exists():
            _fail(f"{path} does not exist")
    pot_text = potential.read_text()
    data = load_potential(pot_text)

    def read(path: Path):
        text = path.read_text()
        has_species = "Feature   species" in text
        return cfg_to_frames(text, species=None if has_species else list(data.species))

    graded = read(inputs)
    mlp_cmd = MLP.resolve()
    try:
        if mlp_cmd is not None:
            if mode != "neighborhood":
                _fail("--mode configuration: MLIP's calc-grade grades neighbourhoods only")
            grades = calc_grade_with_mlp(
                pot_text, read(training), graded, mlp_cmd, species=list(data.species)
            )
        else:
            active_set = ActiveSet.from_training(pot_text, read(training), mode=mode)
            grades = active_set.grade_frames(graded)
    except (GradeError, RuntimeError) as exc:
        _fail(f"{exc}")
    for atoms, value in zip(graded, grades):
        atoms.info["MV_grade"] = value
    write_atomic(output, frames_to_cfg(graded, species=list(data.species)))
    typer.echo(
        f"wrote {output}: {len(graded)} configurations, MV_grade "
        f"min {min(grades):.3g} max {max(grades):.3g} ({mode} mode)"
    )
