"""`haml db dump` / `haml db restore`: a database in mongodump's layout and back.

On the real embedded server: documents (raw BSON bytes), GridFS files and
indexes come back as they were; the files are what mongodump writes; bad
directories and occupied databases are refused in one line; a large GridFS
file is streamed, never held whole.
"""

from __future__ import annotations

import datetime
import os
import tracemalloc
import uuid
from pathlib import Path

import bson
import gridfs
import pytest
from bson import Decimal128, Int64, json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from typer.testing import CliRunner

from haml_flows.cli.db import db_app
from haml_flows.database.dump import (
    MANIFEST,
    DumpError,
    dump_database,
    restore_database,
)
from haml_flows.database.server import EmbeddedServer
from haml_flows.database.stores import connect, ensure_output_indexes

runner = CliRunner()


@pytest.fixture
def db(haml_settings):
    database = connect(haml_settings)
    yield database
    database.client.close()


def _fill(db) -> None:
    """What a screen's database holds, in miniature, with every BSON type we store."""
    db.outputs.insert_many([
        {"uuid": str(uuid.uuid4()), "index": 1, "z_first": 1, "a_second": 2,
         "output": {"doc_type": "haml_cycle", "run_id": "r-1", "cycle": c,
                    "forces": [[0.1, -2.5e-3, 7.0]], "big": Int64(2**40),
                    "price": Decimal128("1.10"), "blob": bson.Binary(os.urandom(64)),
                    "when": datetime.datetime(2026, 12, 1, 12, 0, c), "none": None}}
        for c in range(1, 6)
    ])
    ensure_output_indexes(db, "outputs")
    fs = gridfs.GridFS(db, "outputs_data")
    fs.put(os.urandom(1_100_000), filename="trajectory", metadata={"blob_uuid": "b1"})
    fs.put(b"small potential", filename="potential", metadata={"blob_uuid": "b2"})
    db.fw_id_assigner.insert_one({"next_fw_id": 17, "next_launch_id": 9})
    db.fireworks.insert_one({"fw_id": 3, "state": "RUNNING", "spec": {"haml_screen": "s"}})
    db.fireworks.create_index([("spec.haml_screen", 1), ("state", 1)])
    db.haml_screen_candidates.create_index([("run_id", 1)], unique=True, sparse=True)


def _raw(db, name: str) -> list[bytes]:
    raw = db.get_collection(name, codec_options=CodecOptions(document_class=RawBSONDocument))
    return sorted(d.raw for d in raw.find())


def _indexes(db, name: str) -> list[dict]:
    return sorted(({k: v for k, v in ix.items() if k != "ns"} for ix in db[name].list_indexes()),
                  key=lambda ix: ix["name"])


def _snapshot(db) -> dict:
    names = sorted(db.list_collection_names())
    fs = gridfs.GridFS(db, "outputs_data")
    return {
        "collections": names,
        "documents": {n: _raw(db, n) for n in names},
        "indexes": {n: _indexes(db, n) for n in names},
        "files": {f.filename: f.read() for f in fs.find()},
    }


def test_dump_then_restore_gives_back_documents_files_and_indexes(db, tmp_path):
    _fill(db)
    before = _snapshot(db)
    assert "haml_screen_candidates" in before["collections"]  # empty, with its index

    dumped = dump_database(db, tmp_path / "dump")
    folder = tmp_path / "dump" / db.name
    assert dumped.directory == folder
    assert sorted(c.name for c in dumped.collections) == before["collections"]
    assert dumped.documents == sum(len(d) for d in before["documents"].values())
    assert dumped.bytes == sum(len(r) for d in before["documents"].values() for r in d)

    # mongodump's layout: the collection's BSON documents back to back, and its
    # indexes in canonical extended JSON (key order kept)
    chunks = (folder / "outputs_data.chunks.bson").read_bytes()
    assert sorted(RawBSONDocument(bson.encode(d)).raw for d in bson.decode_all(chunks)) \
        == before["documents"]["outputs_data.chunks"]
    meta_text = (folder / "fireworks.metadata.json").read_text()
    assert '"v":{"$numberInt":"2"}' in meta_text
    meta = json_util.loads(meta_text)
    assert meta["collectionName"] == "fireworks" and meta["type"] == "collection"
    assert list(meta["indexes"][1]["key"]) == ["spec.haml_screen", "state"]
    assert len(meta["uuid"]) == 32
    assert (folder / "haml_screen_candidates.bson").read_bytes() == b""

    db.client.drop_database(db.name)
    assert db.list_collection_names() == []
    restored = restore_database(db, tmp_path / "dump")
    assert (restored.documents, restored.bytes) == (dumped.documents, dumped.bytes)
    assert [(c.name, c.documents, c.indexes) for c in restored.collections] == \
        [(c.name, c.documents, c.indexes) for c in dumped.collections]
    assert _snapshot(db) == before


