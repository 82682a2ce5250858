"""The FireWorks LaunchPad: ids that stay unique under concurrent workers,
database outages ridden out, first use.

FireWorks hands out Firework and launch ids with
``find_one_and_update({}, {"$inc": ...})`` and reads the counter from the
returned *pre-image*. On the embedded SecantusDB server (0.7.0b3) that
pre-image is not always the one its own update started from when two
clients increment at once: in a measurement with two processes x 300
increments, 38-44 of the 600 returned values were duplicates, although the
counter ended at 600. Duplicate launch ids overwrite launch records;
duplicate Firework ids overwrite Fireworks, so a job is lost. The
*post-image* (``ReturnDocument.AFTER``) is exact in the same measurement
(600 distinct), so this LaunchPad reads the counter from it: the id range is
``after - quantity .. after - 1``. On a real MongoDB both forms are atomic
and this class behaves exactly like FireWorks' own.

FireWorks' own bookkeeping (checking a Firework out, refreshing the
workflow after a job, pinging a launch) talks to its collections directly,
so a database restart between two Fireworks used to kill a worker with a
pymongo traceback. Here every call on the LaunchPad's collections goes
through the job store's retry policy (``HAML_DB_RETRY_SECONDS``, see
``haml_flows.database.retry``): an outage inside it is ridden out, a longer
one ends in one :class:`DatabaseUnavailableError` that names the address and
``haml resume``.
"""

from __future__ import annotations

from fireworks import Firework, LaunchPad, Workflow
from pymongo import ReturnDocument

from haml_flows.database.retry import RetryPolicy, call_with_retry

#: collection methods that go to the server (``find`` returns a cursor, below)
_SERVER_CALLS = frozenset({
    "aggregate", "bulk_write", "count_documents", "create_index", "delete_many",
    "delete_one", "distinct", "drop", "estimated_document_count", "find_one",
    "find_one_and_delete", "find_one_and_replace", "find_one_and_update", "index_information",
    "insert_many", "insert_one", "replace_one", "update_many", "update_one",
})
#: cursor methods that only shape the query (recorded, replayed on each try)
_CURSOR_SHAPES = frozenset({"sort", "limit", "skip", "batch_size", "hint", "max_time_ms"})


class _Retrying:
    """Where a LaunchPad's calls go on retry: the policy and the printable address."""

    def __init__(self, policy: RetryPolicy, address: str) -> None:
        self.policy = policy
        self.address = address

    def __call__(self, call, what: str):
        return call_with_retry(call, self.policy, what, self.address)


class RetryingCollection:
    """A pymongo collection whose server calls retry through a database outage."""

    def __init__(self, collection, retrying: _Retrying) -> None:
        self._collection = collection
        self._retrying = retrying

    @property
    def name(self) -> str:
        return self._collection.name

    def find(self, *args, **kwargs) -> RetryingCursor:
        return RetryingCursor(self, args, kwargs)

    def __getattr__(self, name: str):
        attr = getattr(self._collection, name)
        if name not in _SERVER_CALLS:
            return attr
        what = f"FireWorks' LaunchPad called {name} on {self._collection.name}"

        def call(*args, **kwargs):
            result = self._retrying(lambda: attr(*args, **kwargs), what)
            # a command cursor (aggregate) is read whole within the retry
            return list(result) if name == "aggregate" else result

        return call


class RetryingCursor:
    """``find`` on a :class:`RetryingCollection`: read whole, retried as one call."""

    def __init__(self, collection: RetryingCollection, args, kwargs) -> None:
        self._collection = collection
        self._find = (args, kwargs)
        self._shapes: list[tuple[str, tuple, dict]] = []
        self._docs: list | None = None

    def __getattr__(self, name: str):
        if name not in _CURSOR_SHAPES:
            raise AttributeError(f"{name!r}: not a cursor method the LaunchPad retries")

        def shape(*args, **kwargs):
            self._shapes.append((name, args, kwargs))
            return self

        return shape

    def _read(self) -> list:
        if self._docs is None:
            def read():
                cursor = self._collection._collection.find(*self._find[0], **self._find[1])
                for name, args, kwargs in self._shapes:
                    cursor = getattr(cursor, name)(*args, **kwargs)
                return list(cursor)

            self._docs = self._collection._retrying(
                read, f"FireWorks' LaunchPad read {self._collection.name}"
            )
        return self._docs

    def __iter__(self):
        return iter(self._read())

    def __getitem__(self, index):
        return self._read()[index]

    def __len__(self) -> int:
        return len(self._read())

    def distinct(self, key: str) -> list:
        return list(dict.fromkeys(d[key] for d in self._read() if key in d))


