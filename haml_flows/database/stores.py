"""Clients of the database: the jobflow JobStore, the FireWorks LaunchPad, pymongo.

All three use ``settings.mongodb_uri`` and ``settings.DATABASE``, so the
embedded server and a real MongoDB are interchangeable. Nothing here starts a
server or connects eagerly; call :func:`ensure_database` first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymongo import MongoClient

from haml_flows.settings import HamlSettings

if TYPE_CHECKING:
    from fireworks import LaunchPad
    from jobflow import JobStore
    from pymongo.database import Database


def _client_kwargs(settings: HamlSettings) -> dict:
    return {"serverSelectionTimeoutMS": settings.SERVER_SELECTION_TIMEOUT_MS}


def make_job_store(settings: HamlSettings | None = None) -> JobStore:
    """Return a JobStore: documents in MongoDB, large data in the GridFS ``data`` store.

    Jobs route heavy fields with ``@job(data=[...])``; MongoDB documents stop at
    16 MB, so trajectories and potentials must go to ``data``. The stores are
    maggma's ``MongoStore``/``GridFSStore`` given a URI (what ``MongoURIStore`` and
    ``GridFSURIStore`` were before maggma deprecated them).
    """
    from jobflow import JobStore
    from maggma.stores import GridFSStore, MongoStore

    settings = settings or HamlSettings()
    docs_store = MongoStore(
        uri=settings.mongodb_uri,
        database=settings.DATABASE,
        collection_name=settings.DOCS_COLLECTION,
        key="uuid",
        mongoclient_kwargs=_client_kwargs(settings),
    )
    data_store = GridFSStore(
        uri=settings.mongodb_uri,
        database=settings.DATABASE,
        collection_name=settings.DATA_BUCKET,
        mongoclient_kwargs=_client_kwargs(settings),
    )
    return JobStore(docs_store, additional_stores={"data": data_store})


def make_launchpad(settings: HamlSettings | None = None) -> LaunchPad:
    """Return a FireWorks LaunchPad on the same server and database as the JobStore."""
    from fireworks import LaunchPad

    settings = settings or HamlSettings()
    return LaunchPad(
        host=settings.mongodb_uri,
        name=settings.DATABASE,
        uri_mode=True,
        mongoclient_kwargs=_client_kwargs(settings),
    )


def connect(settings: HamlSettings | None = None) -> Database:
    """Return the pymongo database, for queries that need no jobflow machinery."""
    settings = settings or HamlSettings()
    client: MongoClient = MongoClient(settings.mongodb_uri, **_client_kwargs(settings))
    return client[settings.DATABASE]
