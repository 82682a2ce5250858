"""Where screen documents live, and the indexes that screen queries use.

Candidates and cached results are two small collections next to the jobflow
``outputs`` collection and the FireWorks collections, in the same database.
"""

from __future__ import annotations

from pymongo import ASCENDING

CANDIDATES = "haml_screen_candidates"
RESULTS = "haml_screen_results"

#: collection -> indexes (each a list of (field, direction))
INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    CANDIDATES: [
        [("screen", ASCENDING), ("spec_hash", ASCENDING)],
        [("screen", ASCENDING), ("dopant", ASCENDING), ("concentration", ASCENDING),
         ("seed", ASCENDING)],
        [("run_id", ASCENDING)],
    ],
    RESULTS: [[("screen", ASCENDING)], [("run_id", ASCENDING)]],
    "workflows": [
        [("metadata.screen", ASCENDING), ("state", ASCENDING)],
        [("metadata.spec_hash", ASCENDING)],
        [("metadata.run_id", ASCENDING)],
    ],
    "fireworks": [
        [("spec.haml_screen", ASCENDING), ("state", ASCENDING)],
        [("spec.haml_run_id", ASCENDING)],
    ],
}


def ensure_indexes(db, docs_collection: str) -> list[str]:
    """Create the screen indexes and the run indexes (a no-op when they exist)."""
    from haml_flows.database.stores import ensure_output_indexes

    names = []
    for collection, indexes in INDEXES.items():
        for keys in indexes:
            names.append(db[collection].create_index(keys))
    return names + ensure_output_indexes(db, docs_collection)