class AtomicIdLaunchPad(LaunchPad):
    """LaunchPad reading its id counters from post-images, riding out outages.

    See the module docstring for both.
    """

    _COLLECTIONS = ("fireworks", "launches", "offline_runs", "fw_id_assigner", "workflows")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from haml_flows.database.server import mask_uri
        from haml_flows.settings import get_settings

        retrying = _Retrying(
            RetryPolicy.from_settings(get_settings()), mask_uri(str(self.host))
        )
        for name in self._COLLECTIONS:
            setattr(self, name, RetryingCollection(getattr(self, name), retrying))

    def _next(self, field: str, quantity: int) -> int:
        doc = self.fw_id_assigner.find_one_and_update(
            {}, {"$inc": {field: quantity}}, return_document=ReturnDocument.AFTER
        )
        if doc is None:
            raise ValueError(
                f"could not get the next {field}: the LaunchPad is not initialized "
                "(run `lpad reset` once on a new database)"
            )
        return doc[field] - quantity

    def get_new_fw_id(self, quantity: int = 1) -> int:
        """First of ``quantity`` new Firework ids."""
        return self._next("next_fw_id", quantity)

    def get_new_launch_id(self) -> int:
        """A new launch id."""
        return self._next("next_launch_id", 1)

    def bulk_add_wfs(self, wfs) -> None:
        """Add many workflows with two inserts, ids reserved in one step.

        Same as FireWorks' ``bulk_add_wfs`` except that the id block comes
        from :meth:`get_new_fw_id` (FireWorks inlines the pre-image read).
        """
        wfs = [Workflow.from_firework(wf) if isinstance(wf, Firework) else wf for wf in wfs]
        if not wfs:
            return
        next_id = self.get_new_fw_id(quantity=sum(len(wf) for wf in wfs))
        for wf in wfs:
            mapping = {old: next_id + i for i, old in enumerate(wf.id_fw)}
            next_id += len(wf)
            for fw in wf:
                fw.fw_id = mapping[fw.fw_id]
            wf._reassign_ids(mapping)
            for fw_id in wf.root_fw_ids:
                wf.id_fw[fw_id].state = "READY"
                wf.fw_states[fw_id] = "READY"
        self.workflows.insert_many(wf.to_db_dict() for wf in wfs)
        self.fireworks.insert_many(fw.to_db_dict() for wf in wfs for fw in wf)

    @classmethod
    def from_dict(cls, d: dict) -> AtomicIdLaunchPad:
        """Like ``LaunchPad.from_dict`` (which always builds a plain LaunchPad)."""
        plain = LaunchPad.from_dict(d)
        return cls(**plain.to_dict())


def ensure_initialized(launchpad: LaunchPad) -> bool:
    """Initialize an empty LaunchPad (``lpad reset``); True if it was empty.

    A LaunchPad with any Firework or workflow is never touched.
    """
    if launchpad.fw_id_assigner.count_documents({}) > 0:
        return False
    if launchpad.fireworks.count_documents({}) or launchpad.workflows.count_documents({}):
        raise ValueError(
            "the LaunchPad holds workflows but no id counter; repair it with "
            "`lpad admin tuneup` or reset it with `lpad reset`"
        )
    # FireWorks logs "LaunchPad was RESET." at INFO: alarming on an empty
    # database, where nothing was lost; say what was done instead
    import logging

    fw_logger = getattr(launchpad, "m_logger", None) or logging.getLogger("launchpad")
    level = fw_logger.level
    fw_logger.setLevel(logging.WARNING)
    try:
        launchpad.reset("", require_password=False)
    finally:
        fw_logger.setLevel(level)
    logging.getLogger("haml_flows.progress").info(
        "initialised FireWorks' id counters and indexes in database %r (it had no "
        "LaunchPad yet)", launchpad.name,
    )
    return True
