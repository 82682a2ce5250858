"""What the commands share: the console, the database connection, a run's table."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the database, schema and settings modules load only when a command runs
    from haml_flows.schemas import CycleDoc
    from haml_flows.settings import HamlSettings

console = Console()
if not console.is_terminal:
    console = Console(width=160)

CONTEXT = {"help_option_names": ["-h", "--help"]}
"""Click context settings of every command: ``-h`` as well as ``--help``."""

WORKDIR = typer.Option(Path("haml_runs"), help="Directory for the jobs' working folders.")
"""The ``--workdir`` option of the commands that run jobs here."""

STOP_LABELS = {"gamma_break": "break", "max_steps": "limit", "collapse": "collapse"}


def show(*objects, **kwargs) -> None:
    """Print on the commands' console."""
    console.print(*objects, **kwargs)


def fail(message: str, code: int) -> NoReturn:
    """Print ``message`` as an error on one line (never wrapped) and leave with ``code``."""
    from rich.markup import escape

    show(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)


@contextlib.contextmanager
def quiet_dependencies(*categories: type[Warning]) -> Iterator[None]:
    """Dependencies' warnings (by default deprecation notices) hidden while a command runs.

    The filter ends with the block: nothing is silenced for the rest of the process.
    """
    with warnings.catch_warnings():
        for category in categories or (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category)
        yield


class _ConsoleHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        show(self.format(record), highlight=False)


def show_progress() -> None:
    """Cycle lines (logger ``haml_flows.progress``) on the console."""
    progress = logging.getLogger("haml_flows.progress")
    if not any(isinstance(h, _ConsoleHandler) for h in progress.handlers):
        progress.addHandler(_ConsoleHandler())
    progress.setLevel(logging.INFO)
    progress.propagate = False


def connect_store(settings: HamlSettings | None = None, start: bool = False):
    """The connected JobStore of the configured database.

    Only the commands that run work (``haml run``, ``haml worker``, ``haml
    screen``) pass ``start=True`` and so start the embedded server when it is
    down; every other command leaves with a line naming the address that did
    not answer.
    """
    from haml_flows.database.server import DatabaseUnavailableError, ensure_database
    from haml_flows.database.stores import make_job_store
    from haml_flows.settings import get_settings

    settings = get_settings(settings)
    try:
        ensure_database(settings, start=start)
    except DatabaseUnavailableError as exc:
        fail(str(exc), code=2)
    store = make_job_store(settings)
    store.connect()
    return store


@dataclass
class Clients:
    """Everything a screen command talks to, on the configured database."""

    settings: HamlSettings
    store: object
    launchpad: object
    db: object


def clients(settings: HamlSettings | None = None, start: bool = False) -> Clients:
    """Settings, JobStore, LaunchPad and pymongo database on the configured server."""
    from haml_flows.database.stores import connect, make_launchpad
    from haml_flows.settings import get_settings

    settings = get_settings(settings)
    store = connect_store(settings, start=start)
    return Clients(settings, store, make_launchpad(settings), connect(settings))


def cycle_table(docs: list[CycleDoc], title: str) -> Table:
    """The per-cycle table: steps, simulated time, errors and stage times.

    E and F are held-out RMSEs; 'stop' is 'break' when gamma passed gamma_break,
    'limit' at the step limit and 'collapse' when the collapse guard fired;
    'γ stop' is the grade of the last step (over all MTP parameters),
    'sel' the frames kept above gamma_select and 'audit F' the force RMSE of
    the MLP on its own frames against the reference engine (! when it failed).
    """
    table = Table(
        title=title,
        caption="AIMD / MLP-MD in steps; times in seconds; γ: MaxVol grade "
        "over all MTP parameters",
    )
    for column in (
        "cycle", "AIMD", "AIMD s", "frames", "E meV/at", "F eV/A",
        "train s", "MLP-MD", "stop", "γ stop", "sel", "audit F", "MLP s", "ps",
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
            STOP_LABELS.get(d.stop_reason, d.stop_reason),
            f"{d.gamma_at_stop:.3g}",
            str(d.n_selected),
            _audit_cell(d),
            f"{d.mlpmd_cost.wall_seconds:.1f}",
            f"{d.cumulative_ps:.3f}",
        )
    return table


def _audit_cell(doc: CycleDoc) -> str:
    if doc.audit_force_rmse is None:
        return "—"
    return f"{doc.audit_force_rmse:.3f}" + ("" if doc.audit_passed else " !")


def show_run(store, run_id: str, hint: str = "") -> None:
    """A run's stored cycle table, and how it ended once it has."""
    from haml_flows.queries import cycle_docs, run_summary

    show(cycle_table(cycle_docs(store, run_id), f"run {run_id}"))
    summary = run_summary(store, run_id)
    if summary is not None:
        show(
            f"finished: {summary.cycles} cycles, {summary.simulated_fs / 1000:.3f} ps "
            f"({summary.stop_reason}){hint}"
        )