def test_restore_refuses_a_database_with_documents_unless_drop(db, tmp_path):
    _fill(db)
    dump_database(db, tmp_path / "dump")
    before = _snapshot(db)
    with pytest.raises(DumpError, match=r"already holds documents \(fireworks \(1\)"):
        restore_database(db, tmp_path / "dump")
    db.left_over.insert_one({"from": "another screen"})
    db.outputs.delete_many({"output.cycle": {"$gt": 2}})
    report = restore_database(db, tmp_path / "dump", drop=True)
    assert "left_over" in report.dropped
    assert _snapshot(db) == before


def test_a_dump_is_never_written_over(db, tmp_path):
    _fill(db)
    dump_database(db, tmp_path / "dump")
    with pytest.raises(DumpError, match="already holds a dump of database"):
        dump_database(db, tmp_path / "dump")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DumpError, match="is a file"):
        dump_database(db, tmp_path / "file")
    assert {p.name for p in (tmp_path / "dump").iterdir()} == {db.name, MANIFEST}


def test_an_interrupted_dump_leaves_nothing_that_looks_like_one(db, tmp_path):
    _fill(db)

    def interrupted(copied):
        if copied.name == "outputs":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dump_database(db, tmp_path / "dump", progress=interrupted)
    assert list((tmp_path / "dump").iterdir()) == []
    with pytest.raises(DumpError, match="holds no dump"):
        restore_database(db, tmp_path / "dump")


def _cli(settings, *args):
    return runner.invoke(db_app, list(args), env={"HAML_DATABASE": settings.DATABASE})


