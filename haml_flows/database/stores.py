"""Clients of the database: the jobflow JobStore, the FireWorks LaunchPad, pymongo.

All of them take the address, credentials and TLS options from the settings
(``HamlSettings``: config file or ``HAML_*`` environment), so the embedded
server and a real MongoDB are interchangeable. Nothing here starts a server or
connects eagerly; call :func:`ensure_database` first.

The job store's two stores serialize to their database and collection names
only. When a workflow goes to FireWorks, the Firework specs therefore carry no
URI and no password: each worker connects with its own settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymongo import MongoClient

from haml_flows.database.retry import DatabaseUnavailableError
from haml_flows.settings import HamlSettings, get_settings

if TYPE_CHECKING:
    from fireworks import LaunchPad
    from jobflow import JobStore
    from pymongo.database import Database


#: on the jobflow documents collection (settings.DOCS_COLLECTION): the run
#: queries (haml cycles, runs, report, status), and (uuid, index), the key the
#: JobStore upserts every job output on; without them each stored output and
#: each run query scans the whole collection.
OUTPUT_INDEXES = [
    [("output.doc_type", 1), ("output.run_id", 1)],
    [("uuid", 1), ("index", 1)],
]


def ensure_output_indexes(db, docs_collection: str) -> list[str]:
    """Create the run indexes on the documents collection; return their names."""
    return [db[docs_collection].create_index(keys) for keys in OUTPUT_INDEXES]


def make_job_store(settings: HamlSettings | None = None) -> JobStore:
    """Return a JobStore: documents in MongoDB, large data in the GridFS ``data`` store.

    Jobs route heavy fields with ``@job(data=[...])``; MongoDB documents stop at
    16 MB, so trajectories and potentials must go to ``data``.
    """
    from jobflow import JobStore

    from haml_flows.database.maggma_stores import SettingsGridFSStore, SettingsMongoStore

    settings = get_settings(settings)
    docs_store = SettingsMongoStore(
        settings.DATABASE, settings.DOCS_COLLECTION, key="uuid"
    )
    data_store = SettingsGridFSStore(settings.DATABASE, settings.DATA_BUCKET)
    for store in (docs_store, data_store):
        store._haml_settings = settings
    return JobStore(docs_store, additional_stores={"data": data_store})


def store_outage(store: JobStore) -> DatabaseUnavailableError | None:
    """The outage that made one of ``store``'s stores give up, if any."""
    for part in (store.docs_store, *store.additional_stores.values()):
        outage = getattr(part, "outage", None)
        if outage is not None:
            return outage
    return None


def make_launchpad(settings: HamlSettings | None = None) -> LaunchPad:
    """Return a FireWorks LaunchPad on the same server and database as the JobStore.

    It is FireWorks' LaunchPad with id counters read from post-images
    (``AtomicIdLaunchPad``), so that several workers on the embedded server
    never share a Firework or launch id; on MongoDB it behaves identically.
    """
    from haml_flows.database.launchpad import AtomicIdLaunchPad

    settings = get_settings(settings)
    return AtomicIdLaunchPad(
        host=settings.mongodb_uri,
        name=settings.DATABASE,
        uri_mode=True,
        mongoclient_kwargs=settings.client_kwargs(),
    )


def connect(settings: HamlSettings | None = None) -> Database:
    """Return the pymongo database, for queries that need no jobflow machinery."""
    settings = get_settings(settings)
    client: MongoClient = MongoClient(settings.mongodb_uri, **settings.client_kwargs())
    return client[settings.DATABASE]


def __getattr__(name: str):
    # the store classes lived here; workflows stored before they moved name
    # haml_flows.database.stores.SettingsMongoStore in their Firework specs
    if name in ("SettingsMongoStore", "SettingsGridFSStore"):
        from haml_flows.database import maggma_stores

        return getattr(maggma_stores, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
