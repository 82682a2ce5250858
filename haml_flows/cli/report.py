"""``haml report`` and ``haml compare``: figures, HTML and JSON from a stored run.

Wire into the main app with either

    from haml_flows.cli.report import compare_command, report_command
    app.command("report")(report_command)
    app.command("compare")(compare_command)

``report_app`` is a stand-alone Typer app with the same two commands (for
``python -m`` use and tests); adding it with ``app.add_typer`` would nest
them under a sub-command name.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from haml_flows.cli._common import connect_store, fail, quiet_dependencies, show

def _stored_runs(analysis, run_ids, *args):
    """``analysis(store, run_ids, *args)`` on the configured database.

    An unknown run id leaves with exit 1 and the closest stored ids.
    """
    from haml_flows.queries import run_doc, unknown_run_message

    store = connect_store()
    for run_id in [run_ids] if isinstance(run_ids, str) else run_ids:
        if run_doc(store, run_id) is None:
            fail(unknown_run_message(store, run_id), code=1)
    try:
        with quiet_dependencies():
            return analysis(store, run_ids, *args)
    except KeyError as exc:
        fail(str(exc.args[0]), code=1)
    except ValueError as exc:
        fail(str(exc), code=2)


def _options(pairs: list[str] | None, times: list[float] | None, max_samples: int):
    from haml_flows.analysis.neighbors import parse_pair
    from haml_flows.analysis.report import AnalysisOptions

    try:
        rdf_pairs = [parse_pair(p) for p in pairs] if pairs else None
    except ValueError as exc:
        fail(str(exc), code=2)
    return AnalysisOptions(
        rdf_pairs=rdf_pairs, rdf_times_ps=times or None, max_samples=max_samples
    )


def report_command(
    run_id: str = typer.Argument(..., metavar="RUN_ID", help="Run id printed by 'haml run'."),
    output: Path = typer.Option(
        None, "--output", "-o", help="Directory for the report (default report-RUN_ID)."
    ),
    rdf_pair: list[str] = typer.Option(
        None, "--rdf-pair", help="RDF pair such as Li-S (repeatable); default: bond pairs."
    ),
    rdf_time: list[float] = typer.Option(
        None, "--rdf-time", help="Time in ps for the RDFs (repeatable); default: first and last."
    ),
    max_samples: int = typer.Option(
        400, help="Frames (spread in time) on which bonds and products are counted."
    ),
) -> None:
    """Figures, index.html and summary.json of a stored run."""
    from haml_flows.analysis.report import build_report, summary_rows

    out = output or Path(f"report-{run_id}")
    if out.exists() and not out.is_dir():
        fail(f"--output {out}: a file is there; give a directory for the report", code=2)
    summary = _stored_runs(build_report, run_id, out, _options(rdf_pair, rdf_time, max_samples))
    table = Table(title=f"report {run_id}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in summary_rows(summary):
        table.add_row(key, value)
    show(table)
    show(f"wrote {out / 'index.html'}, {out / 'summary.json'} and "
         f"{len(summary['figures'])} figures")


def compare_command(
    run_ids: list[str] = typer.Argument(..., metavar="RUN_ID...", help="Run ids to put side by side."),
    output: Path = typer.Option(
        Path("compare"), "--output", "-o", help="Directory for compare.png and compare.json."
    ),
    max_samples: int = typer.Option(
        400, help="Frames (spread in time) on which bonds are counted."
    ),
) -> None:
    """Runs side by side: similarity, bonds, products, cost."""
    from haml_flows.analysis.report import compare_runs

    if output.exists() and not output.is_dir():
        fail(f"--output {output}: a file is there; give a directory", code=2)

    table_data = _stored_runs(compare_runs, run_ids, output, _options(None, None, max_samples))
    table = Table(title="comparison", caption="similarity: 1 = unchanged interface")
    table.add_column("quantity")
    for run in table_data["runs"]:
        table.add_column(run, justify="right")

    def fmt(v, spec=".4g"):
        return "–" if v is None else (format(v, spec) if isinstance(v, float) else str(v))

    table.add_row("similarity", *[fmt(v, ".4f") for v in table_data["similarity"]])
    table.add_row("simulated ps", *[fmt(v) for v in table_data["simulated_ps"]])
    table.add_row("HAML CPU h/ps", *[fmt(v) for v in table_data["haml_cpu_h_per_ps"]])
    table.add_row("AIMD CPU h/ps", *[fmt(v) for v in table_data["aimd_cpu_h_per_ps"]])
    table.add_row("speed-up", *[fmt(v, ".3g") for v in table_data["speedup"]])
    for key, values in table_data["bond_change"].items():
        table.add_row(f"Δ {key} bonds", *[f"{v:+d}" for v in values])
    for key, values in table_data["products_formed"].items():
        if any(values):
            table.add_row(f"Δ {key} (formula units)", *[f"{v:+d}" for v in values])
    show(table)
    show(f"wrote {output / 'compare.png'} and {output / 'compare.json'}")


report_app = typer.Typer(rich_markup_mode=None, help="Reports from stored HAML runs.", no_args_is_help=True,
                         add_completion=False)
report_app.command("report")(report_command)
report_app.command("compare")(compare_command)
