"""Storage: the embedded database server and the stores built on it.

The names below load on first use, so importing one module of this package
(the command line reads ``database.server`` only) does not load maggma and
jobflow's stores.
"""

from __future__ import annotations

import importlib

_SOURCES = {
    "DatabaseAuthError": "server",
    "DatabaseUnavailableError": "server",
    "EmbeddedServer": "server",
    "ServerStartError": "server",
    "ServerStatus": "server",
    "ensure_database": "server",
    "is_answering": "server",
    "mask_uri": "server",
    "connect": "stores",
    "make_job_store": "stores",
    "make_launchpad": "stores",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
