"""A database copied to files and back, in mongodump's directory layout.

``DIR/<database>/<collection>.bson`` holds the collection's documents as their
BSON bytes one after another; ``DIR/<database>/<collection>.metadata.json``
its options and indexes in canonical extended JSON, as mongodump writes them:
the layout a real ``mongorestore DIR`` reads, and the one
:func:`restore_database` reads, from ``mongodump`` or from here.

Documents travel as raw BSON (``RawBSONDocument``): never decoded, so every
type and field order is kept, and streamed a cursor batch at a time, so a
GridFS bucket larger than the memory is copied as easily as a small one.
Every collection of the database is copied: jobflow's documents, the GridFS
``.files``/``.chunks`` of the data store, FireWorks' ``fireworks``,
``launches``, ``workflows``, ``fw_id_assigner``, and the screen collections.

A dump is written into a hidden folder of ``DIR`` and renamed to
``DIR/<database>`` when complete, so an interrupted dump leaves nothing that
looks like one. ``DIR/haml_dump.json``
lists what each database's dump holds (mongorestore skips that file), so a
restore from a dump that was copied only in part says what is missing instead
of restoring less.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from bson import json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

MANIFEST = "haml_dump.json"
"""The file beside the database folders that lists each dumped collection's size."""

_RAW = CodecOptions(document_class=RawBSONDocument)
_BATCH_BYTES = 2 * 1024 * 1024
"""Documents read or inserted at once are kept to about this many bytes."""
_BATCH_DOCUMENTS = 1000
_MAX_DOCUMENT = 16 * 1024 * 1024 + 16 * 1024  # MongoDB's limit and its internal slack


class DumpError(ValueError):
    """A dump that cannot be written or restored; the message is one line."""


@dataclass
class CollectionCopy:
    """One collection copied: its documents, their BSON bytes and its indexes."""

    name: str
    documents: int
    bytes: int
    indexes: int


@dataclass
class CopyReport:
    """What a dump or a restore copied, collection by collection."""

    database: str
    directory: Path
    collections: list[CollectionCopy] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def documents(self) -> int:
        return sum(c.documents for c in self.collections)

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.collections)


def file_stem(collection: str) -> str:
    """The collection's file name without suffix, escaped as mongodump escapes it."""
    return quote(collection, safe="$&+,:;=@")


def _metadata(info: dict, indexes: list) -> str:
    meta: dict = {}
    if info.get("options"):
        meta["options"] = info["options"]
    meta["indexes"] = indexes
    uuid = (info.get("info") or {}).get("uuid")
    if uuid is not None:
        meta["uuid"] = bytes(uuid).hex()
    meta["collectionName"] = info["name"]
    meta["type"] = info.get("type", "collection")
    return json_util.dumps(meta, json_options=json_util.CANONICAL_JSON_OPTIONS,
                           separators=(",", ":"))


def _dumped_collections(db) -> list[dict]:
    """The database's collections (not views, not system collections), by name."""
    infos = [
        info for info in db.list_collections()
        if info.get("type", "collection") == "collection"
        and not info["name"].startswith("system.")
    ]
    return sorted(infos, key=lambda info: info["name"])


