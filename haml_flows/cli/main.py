"""The ``haml`` command line.

Only typer, rich and the command modules load at start-up: each command
imports the database, engines and analysis it needs when it runs, so that
``haml --help`` answers at once.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from typer.core import TyperGroup

from haml_flows.cli._common import (
    CONTEXT,
    WORKDIR,
    connect_store,
    cycle_table,
    fail,
    quiet_dependencies,
    show,
    show_progress,
    show_run,
)
from haml_flows.cli.build import build_app
from haml_flows.cli.db import db_app
from haml_flows.cli.export import export_command
from haml_flows.cli.mtp import mtp_app
from haml_flows.cli.report import compare_command, report_command
from haml_flows.cli.resume import resume_command
from haml_flows.cli.screen import (
    results_command,
    screen_command,
    status_command,
    worker_command,
)
from haml_flows.cli.submit import submit_command


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"haml-flows {version('haml-flows')}")
        except PackageNotFoundError:
            typer.echo("haml-flows (not installed: run from a source tree)")
        raise typer.Exit()


#: commands in the order a user meets them: run and look, report, export, resume,
#: build, submit runs and screens to workers, then the database and MTP tools
ORDER = ["run", "cycles", "runs", "report", "compare", "export", "resume", "build",
         "submit", "screen", "worker", "status", "results", "db", "mtp"]


class _InOrder(TyperGroup):
    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))


app = typer.Typer(
    cls=_InOrder,
    rich_markup_mode=None,
    help="HAML simulations of electrode-electrolyte interfaces: AIMD + MTP cycles.",
    no_args_is_help=True,
    context_settings=CONTEXT,
)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """HAML simulations of electrode-electrolyte interfaces: AIMD + MTP cycles."""


@app.command()
def run(
    spec: Path = typer.Argument(..., metavar="SPEC", help="Run specification (YAML)."),
    fireworks: bool = typer.Option(
        False, "--fireworks", help="Add to the LaunchPad and run rapidfire here."
    ),
    check: bool = typer.Option(
        False, "--check",
        help="Validate the spec and build the system; print what would run, start nothing.",
    ),
    workdir: Path = WORKDIR,
) -> None:
    """Run a HAML spec, or --check it.

    Prints a line per stage and per finished cycle, then the cycle table.
    """
    from haml_flows.runner import prepare_run
    from haml_flows.spec import SpecError

    try:
        with quiet_dependencies():
            prepared = prepare_run(spec)
    except SpecError as exc:
        fail(f"invalid spec {spec}: {exc}", code=2)
    if check:
        show(run_plan(prepared))
        show(f"spec {spec} is valid; nothing was started (run it with: haml run {spec})")
        return
    _run_prepared(prepared, fireworks, workdir)


def run_plan(prepared):
    """What ``haml run`` would do with a prepared run: system, engines, stages, limits."""
    from rich.table import Table

    spec = prepared.spec
    table = Table(title=f"{spec.name}: what would run", show_header=False)
    table.add_column("what")
    table.add_column("value")
    rows = [
        ("system", f"{prepared.structure.composition.reduced_formula}, "
                   f"{len(prepared.structure)} atoms ({spec.system.builder or 'file'})"),
        ("optimization", f"{spec.optimization.steps} steps to fmax {spec.optimization.fmax} eV/Å"
         if spec.optimization.enabled else "off"),
        ("AIMD", f"{spec.reference.engine}, {spec.reference.steps} steps of "
                 f"{spec.reference.time_step} fs per cycle at {spec.reference.temperature} K"),
        ("MTP", f"level {spec.mtp.level}, cutoff {spec.mtp.cutoff} Å"),
        ("MLP-MD", f"up to {spec.mlpmd.max_steps} steps of {spec.mlpmd.time_step} fs, "
                   f"γ_break {spec.mlpmd.gamma_break}"),
        ("audit", f"{spec.audit.frames} frames per segment, pass at force RMSE ≤ "
                  f"{spec.audit.max_force_rmse} eV/Å" if spec.audit.enabled else "off"),
        ("stop", f"{spec.stop.max_cycles} cycles or {spec.stop.total_time_ps} ps"),
        ("run id", f"{prepared.run_id} (a new one at each run)"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def _run_prepared(prepared, fireworks: bool, workdir: Path) -> None:
    from haml_flows.database.server import DatabaseUnavailableError
    from haml_flows.database.stores import connect, ensure_output_indexes, make_launchpad
    from haml_flows.runner import (
        run_prepared_locally,
        run_prepared_on_fireworks,
        unfinished_reason,
    )
    from haml_flows.settings import get_settings

    settings = get_settings()
    store = connect_store(settings, start=True)
    ensure_output_indexes(connect(settings), settings.DOCS_COLLECTION)
    run_dir = workdir.resolve() / prepared.run_id
    stop = prepared.spec.stop
    log = show_progress(run_dir, (stop.max_cycles, stop.total_time_ps))
    show(
        f"run {prepared.run_id}: {prepared.structure.composition.reduced_formula}, "
        f"{len(prepared.structure)} atoms, up to {prepared.spec.stop.max_cycles} cycles"
        f" or {prepared.spec.stop.total_time_ps} ps; working in {run_dir}, log {log.name}"
    )
    left = None
    try:
        with quiet_dependencies():
            if fireworks:
                launchpad = make_launchpad(settings)
                run_prepared_on_fireworks(prepared, store, launchpad, run_dir)
                left = unfinished_reason(store, launchpad, prepared.run_id)
            else:
                run_prepared_locally(prepared, store, run_dir)
    except DatabaseUnavailableError as exc:
        fail(f"{exc} (run id {prepared.run_id}; continue with: haml resume "
             f"{prepared.run_id})", code=3)
    show_run(store, prepared.run_id, f"; query with: haml cycles {prepared.run_id}")
    if left:
        fail(f"{left}; continue with: haml resume {prepared.run_id}", code=1)


@app.command()
def cycles(run_id: str = typer.Argument(..., metavar="RUN_ID", help="Run id printed by 'haml run'.")) -> None:
    """The stored per-cycle table of a run."""
    from haml_flows.queries import cycle_docs, run_doc, unknown_run_message

    store = connect_store()
    docs = cycle_docs(store, run_id)
    if not docs:
        if run_doc(store, run_id) is None:
            fail(unknown_run_message(store, run_id), code=1)
        show(f"run {run_id}: no cycle finished yet (see haml runs)")
        raise typer.Exit(code=1)
    show(cycle_table(docs, f"run {run_id}"))


class RunState(str, Enum):
    finished = "finished"
    unfinished = "unfinished"


@app.command("runs")
def runs_command(
    name: str = typer.Option(None, "--name", help="Only runs whose spec name contains this."),
    state: RunState = typer.Option(None, "--state", help="Only finished or unfinished runs."),
    last: int = typer.Option(0, "--last", help="Only the newest N runs (0: all)."),
) -> None:
    """List the stored runs: state, cycles, ps, last update."""
    from rich.table import Table

    from haml_flows.queries import run_listing

    store = connect_store()
    with quiet_dependencies():
        rows = run_listing(store)
    total = len(rows)
    if name:
        rows = [r for r in rows if name.lower() in r.name.lower()]
    if state is not None:
        rows = [r for r in rows if r.finished == (state is RunState.finished)]
    if last > 0:
        rows = rows[-last:]
    if not rows:
        show("no runs stored" if not total else f"none of the {total} stored runs match")
        return
    table = Table(title=f"{len(rows)} of {total} runs", caption="times in UTC")
    for column in ("run id", "name", "system", "state", "cycles", "ps", "started",
                   "last update"):
        table.add_column(column, justify="right" if column in ("cycles", "ps") else "left")
    for r in rows:
        table.add_row(r.run_id, r.name, f"{r.formula} ({r.n_atoms})", r.state,
                      str(r.cycles), f"{r.simulated_ps:.3f}", r.started, r.last_update)
    show(table)


app.command("report")(report_command)
app.command("compare")(compare_command)
app.command("export")(export_command)
app.command("resume")(resume_command)
app.add_typer(build_app, name="build")
app.command("submit")(submit_command)
app.command("screen")(screen_command)
app.command("worker")(worker_command)
app.command("status")(status_command)
app.command("results")(results_command)
app.add_typer(db_app, name="db")
app.add_typer(mtp_app, name="mtp")


if __name__ == "__main__":
    app()
