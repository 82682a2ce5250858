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

STOP_LABELS = {
    "gamma_break": "break", "max_steps": "limit", "collapse": "collapse",
    "reference_check": "check",
}


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
    """Progress lines on the console: as they are on a terminal, timestamped otherwise."""

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if not console.is_terminal:
            text = f"{self.formatter.formatTime(record, '%Y-%m-%d %H:%M:%S')} {text}"
        show(text, highlight=False, soft_wrap=True)


LOG_FILE = "haml.log"
"""The run's log file, kept in its working folder: every progress line, timestamped."""


def show_progress(log_dir: Path | None = None, limits: tuple[int, float] | None = None
                  ) -> Path | None:
    """Cycle and stage lines (logger ``haml_flows.progress``) on the console.

    With ``log_dir`` the same lines also go, timestamped, to ``log_dir/haml.log``
    (appended to, so a resumed run continues its log); returns that path.
    ``limits`` (max cycles, total ps) of the one run this process follows adds
    its place and an estimate of the time left to each cycle line.
    """
    from haml_flows.progress import RunEstimate

    progress = logging.getLogger("haml_flows.progress")
    for old in [f for f in progress.filters if isinstance(f, RunEstimate)]:
        progress.removeFilter(old)
    if limits is not None:
        progress.addFilter(RunEstimate(*limits))
    if not any(isinstance(h, _ConsoleHandler) for h in progress.handlers):
        handler = _ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    progress.propagate = False
    if log_dir is None:
        return None
    path = (log_dir / LOG_FILE).resolve()
    for handler in progress.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) != path:
            progress.removeHandler(handler)
            handler.close()
    if not any(isinstance(h, logging.FileHandler) for h in progress.handlers):
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        progress.addHandler(handler)
    return path


def _reach(settings: HamlSettings, start: bool) -> None:
    """Make sure the database answers (starting the embedded one if ``start``), or fail."""
    from haml_flows.database.server import DatabaseUnavailableError, ensure_database

    try:
        ensure_database(settings, start=start)
    except DatabaseUnavailableError as exc:
        fail(str(exc), code=2)


def connect_store(settings: HamlSettings | None = None, start: bool = False):
    """The connected JobStore of the configured database.

    Only the commands that run work (``haml run``, ``haml worker``, ``haml
    screen``) pass ``start=True`` and so start the embedded server when it is
    down; every other command leaves with a line naming the address that did
    not answer.
    """
    from haml_flows.database.stores import make_job_store
    from haml_flows.settings import get_settings

    settings = get_settings(settings)
    _reach(settings, start)
    store = make_job_store(settings)
    store.connect()
    return store


@dataclass
class Clients:
    """Everything a screen command talks to, on the configured database."""

    settings: HamlSettings
    store: object | None
    launchpad: object
    db: object


def clients(
    settings: HamlSettings | None = None, start: bool = False, store: bool = True
) -> Clients:
    """Settings, JobStore, LaunchPad and pymongo database on the configured server.

    ``store=False`` leaves the JobStore out (``Clients.store`` is None) for
    commands that only query, which then do not load maggma.
    """
    from haml_flows.database.stores import connect, make_launchpad
    from haml_flows.settings import get_settings

    settings = get_settings(settings)
    if store:
        job_store = connect_store(settings, start=start)
    else:
        _reach(settings, start)
        job_store = None
    return Clients(settings, job_store, make_launchpad(settings), connect(settings))


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
