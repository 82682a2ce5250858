"""The ``haml`` command line."""

from __future__ import annotations

from pathlib import Path

import typer

from haml_flows.cli._common import (
    WORKDIR,
    connect_store,
    cycle_table,
    quiet_dependencies,
    show,
    show_progress,
    show_run,
)
from haml_flows.cli.build import build_app
from haml_flows.cli.db import db_app
from haml_flows.cli.mtp import mtp_app
from haml_flows.cli.report import compare_command, report_command
from haml_flows.cli.resume import resume_command
from haml_flows.cli.screen import (
    results_command,
    screen_command,
    status_command,
    worker_command,
)
from haml_flows.database.server import DatabaseUnavailableError
from haml_flows.database.stores import make_launchpad
from haml_flows.queries import cycle_docs
from haml_flows.settings import get_settings
from haml_flows.spec import SpecError

app = typer.Typer(
    help="HAML simulations of electrode-electrolyte interfaces: AIMD + MTP cycles.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db_app, name="db")
app.add_typer(build_app, name="build")
app.add_typer(mtp_app, name="mtp")
app.command("report")(report_command)
app.command("compare")(compare_command)
app.command("screen")(screen_command)
app.command("status")(status_command)
app.command("results")(results_command)
app.command("worker")(worker_command)
app.command("resume")(resume_command)


@app.command()
def run(
    spec: Path = typer.Argument(..., help="Run specification (YAML)."),
    fireworks: bool = typer.Option(
        False, "--fireworks", help="Add to the LaunchPad and run rapidfire here."
    ),
    workdir: Path = WORKDIR,
) -> None:
    """Run a HAML spec: one line per finished cycle, then the cycle table."""
    from haml_flows.runner import (
        prepare_run,
        run_prepared_locally,
        run_prepared_on_fireworks,
    )

    try:
        prepared = prepare_run(spec)
    except SpecError as exc:
        show(f"[red]invalid spec {spec}:[/red] {exc}")
        raise typer.Exit(code=2) from None
    settings = get_settings()
    store = connect_store(settings)
    show_progress()
    run_dir = workdir.resolve() / prepared.run_id
    show(
        f"run {prepared.run_id}: {prepared.structure.composition.reduced_formula}, "
        f"{len(prepared.structure)} atoms, up to {prepared.spec.stop.max_cycles} cycles"
        f" or {prepared.spec.stop.total_time_ps} ps; working in {run_dir}"
    )
    try:
        with quiet_dependencies():
            if fireworks:
                run_prepared_on_fireworks(prepared, store, make_launchpad(settings), run_dir)
            else:
                run_prepared_locally(prepared, store, run_dir)
    except DatabaseUnavailableError as exc:
        show(f"[red]error:[/red] {exc}")
        show(f"run id: {prepared.run_id}")
        raise typer.Exit(code=3) from None
    show_run(store, prepared.run_id, f"; query with: haml cycles {prepared.run_id}")


@app.command()
def cycles(run_id: str = typer.Argument(..., help="Run id printed by 'haml run'.")) -> None:
    """Print the stored per-cycle table of a run."""
    store = connect_store()
    docs = cycle_docs(store, run_id)
    if not docs:
        show(f"[red]no cycles stored for run {run_id!r}[/red]")
        raise typer.Exit(code=1)
    show(cycle_table(docs, f"run {run_id}"))


if __name__ == "__main__":
    app()