def dump_target(directory: Path, database: str) -> Path:
    """``directory/<database>``, where a dump of ``database`` would go; refused when
    ``directory`` is a file or already holds a dump of it (often the only copy)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise DumpError(f"{directory} is a file; give a directory for the dump")
    target = directory / database
    if target.exists():
        raise DumpError(
            f"{target} already holds a dump of database {database!r}; choose another "
            "directory or remove it"
        )
    return target


def dump_database(
    db, directory: Path, progress: Callable[[CollectionCopy], None] | None = None
) -> CopyReport:
    """Write every collection of ``db`` to ``directory/<db name>``; nothing is changed in ``db``."""
    directory = Path(directory)
    target = dump_target(directory, db.name)
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{db.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    report = CopyReport(database=db.name, directory=target)
    try:
        for info in _dumped_collections(db):
            copied = _dump_collection(db, info, partial)
            report.collections.append(copied)
            if progress is not None:
                progress(copied)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    _write_manifest(directory, report)
    return report


def _batch_size(collection) -> int:
    """Documents per cursor batch so that a batch holds about ``_BATCH_BYTES``.

    Sized by the collection's largest document: the embedded server does not
    cap a reply at 16 MB as MongoDB does, so a batch of 1000 GridFS chunks
    would be a quarter of a gigabyte.
    """
    from pymongo.errors import OperationFailure

    try:
        largest = next(collection.aggregate([{"$group": {
            "_id": None, "largest": {"$max": {"$bsonSize": "$$ROOT"}}}}]), None)
    except OperationFailure:  # MongoDB before 4.4 has no $bsonSize; it caps replies itself
        return 16
    if largest is None:
        return _BATCH_DOCUMENTS
    return max(1, min(_BATCH_DOCUMENTS, _BATCH_BYTES // max(1, largest["largest"])))


def _dump_collection(db, info: dict, folder: Path) -> CollectionCopy:
    name = info["name"]
    collection = db.get_collection(name, codec_options=_RAW)
    indexes = list(db[name].list_indexes())
    documents = size = 0
    stem = file_stem(name)
    with (folder / f"{stem}.bson").open("wb") as out:
        for document in collection.find({}, batch_size=_batch_size(collection)):
            raw = document.raw
            out.write(raw)
            documents += 1
            size += len(raw)
    (folder / f"{stem}.metadata.json").write_text(_metadata(info, indexes))
    return CollectionCopy(name, documents, size, len(indexes))


def _write_manifest(directory: Path, report: CopyReport) -> None:
    """Record the dump in DIR/haml_dump.json (written whole, then renamed)."""
    path = directory / MANIFEST
    manifest = _read_manifest(directory) or {"databases": {}}
    manifest["databases"][report.database] = {
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "collections": {
            c.name: {"documents": c.documents, "bytes": c.bytes} for c in report.collections
        },
    }
    partial = path.with_name(f".{MANIFEST}.partial-{os.getpid()}")
    partial.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    partial.replace(path)


def _read_manifest(directory: Path) -> dict | None:
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise DumpError(f"{path} is not valid JSON ({exc}); the dump is damaged") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("databases"), dict):
        raise DumpError(f"{path} does not list dumped databases; the dump is damaged")
    return manifest


def read_bson_file(path: Path) -> Iterator[RawBSONDocument]:
    """The documents of a ``.bson`` file, one at a time (checked by :func:`check_bson_file`)."""
    with path.open("rb") as stream:
        while header := stream.read(4):
            (length,) = struct.unpack("<i", header)
            yield RawBSONDocument(header + stream.read(length - 4))


def check_bson_file(path: Path) -> int:
    """Walk a ``.bson`` file's document lengths without reading the documents; return the count.

    Run on every file before a restore inserts anything, so a damaged or
    truncated dump is refused whole instead of restored in part.
    """
    size = path.stat().st_size
    count = offset = 0
    with path.open("rb") as stream:
        while offset < size:
            stream.seek(offset)
            header = stream.read(4)
            length = struct.unpack("<i", header)[0] if len(header) == 4 else 0
            if len(header) < 4 or offset + length > size:
                raise DumpError(f"{path} ends inside a document at byte {offset}: "
                                "the file is truncated")
            if not 5 <= length <= _MAX_DOCUMENT:
                raise DumpError(f"{path}: no BSON document at byte {offset} "
                                f"(length {length}); the file is damaged")
            stream.seek(offset + length - 1)
            if stream.read(1) != b"\x00":
                raise DumpError(f"{path}: the document at byte {offset} does not end "
                                "where its length says; the file is damaged")
            offset += length
            count += 1
    return count


@dataclass
class DumpedCollection:
    """A collection's files in a dump."""

    name: str
    bson: Path | None
    metadata: dict
    documents: int = 0


def find_dump(directory: Path, database: str) -> tuple[Path, list[DumpedCollection]]:
    """The folder of ``database`` in the dump root ``directory`` and its collections.

    The database must be the one dumped: FireWorks' job specs name the
    database their job store writes to, so a screen restored under another
    name would write its next results where nothing reads them.
    """
    directory = Path(directory)
    if not directory.exists():
        raise DumpError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise DumpError(f"{directory} is a file, not a dump directory (DIR/<database>/"
                        "<collection>.bson, as haml db dump and mongodump write)")
    if any(directory.glob("*.bson")):
        raise DumpError(f"{directory} holds collection files itself: give the folder "
                        "above it, the dump root with one folder per database")
    dumped = sorted(p.name for p in directory.iterdir()
                    if p.is_dir() and not p.name.startswith(".")
                    and (any(p.glob("*.bson")) or any(p.glob("*.metadata.json"))))
    if not dumped:
        raise DumpError(f"{directory} holds no dump: no <database>/<collection>.bson "
                        "files (haml db dump DIR writes them)")
    if database not in dumped:
        raise DumpError(
            f"{directory} holds a dump of database {' and '.join(map(repr, dumped))}, "
            f"not of {database!r} (HAML_DATABASE); set HAML_DATABASE to the dumped "
            "name: the dumped Fireworks write to the database they name"
        )
    folder = directory / database
    names: dict[str, DumpedCollection] = {}
    for path in sorted(folder.iterdir()):
        if path.name.endswith(".metadata.json"):
            metadata = _read_metadata(path)
            name = metadata.get("collectionName") or unquote(path.name[:-len(".metadata.json")])
            names.setdefault(name, DumpedCollection(name, None, {})).metadata = metadata
        elif path.suffix == ".bson":
            name = unquote(path.stem)
            names.setdefault(name, DumpedCollection(name, None, {})).bson = path
    collections = [c for n, c in sorted(names.items()) if not n.startswith("system.")]
    _check_manifest(directory, database, collections)
    for c in collections:
        if c.bson is not None:
            c.documents = check_bson_file(c.bson)
    return folder, collections


