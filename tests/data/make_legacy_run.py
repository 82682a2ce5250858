"""Write legacy_run.json.gz: a run stored by haml-flows before issue 17, cut after cycle 1.

Run with the package of that time importable (commit cc9a08a), e.g.

    git archive cc9a08a | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python tests/data/make_legacy_run.py

It starts a private embedded server, runs tests/data/lj_small.yaml for two
cycles with that code, and keeps what a run killed after its first cycle
leaves: the documents and GridFS files of the jobs of cycles 0 and 1, no
summary.
"""

from __future__ import annotations

import gzip
import os
import socket
import sys
import tempfile
from pathlib import Path

from bson import json_util

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="haml_legacy_"))
    os.environ.update(
        HAML_CONFIG_FILE=str(scratch / "none.yaml"), HAML_DB_DIR=str(scratch / "db"),
        HAML_DB_PORT=str(_free_port()), HAML_DATABASE="legacy",
    )
    os.environ.pop("HAML_MONGODB_URI", None)
    from haml_flows.database.server import EmbeddedServer
    from haml_flows.database.stores import connect, make_job_store
    from haml_flows.runner import prepare_run, run_prepared_locally

    server = EmbeddedServer()
    server.start()
    try:
        store = make_job_store()
        store.connect()
        run = prepare_run(HERE / "lj_small.yaml")
        run_prepared_locally(run, store, scratch / "work")
        db = connect()
        kept = [
            d for d in db.outputs.find({"metadata.run_id": run.run_id})
            if d["metadata"].get("cycle", 0) <= 1
            and (d["output"] or {}).get("doc_type") != "haml_run_summary"
        ]
        blobs = {
            value["blob_uuid"]
            for d in kept for value in _values(d["output"] or {})
            if isinstance(value, dict) and "blob_uuid" in value
        }
        files = list(db["outputs_data.files"].find({"metadata.blob_uuid": {"$in": list(blobs)}}))
        chunks = list(db["outputs_data.chunks"].find({"files_id": {"$in": [f["_id"] for f in files]}}))
        fixture = {
            "source_commit": "cc9a08a", "run_id": run.run_id, "outputs": kept,
            "files": files, "chunks": chunks,
        }
        with gzip.open(HERE / "legacy_run.json.gz", "wt") as handle:
            handle.write(json_util.dumps(fixture))
        print(f"{run.run_id}: {len(kept)} documents, {len(files)} GridFS files")
    finally:
        server.stop()


def _values(obj):
    if isinstance(obj, dict):
        yield obj
        for value in obj.values():
            yield from _values(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _values(value)


if __name__ == "__main__":
    sys.exit(main())
