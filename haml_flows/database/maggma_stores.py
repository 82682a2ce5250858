"""The maggma stores of the JobStore, connected through the settings.

Kept apart from :mod:`haml_flows.database.stores` because importing maggma
takes about half a second: a command that only queries pymongo and the
LaunchPad (``haml results``, ``haml runs``) does not load it.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import gridfs
from maggma.stores import GridFSStore, MongoStore
from pymongo import MongoClient

from haml_flows.database.retry import (
    DatabaseUnavailableError,
    RetryPolicy,
    call_with_retry,
)
from haml_flows.database.server import mask_uri
from haml_flows.settings import HamlSettings, get_settings


def _retrying(original, what: str):
    """``original`` retried while the database is away; a query is read whole first."""

    @functools.wraps(original)
    def method(self, *args: Any, **kwargs: Any):
        if inspect.isgeneratorfunction(original):
            return iter(self._retry(lambda: list(original(self, *args, **kwargs)), what))
        return self._retry(lambda: original(self, *args, **kwargs), what)

    return method


class _SettingsConnection:
    """Mixin: connect with the settings and retry the calls in ``RETRIED`` on outages.

    ``RETRIED`` maps a method of the maggma store that follows this mixin to
    what it does, for the message when the database stays away.
    """

    RETRIED: dict[str, str] = {}
    _haml_settings: HamlSettings | None = None
    outage: DatabaseUnavailableError | None = None

    def __init__(self, database: str, collection_name: str, **kwargs: Any) -> None:
        super().__init__(database=database, collection_name=collection_name, **kwargs)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        store = super(_SettingsConnection, cls)
        for name, what in cls.RETRIED.items():
            setattr(cls, name, _retrying(getattr(store, name), what))

    @property
    def settings(self) -> HamlSettings:
        """The settings given to :func:`make_job_store`, else this process's."""
        if self._haml_settings is None:
            self._haml_settings = get_settings()
        return self._haml_settings

    def _client(self) -> MongoClient:
        return MongoClient(self.settings.mongodb_uri, **self.settings.client_kwargs())

    def _retry(self, call, what: str):
        try:
            return call_with_retry(
                call,
                RetryPolicy.from_settings(self.settings),
                f"{what} ({self.database}.{self.collection_name})",
                mask_uri(self.settings.mongodb_uri),
            )
        except DatabaseUnavailableError as exc:
            self.outage = exc
            raise

    @property
    def name(self) -> str:
        """Where the store lives, without credentials."""
        return f"{mask_uri(self.settings.mongodb_uri)}/{self.database}/{self.collection_name}"


class SettingsMongoStore(_SettingsConnection, MongoStore):
    """maggma ``MongoStore`` connected through the settings, retrying on outages.

    Writes are maggma's ``ReplaceOne(upsert=True)`` on the store key, so a retried
    or repeated write replaces the document instead of adding a second one.
    """

    RETRIED = {
        "update": "writing documents",
        "query": "reading documents",
        "count": "counting",
        "distinct": "reading documents",
        "remove_docs": "removing documents",
        "ensure_index": "creating an index",
    }

    def connect(self, force_reset: bool = False) -> None:
        """Open a client with the settings' URI, credentials and TLS options."""
        if self._coll is None or force_reset:
            self._coll = self._client()[self.database][self.collection_name]


class SettingsGridFSStore(_SettingsConnection, GridFSStore):
    """maggma ``GridFSStore`` connected through the settings, retrying on outages.

    A write stores the new file first and removes older versions afterwards,
    so an interrupted write never leaves a key without data.
    """

    RETRIED = {
        "update": "writing large data",
        "query": "reading large data",
        "count": "counting",
        "remove_docs": "removing large data",
        "ensure_index": "creating an index",
    }

    def connect(self, force_reset: bool = False) -> None:
        """Open GridFS with the settings' URI, credentials and TLS options."""
        if not self._coll or force_reset:
            db = self._client()[self.database]
            self._coll = gridfs.GridFS(db, self.collection_name)
            self._files_collection = db[f"{self.collection_name}.files"]
            self._fs = MongoStore.from_collection(self._files_collection)
            self._fs.last_updated_field = f"metadata.{self.last_updated_field}"
            self._fs.key = self.key
            self._chunks_collection = db[f"{self.collection_name}.chunks"]
