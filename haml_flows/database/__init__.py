"""Storage: the embedded database server and the stores built on it."""

from haml_flows.database.server import (
    DatabaseAuthError,
    DatabaseUnavailableError,
    EmbeddedServer,
    ServerStartError,
    ServerStatus,
    ensure_database,
    is_answering,
    mask_uri,
)
from haml_flows.database.stores import connect, make_job_store, make_launchpad

__all__ = [
    "DatabaseAuthError",
    "DatabaseUnavailableError",
    "EmbeddedServer",
    "ServerStartError",
    "ServerStatus",
    "connect",
    "ensure_database",
    "is_answering",
    "make_job_store",
    "make_launchpad",
    "mask_uri",
]
