"""`haml db`: start, stop and inspect the embedded database server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # loaded by the commands, not at start-up
    from haml_flows.database.server import EmbeddedServer, ServerStatus

db_app = typer.Typer(
    rich_markup_mode=None,
    help="The embedded database server: start, stop, status.",
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
