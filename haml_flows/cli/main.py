"""The ``haml`` command line."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from haml_flows.cli.build import build_app
from haml_flows.cli.db import db_app
from haml_flows.cli.mtp import mtp_app
from haml_flows.cli.report import compare_command, report_command
from haml_flows.cli.screen import (
    results_command,
    screen_command,
    status_command,
    worker_command,
)
from haml_flows.cli.resume import resume_command
from haml_flows.database.server import DatabaseUnavailableError, ensure_database
from haml_flows.database.stores import make_job_store, make_launchpad
from haml_flows.queries import cycle_docs, run_summary
from haml_flows.schemas import CycleDoc
from haml_flows.settings import HamlSettings
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
console = Console()
if not console.is_terminal:
    console = Console(width=160)


class _ConsoleHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        console.print(self.format(record), highlight=False)


def _show_progress() -> None:
    """Cycle lines on the console; dependencies' deprecation notices hidden."""
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    progress = logging.getLogger("haml_flows.progress")
    if not any(isinstance(h, _ConsoleHandler) for h in progress.handlers):
        progress.addHandler(_ConsoleHandler())
    progress.setLevel(logging.INFO)
    progress.propagate = False


def _connect(settings: HamlSettings):
    try:
        ensure_database(settings)
    except DatabaseUnavailableError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from None
    return make_job_store(settings)


def cycle_table(docs: list[CycleDoc], title: str) -> Table:
    """The per-cycle table: steps, simulated time, errors and stage times.

    E and F are held-out RMSEs; 'stop' is 'break' when gamma passed gamma_break
    and 'limit' at the step limit.
    """
    table = Table(title=title, caption="AIMD / MLP-MD in steps; times in seconds")
    for column in (
        "cycle", "AIMD", "AIMD s", "frames", "E meV/at", "F eV/A",
        "train s", "MLP-MD", "stop", "gamma", "MLP s", "ps",
    ):
        table.add_column(column, justify="right")
    for d in docs:
        table.add_row(
            str(d.cycle),
            str(d.aimd_steps),
            f"{d.aimd_cost.wall_seconds:.1f}",
            str(d.training_set_size),
            f"{1000 * d.energy_rmse:.2f}",
            f"{d.force_rmse:.3f}",
            f"{d.training_cost.wall_seconds:.1f}",
            str(d.mlpmd_steps),
            "break" if d.stop_reason == "gamma_break" else "limit",
            f"{d.gamma_at_stop:.2f}",
            f"{d.mlpmd_cost.wall_seconds:.1f}",
            f"{d.cumulative_ps:.3f}",
        )
    return table


@app.command()
def run(
    spec: Path = typer.Argument(..., help="Run specification (YAML)."),
    fireworks: bool = typer.Option(
        False, "--fireworks", help="Add to the LaunchPad and run rapidfire here."
    ),
    workdir: Path = typer.Option(
        Path("haml_runs"), help="Directory for the jobs' working folders."
    ),
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
        console.print(f"[red]invalid spec {spec}:[/red] {exc}")
        raise typer.Exit(code=2) from None
    settings = HamlSettings()
    store = _connect(settings)
    _show_progress()
    run_dir = workdir.resolve() / prepared.run_id
    console.print(
        f"run {prepared.run_id}: {prepared.structure.composition.reduced_formula}, "
        f"{len(prepared.structure)} atoms, up to {prepared.spec.stop.max_cycles} cycles"
        f" or {prepared.spec.stop.total_time_ps} ps; working in {run_dir}"
    )
    try:
        if fireworks:
            run_prepared_on_fireworks(prepared, store, make_launchpad(settings), run_dir)
        else:
            run_prepared_locally(prepared, store, run_dir)
    except DatabaseUnavailableError as exc:
        console.print(f"[red]error:[/red] {exc}")
        console.print(f"run id: {prepared.run_id}")
        raise typer.Exit(code=3) from None
    store.connect()
    docs = cycle_docs(store, prepared.run_id)
    console.print(cycle_table(docs, f"run {prepared.run_id}"))
    summary = run_summary(store, prepared.run_id)
    if summary is not None:
        console.print(
            f"finished: {summary.cycles} cycles, {summary.simulated_fs / 1000:.3f} ps "
            f"({summary.stop_reason}); query with: haml cycles {prepared.run_id}"
        )


@app.command()
def cycles(run_id: str = typer.Argument(..., help="Run id printed by 'haml run'.")) -> None:
    """Print the stored per-cycle table of a run."""
    store = _connect(HamlSettings())
    store.connect()
    docs = cycle_docs(store, run_id)
    if not docs:
        console.print(f"[red]no cycles stored for run {run_id!r}[/red]")
        raise typer.Exit(code=1)
    console.print(cycle_table(docs, f"run {run_id}"))


if __name__ == "__main__":
    app()
