"""The FireWorks LaunchPad: ids that stay unique under concurrent workers, first use.

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
"""

from __future__ import annotations

from fireworks import Firework, LaunchPad, Workflow
from pymongo import ReturnDocument


class AtomicIdLaunchPad(LaunchPad):
    """LaunchPad reading its id counters from post-images (see the module docstring)."""

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
    launchpad.reset("", require_password=False)
    return True
