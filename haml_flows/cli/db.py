"""`haml db`: start, stop and inspect the embedded database server; dump and restore."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # loaded by the commands, not at start-up
    from haml_flows.database.server import EmbeddedServer, ServerStatus

db_app = typer.Typer(
    rich_markup_mode=None,
    help="The embedded database server: start, stop, status; dump and restore a database.",
    no_args_is_help=True,
)

PortOption = Annotated[
    int | None,
    typer.Option("--port", help="Port of the server (default: HAML_DB_PORT)."),
]
DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Data directory of the server (default: HAML_DB_DIR)."
    ),
]


def _server(port: int | None, data_dir: Path | None) -> EmbeddedServer:
    from haml_flows.database.server import EmbeddedServer
    from haml_flows.settings import HamlSettings

    overrides: dict = {}
    if port is not None:
        overrides["DB_PORT"] = port
    if data_dir is not None:
        overrides["DB_DIR"] = data_dir
    return EmbeddedServer(HamlSettings(**overrides))


def _shown(path: Path) -> str:
    """Path with the home directory written as ~."""
    try:
        return f"~/{path.relative_to(Path.home())}"
    except ValueError:
        return str(path)


def _running_line(status: ServerStatus) -> str:
    return (
        f"database running at {status.address} "
        f"(pid {status.pid}, data in {_shown(status.data_dir)})"
    )


def _note_external_uri(server: EmbeddedServer) -> None:
    from haml_flows.database.server import mask_uri

    if not server.settings.uses_embedded_server:
        uri = mask_uri(server.settings.mongodb_uri)
        typer.echo(f"note: MONGODB_URI is set, so haml uses {uri}, not this server")


@db_app.command()
def start(port: PortOption = None, data_dir: DirOption = None) -> None:
    """Start the embedded database server in the background (no-op if it runs)."""
    from haml_flows.database.server import ServerStartError

    server = _server(port, data_dir)
    already = server.running_pid() is not None
    try:
        server.start()
    except ServerStartError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    line = _running_line(server.status())
    typer.echo(line.replace("running", "already running", 1) if already else line)
    _note_external_uri(server)


@db_app.command()
def stop(port: PortOption = None, data_dir: DirOption = None) -> None:
    """Stop the embedded database server (SIGTERM, then SIGKILL)."""
    server = _server(port, data_dir)
    pid = server.running_pid()
    if server.stop():
        typer.echo(f"database stopped (was pid {pid}, data in {_shown(server.data_dir)})")
    else:
        typer.echo(f"no database running from {_shown(server.data_dir)}")


@db_app.command()
def status(port: PortOption = None, data_dir: DirOption = None) -> None:
    """Say whether the embedded server runs; exit status 1 when it does not answer."""
    server = _server(port, data_dir)
    state = server.status()
    if state.running and state.answering:
        typer.echo(_running_line(state))
    elif state.running:
        typer.echo(
            f"database process {state.pid} runs but does not answer at "
            f"{state.address}; see {_shown(server.log_file)}"
        )
    elif state.answering:
        typer.echo(
            f"database not running from {_shown(state.data_dir)}, but another "
            f"server answers at {state.address}"
        )
    else:
        typer.echo(
            f"database not running (address {state.address}, "
            f"data in {_shown(state.data_dir)}); start it with `haml db start`"
        )
    _note_external_uri(server)
    if not (state.running and state.answering):
        raise typer.Exit(1)


def _copy(directory: Path, check, copy, start: bool, verb: str, code: int):
    """Check DIR before the database is asked anything, reach the database
    (starting the embedded one if ``start``), ``copy(db)`` and show what was copied."""
    from rich.table import Table

    from haml_flows.cli._common import _reach, fail, show
    from haml_flows.database.dump import DumpError
    from haml_flows.database.stores import connect
    from haml_flows.settings import get_settings

    settings = get_settings()
    try:
        check(directory, settings.DATABASE)
    except DumpError as exc:
        fail(str(exc), code=2)
    _reach(settings, start=start)
    db = connect(settings)
    try:
        report = copy(db)
    except DumpError as exc:
        fail(str(exc), code=code)
    table = Table(title=f"{verb} database {report.database}", collapse_padding=True)
    for column in ("collection", "documents", "bytes", "indexes"):
        table.add_column(column, justify="left" if column == "collection" else "right")
    for c in report.collections:
        table.add_row(c.name, str(c.documents), str(c.bytes), str(c.indexes))
    show(table)
    if report.dropped:
        show(f"dropped first: {', '.join(report.dropped)}", soft_wrap=True)
    return settings, db, report


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB"):
        if n < 1000:
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _copied(report) -> str:
    return (f"{report.directory}: {len(report.collections)} collections, "
            f"{report.documents} documents, {_size(report.bytes)}")


@db_app.command()
def dump(
    directory: Path = typer.Argument(..., metavar="DIR", help="Dump root; DIR/<database> is written."),
) -> None:
    """Copy every collection of the configured database to DIR, as mongodump lays it out.

    DIR/<database>/<collection>.bson and .metadata.json: jobflow's documents,
    the GridFS data, FireWorks' collections and the screens. Reads only; a
    stopped embedded server is not started. mongorestore reads the result too.
    """
    from haml_flows.cli._common import show
    from haml_flows.database.dump import dump_database, dump_target
    from haml_flows.database.server import mask_uri

    settings, db, report = _copy(
        directory, dump_target, lambda db: dump_database(db, directory),
        start=False, verb="dumped", code=2)
    show(f"dumped database {report.database} from {mask_uri(settings.mongodb_uri)} to "
         f"{_copied(report)}", soft_wrap=True)
    running = db["fireworks"].count_documents({"state": {"$in": ["RUNNING", "RESERVED"]}})
    if running:
        show(f"note: {running} Fireworks were RUNNING or RESERVED: if their workers are "
             "dead, haml resume --lost-after 0 (RUN_ID or --screen NAME) reruns them where "
             "this dump is restored; if they still run, what they store from now on is "
             "not in this dump", soft_wrap=True)


@db_app.command()
def restore(
    directory: Path = typer.Argument(..., metavar="DIR", help="Dump root written by haml db dump or mongodump."),
    drop: bool = typer.Option(
        False, "--drop", help="Drop every collection of the database first (replaces it)."
    ),
) -> None:
    """Restore the configured database from DIR (haml db dump or mongodump's layout).

    Refuses a database that already holds documents unless --drop. Starts the
    embedded server when it is down, as haml db start does.
    """
    from haml_flows.cli._common import show
    from haml_flows.database.dump import find_dump, restore_database
    from haml_flows.database.server import mask_uri

    settings, _, report = _copy(
        directory, find_dump, lambda db: restore_database(db, directory, drop=drop),
        start=True, verb="restored", code=1)
    show(f"restored database {report.database} at {mask_uri(settings.mongodb_uri)} from "
         f"{_copied(report)}", soft_wrap=True)