def _one_error_line(result, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_bad_dump_directories_are_refused_in_one_line(haml_settings, db, tmp_path):
    _fill(db)
    dump_database(db, tmp_path / "dump")
    folder = tmp_path / "dump" / db.name
    db.client.drop_database(db.name)
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    cases = {
        "no such directory": [str(tmp_path / "missing")],
        "is a file, not a dump directory": [str(tmp_path / "file")],
        "holds no dump": [str(tmp_path / "empty")],
        "holds collection files itself": [str(folder)],
    }
    for said, args in cases.items():
        assert said in _one_error_line(_cli(haml_settings, "restore", *args), 2)
    assert "is a file" in _one_error_line(
        _cli(haml_settings, "dump", str(tmp_path / "file")), 2)

    other = runner.invoke(db_app, ["restore", str(tmp_path / "dump")],
                          env={"HAML_DATABASE": "haml_elsewhere"})
    assert "set HAML_DATABASE to the dumped name" in _one_error_line(other, 2)

    chunks = folder / "outputs_data.chunks.bson"
    whole = chunks.read_bytes()
    chunks.write_bytes(whole[:-100])  # a copy cut short
    assert f"has {len(whole) - 100} bytes, the dump wrote {len(whole)}" in _one_error_line(
        _cli(haml_settings, "restore", str(tmp_path / "dump")), 2)
    (tmp_path / "dump" / MANIFEST).unlink()  # as mongodump would leave it
    assert "ends inside a document" in _one_error_line(
        _cli(haml_settings, "restore", str(tmp_path / "dump")), 2)
    assert db.list_collection_names() == []  # refused whole, nothing restored in part
    chunks.write_bytes(whole[:-1] + b"x")  # not BSON where a document should end
    assert "does not end where its length says" in _one_error_line(
        _cli(haml_settings, "restore", str(tmp_path / "dump")), 2)
    assert db.list_collection_names() == []
    chunks.write_bytes(whole)
    assert _cli(haml_settings, "restore", str(tmp_path / "dump")).exit_code == 0


def test_a_dump_missing_a_collection_file_is_refused(haml_settings, db, tmp_path):
    _fill(db)
    dump_database(db, tmp_path / "dump")
    db.client.drop_database(db.name)
    (tmp_path / "dump" / db.name / "launches.bson").write_bytes(b"")  # not ours: ignored
    (tmp_path / "dump" / db.name / "fw_id_assigner.bson").unlink()
    line = _one_error_line(_cli(haml_settings, "restore", str(tmp_path / "dump")), 2)
    assert "lacks fw_id_assigner" in line and "copy the whole dump directory" in line


def test_dump_does_not_start_a_database_and_restore_does(
    haml_settings, db, private_env, tmp_path
):
    """The dump is read-only; the restore starts the embedded server, as haml db start."""
    _fill(db)
    before = _snapshot(db)
    dump_database(db, tmp_path / "dump")
    server = EmbeddedServer(private_env)

    refused = _cli(haml_settings, "dump", str(tmp_path / "second"))
    assert refused.exit_code == 2
    assert f"no database answers at 127.0.0.1:{private_env.DB_PORT}" in refused.output
    assert not server.answering() and not (tmp_path / "second").exists()

    restored = _cli(haml_settings, "restore", str(tmp_path / "dump"))
    assert restored.exit_code == 0, restored.output
    assert server.answering()
    said = " ".join(restored.output.split())
    assert f"restored database {db.name} at mongodb://127.0.0.1:{private_env.DB_PORT}" in said
    assert f"{len(before['collections'])} collections, " \
           f"{sum(map(len, before['documents'].values()))} documents, 1.1 MB" in said
    moved = connect(private_env.model_copy(update={"DATABASE": db.name}))
    assert _snapshot(moved) == before

    again = _cli(haml_settings, "restore", str(tmp_path / "dump"))
    assert "already holds documents" in _one_error_line(again, 1)
    assert _cli(haml_settings, "restore", str(tmp_path / "dump"), "--drop").exit_code == 0
    assert _snapshot(moved) == before
    moved.client.close()


def test_a_large_gridfs_file_is_streamed(db, tmp_path):
    size = 20_000_000
    gridfs.GridFS(db, "outputs_data").put(os.urandom(size), filename="large")
    tracemalloc.start()
    try:
        dump_database(db, tmp_path / "dump")
        dump_peak = tracemalloc.get_traced_memory()[1]
        db.client.drop_database(db.name)
        tracemalloc.reset_peak()
        restore_database(db, tmp_path / "dump")
        restore_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (tmp_path / "dump" / db.name / "outputs_data.chunks.bson").stat().st_size > size
    assert dump_peak < size / 2 and restore_peak < size / 2, (dump_peak, restore_peak)
    assert len(gridfs.GridFS(db, "outputs_data").find_one({"filename": "large"}).read()) == size


def test_a_dump_by_mongodump_without_manifest_restores(db, tmp_path):
    """Only mongodump's files: no manifest, a collection whose metadata lacks options."""
    _fill(db)
    before = _snapshot(db)
    dump_database(db, tmp_path / "dump")
    (tmp_path / "dump" / MANIFEST).unlink()
    db.client.drop_database(db.name)
    restore_database(db, tmp_path / "dump")
    assert _snapshot(db) == before


def test_help_names_the_layout():
    result = runner.invoke(db_app, ["dump", "--help"])
    assert result.exit_code == 0 and "mongodump" in result.output
    result = runner.invoke(db_app, ["restore", "--help"])
    assert result.exit_code == 0 and "--drop" in result.output


def test_paths_given_relative_work(db, tmp_path, monkeypatch, haml_settings):
    _fill(db)
    monkeypatch.chdir(tmp_path)
    result = _cli(haml_settings, "dump", "rel")
    assert result.exit_code == 0, result.output
    assert Path("rel", db.name, "outputs.bson").is_file()