def _read_metadata(path: Path) -> dict:
    try:
        metadata = json_util.loads(path.read_text())
    except ValueError as exc:
        raise DumpError(f"{path} is not extended JSON ({exc}); the dump is damaged") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("indexes", []), list):
        raise DumpError(f"{path} has no list of indexes; the dump is damaged")
    return metadata


def _check_manifest(directory: Path, database: str, collections: list[DumpedCollection]) -> None:
    """When haml wrote the dump, every collection it listed must be there in full."""
    manifest = _read_manifest(directory)
    listed = ((manifest or {}).get("databases") or {}).get(database)
    if listed is None:
        return  # a dump by mongodump, or one copied without its manifest
    present = {c.name: c for c in collections}
    missing = sorted(set(listed["collections"]) - {n for n, c in present.items() if c.bson})
    if missing:
        raise DumpError(
            f"{directory / database} lacks {', '.join(missing)}, which the dump of "
            f"{listed['written']} holds ({MANIFEST}); copy the whole dump directory"
        )
    for name, expected in listed["collections"].items():
        size = present[name].bson.stat().st_size
        if size != expected["bytes"]:
            raise DumpError(
                f"{present[name].bson} has {size} bytes, the dump wrote {expected['bytes']} "
                f"({MANIFEST}); copy the whole dump directory again"
            )


def holds_documents(db) -> dict[str, int]:
    """Collections of ``db`` (not system ones) that hold documents, with their counts."""
    return {
        name: count for name in sorted(db.list_collection_names())
        if not name.startswith("system.")
        and (count := db[name].estimated_document_count())
    }


def restore_database(
    db,
    directory: Path,
    drop: bool = False,
    progress: Callable[[CollectionCopy], None] | None = None,
) -> CopyReport:
    """Insert the dump of ``db``'s database found in ``directory`` into ``db``, with its indexes.

    A database that already holds documents is refused unless ``drop``, which
    drops every collection of it first. Each collection's count is checked
    against the documents read.
    """
    folder, collections = find_dump(directory, db.name)
    occupied = holds_documents(db)
    if occupied and not drop:
        shown = ", ".join(f"{n} ({c})" for n, c in list(occupied.items())[:4])
        more = f" and {len(occupied) - 4} more" if len(occupied) > 4 else ""
        raise DumpError(
            f"database {db.name!r} already holds documents ({shown}{more}); restore "
            "into an empty database, or give --drop to replace everything in it"
        )
    report = CopyReport(database=db.name, directory=folder)
    for name in sorted(db.list_collection_names()):
        if name.startswith("system."):
            continue
        if drop or name in {c.name for c in collections}:
            db.drop_collection(name)
            if name in occupied:
                report.dropped.append(name)
    for dumped in collections:
        copied = _restore_collection(db, dumped)
        report.collections.append(copied)
        if progress is not None:
            progress(copied)
    return report


def _batches(documents) -> Iterator[tuple[list[RawBSONDocument], int]]:
    """``documents`` in lists of at most ``_BATCH_DOCUMENTS`` or about ``_BATCH_BYTES``."""
    batch: list[RawBSONDocument] = []
    size = 0
    for document in documents:
        batch.append(document)
        size += len(document.raw)
        if len(batch) >= _BATCH_DOCUMENTS or size >= _BATCH_BYTES:
            yield batch, size
            batch, size = [], 0
    if batch:
        yield batch, size


def _restore_collection(db, dumped: DumpedCollection) -> CollectionCopy:
    options = dumped.metadata.get("options") or {}
    if options:
        db.create_collection(dumped.name, **options)
    collection = db.get_collection(dumped.name, codec_options=_RAW)
    documents = size = 0
    for batch, batch_bytes in _batches(read_bson_file(dumped.bson) if dumped.bson else ()):
        collection.insert_many(batch, ordered=True)
        documents += len(batch)
        size += batch_bytes
    if dumped.name not in db.list_collection_names():
        db.create_collection(dumped.name)  # an empty collection stays a collection
    stored = db[dumped.name].count_documents({})
    if stored != documents or documents != dumped.documents:
        raise DumpError(f"{db.name}.{dumped.name} holds {stored} documents after the "
                        f"restore, the dump {dumped.documents}")
    indexes = _restore_indexes(db[dumped.name], dumped.metadata.get("indexes", []))
    return CollectionCopy(dumped.name, documents, size, indexes)


def _restore_indexes(collection, indexes: list[dict]) -> int:
    """Create the dumped indexes (``_id`` exists already); return how many the collection has."""
    from pymongo import IndexModel

    models = []
    for index in indexes:
        if index.get("name") == "_id_":
            continue
        options = {k: v for k, v in index.items() if k not in ("key", "v", "ns")}
        models.append(IndexModel(list(index["key"].items()), **options))
    if models:
        collection.create_indexes(models)
    return len(list(collection.list_indexes()))
