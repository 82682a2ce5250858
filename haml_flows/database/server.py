"""The embedded database: a SecantusDB server run as a detached process.

SecantusDB speaks the MongoDB wire protocol, so jobflow, maggma and FireWorks
talk to it exactly as to a real MongoDB; only the address differs. The server
runs in its own session so that it outlives the command that started it, and
keeps its pid file, log and WiredTiger files in ``settings.DB_DIR``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from haml_flows.database.retry import DatabaseUnavailableError
from haml_flows.settings import HamlSettings, get_settings

SERVER_COMMAND = "secantusd-py"
PID_FILE = "server.pid"
LOG_FILE = "server.log"
LOCK_FILE = "server.lock"
CONFIG_FILE = "secantusd.toml"

_CONFIG_HEADER = """\
# SecantusDB configuration for the haml-flows embedded server.
# `haml db start` passes this file with --config, so files in ~/.secantus or
# /etc/secantus are ignored. Command-line flags (host, port, storage path,
# sync-on-commit) win over values here. See `secantusd-py --help`, e.g.
# [storage]
# cache_size = "2G"
"""

_USERINFO = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^@/?#]*@)")


class DatabaseAuthError(DatabaseUnavailableError):
    """The database answers but refuses the configured credentials."""


class ServerStartError(RuntimeError):
    """The embedded server could not be started."""


@dataclass(frozen=True)
class ServerStatus:
    """What is known about the embedded server."""

    running: bool
    answering: bool
    pid: int | None
    address: str
    data_dir: Path


def mask_uri(uri: str) -> str:
    """Return ``uri`` without credentials and query options, safe to print."""
    masked = _USERINFO.sub(r"\g<scheme>***@", uri)
    return masked.split("?", 1)[0]


def is_answering(uri: str, timeout_ms: int = 1000, **client_kwargs) -> bool:
    """Return True when a MongoDB server at ``uri`` answers a ping.

    A server that refuses our credentials still answers: the caller then gets
    the authentication error, which says more than "not reachable".
    ``client_kwargs`` (TLS options, credentials) go to the MongoClient.
    """
    client: MongoClient = MongoClient(
        uri,
        **{
            **client_kwargs,
            "serverSelectionTimeoutMS": timeout_ms,
            "connectTimeoutMS": timeout_ms,
            "socketTimeoutMS": max(timeout_ms, 1000),
        },
    )
    try:
        client.admin.command("ping")
    except OperationFailure:
        return True
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


def ensure_database(settings: HamlSettings | None = None, start: bool = True) -> str:
    """Return the database URI, starting the embedded server if it is needed.

    With ``start=False`` (the commands that only read) a stopped embedded
    server is not started: the error names its address instead.

    Raises
    ------
    DatabaseUnavailableError
        When an external MongoDB (``MONGODB_URI``) does not answer, or the
        embedded server is down and ``start`` is false.
    """
    settings = get_settings(settings)
    uri = settings.mongodb_uri
    if settings.uses_embedded_server:
        server = EmbeddedServer(settings)
        if not server.answering():
            if not start:
                raise DatabaseUnavailableError(
                    f"no database answers at {server.address} (the embedded server: "
                    f"HAML_DB_HOST, HAML_DB_PORT, data in {settings.DB_DIR}); start it "
                    "with `haml db start`, or set HAML_MONGODB_URI to your MongoDB"
                )
            server.start()
        check_credentials(settings)
        return uri
    if not is_answering(
        uri, timeout_ms=settings.SERVER_SELECTION_TIMEOUT_MS, **settings.client_kwargs()
    ):
        raise DatabaseUnavailableError(
            f"MongoDB at {mask_uri(uri)} does not answer "
            f"(waited {settings.SERVER_SELECTION_TIMEOUT_MS} ms). Check that it is "
            "running and reachable and that HAML_MONGODB_URI (or MONGODB_URI in "
            "the haml config file) is right; to use the embedded database "
            "instead, unset MONGODB_URI and run `haml db start`."
        )
    check_credentials(settings)
    return uri


_AUTH_FAILED = 18
_UNAUTHORIZED = 13


def check_credentials(settings: HamlSettings) -> None:
    """Fail early, with a message that names the setting, when access is refused.

    The message names the user and the authSource, never the password.
    """
    client: MongoClient = MongoClient(settings.mongodb_uri, **settings.client_kwargs())
    try:
        client[settings.DATABASE].command("ping")
        client[settings.DATABASE].list_collection_names()
    except OperationFailure as exc:
        where = mask_uri(settings.mongodb_uri)
        if exc.code == _AUTH_FAILED:
            raise DatabaseAuthError(
                f"MongoDB at {where} refused the credentials of user "
                f"{settings.MONGODB_USERNAME!r} (authSource "
                f"{settings.MONGODB_AUTH_SOURCE!r}): authentication failed. Check "
                "HAML_MONGODB_USERNAME, HAML_MONGODB_PASSWORD and "
                "HAML_MONGODB_AUTH_SOURCE (environment or config file)."
            ) from None
        if exc.code == _UNAUTHORIZED:
            who = (
                f"user {settings.MONGODB_USERNAME!r} may not use database "
                f"{settings.DATABASE!r}"
                if settings.MONGODB_USERNAME
                else "it requires authentication: set HAML_MONGODB_USERNAME and "
                "HAML_MONGODB_PASSWORD (environment or config file)"
            )
            raise DatabaseAuthError(f"MongoDB at {where} refused access: {who}.") from None
        raise
    except PyMongoError:
        pass  # not reachable: the store's retries and their error deal with that
    finally:
        client.close()


class EmbeddedServer:
    """Start, stop and inspect the embedded SecantusDB server of a data directory."""

    def __init__(self, settings: HamlSettings | None = None) -> None:
        self.settings = get_settings(settings)
        self.host = self.settings.DB_HOST
        self.port = self.settings.DB_PORT
        self.data_dir = self.settings.db_dir.resolve()

    @property
    def address(self) -> str:
        """``host:port`` the server listens on."""
        return f"{self.host}:{self.port}"

    @property
    def uri(self) -> str:
        """URI of the embedded server, whatever MONGODB_URI says."""
        return f"mongodb://{self.address}"

    @property
    def pid_file(self) -> Path:
        """File holding the pid of the running server."""
        return self.data_dir / PID_FILE

    @property
    def log_file(self) -> Path:
        """File receiving the server's stdout and stderr."""
        return self.data_dir / LOG_FILE

    def command(self) -> list[str]:
        """The command line that starts the server."""
        cmd = [
            _server_executable(),
            "--config",
            str(self.data_dir / CONFIG_FILE),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.data_dir),
            "--standalone",
        ]
        if self.settings.DB_SYNC_ON_COMMIT:
            cmd.append("--sync-on-commit")
        if self.settings.DB_AUTH:
            cmd.append("--auth")
        return cmd

    def running_pid(self) -> int | None:
        """Pid of the running server of this data directory, or None.

        A pid file whose process is gone (or is no longer a SecantusDB server)
        is removed.
        """
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _is_alive(pid) and _is_secantus(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, wait: bool = True) -> int:
        """Start the server unless it runs already; return its pid.

        With ``wait``, block until it answers a ping (``DB_START_TIMEOUT``).
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            pid = self.running_pid()
            if pid is None:
                if self.answering():
                    raise ServerStartError(
                        f"another database server already answers at {self.address} "
                        f"(not the one of {self.data_dir}); choose another port with "
                        "--port or HAML_DB_PORT"
                    )
                pid, log_offset = self._spawn()
            else:
                log_offset = None
        if wait:
            self._wait_until_answering(pid, log_offset)
        return pid

    def stop(self, timeout: float = 10) -> bool:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` s).

        Returns True when a running server was stopped, False when none ran.
        """
        with self._lock():
            pid = self.running_pid()
            if pid is None:
                return False
            _signal(pid, signal.SIGTERM)
            if not _wait_for_exit(pid, timeout):
                _signal(pid, signal.SIGKILL)
                _wait_for_exit(pid, 5)
            self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> ServerStatus:
        """Whether the server runs and answers, its pid and where it lives."""
        pid = self.running_pid()
        return ServerStatus(
            running=pid is not None,
            answering=self.answering(),
            pid=pid,
            address=self.address,
            data_dir=self.data_dir,
        )

    def answering(self) -> bool:
        """True when something answers a ping at the server's address."""
        return _accepts_connections(self.host, self.port) and is_answering(
            self.uri, timeout_ms=1000
        )

    def _spawn(self) -> tuple[int, int]:
        """Launch the server in its own session; return its pid and log offset."""
        config = self.data_dir / CONFIG_FILE
        if not config.exists():
            config.write_text(_CONFIG_HEADER)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- haml: starting {' '.join(self.command())}\n".encode())
            log_offset = log.tell()
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (
                os.POSIX_SPAWN_OPEN,
                1,
                str(self.log_file),
                os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                0o644,
            ),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        cmd = self.command()
        pid = os.posix_spawn(
            cmd[0], cmd, os.environ, file_actions=actions, setsid=True
        )
        self.pid_file.write_text(f"{pid}\n")
        return pid, log_offset

    def _wait_until_answering(self, pid: int, log_offset: int | None) -> None:
        timeout = self.settings.DB_START_TIMEOUT
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _is_alive(pid):
                self.pid_file.unlink(missing_ok=True)
                raise ServerStartError(
                    f"the database server at {self.address} stopped before it answered; "
                    f"log ({self.log_file}):\n{self._log_tail(log_offset)}"
                )
            if self.answering():
                return
            time.sleep(0.05)
        self.stop()
        raise ServerStartError(
            f"the database server at {self.address} did not answer within "
            f"{timeout:g} s and was stopped (raise HAML_DB_START_TIMEOUT for a "
            f"large data directory); log ({self.log_file}):\n"
            f"{self._log_tail(log_offset)}"
        )

    def _log_tail(self, offset: int | None, lines: int = 20) -> str:
        try:
            with self.log_file.open("rb") as log:
                if offset is not None:
                    log.seek(offset)
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:]) or "(empty)"

    @contextlib.contextmanager
    def _lock(self):
        """Serialise start and stop between processes sharing the data directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _server_executable() -> str:
    """Path of ``secantusd-py``, preferring the one of this Python environment."""
    local = Path(sys.executable).parent / SERVER_COMMAND
    if local.exists():
        return str(local)
    found = shutil.which(SERVER_COMMAND)
    if found is None:
        raise ServerStartError(
            f"{SERVER_COMMAND} not found; install it with `pip install secantusdb`"
        )
    return found


def _accepts_connections(host: str, port: int) -> bool:
    """Cheap check before a ping: a refused connection costs pymongo a full timeout."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _is_alive(pid: int) -> bool:
    """True when ``pid`` runs; reaps it first if it is our exited child."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def _is_secantus(pid: int) -> bool:
    """Guard against a recycled pid; assume yes where /proc is missing."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return SERVER_COMMAND.encode() in cmdline.read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_alive(pid):
            return True
        time.sleep(0.05)
    return not _is_alive(pid)
