"""Reading a run back: run, cycle and summary documents, and trajectories.

Cycle and run documents are small and come from the documents store alone;
trajectories are loaded from the ``data`` store only when asked for.
"""

from __future__ import annotations

from jobflow import JobStore
from pymatgen.core.trajectory import Trajectory

from haml_flows.schemas import CycleDoc, RunDoc, RunSummaryDoc


def _outputs(store: JobStore, doc_type: str, run_id: str, sort: dict | None = None):
    return store.query(
        {"output.doc_type": doc_type, "output.run_id": run_id},
        properties=["output"],
        sort=sort,
    )


def cycle_docs(store: JobStore, run_id: str) -> list[CycleDoc]:
    """The run's CycleDocs in cycle order."""
    docs = _outputs(store, "haml_cycle", run_id, sort={"output.cycle": 1})
    return [CycleDoc.model_validate(d["output"]) for d in docs]


def run_doc(store: JobStore, run_id: str) -> RunDoc | None:
    """The run document, or None when the run is unknown."""
    docs = list(_outputs(store, "haml_run", run_id))
    return RunDoc.model_validate(docs[0]["output"]) if docs else None


def run_summary(store: JobStore, run_id: str) -> RunSummaryDoc | None:
    """The summary written when the loop ended, or None while it runs."""
    docs = list(_outputs(store, "haml_run_summary", run_id))
    return RunSummaryDoc.model_validate(docs[0]["output"]) if docs else None


def run_ids(store: JobStore) -> list[str]:
    """All run ids in the store, oldest first."""
    docs = store.query(
        {"output.doc_type": "haml_run"},
        properties=["output.run_id"],
        sort={"completed_at": 1},
    )
    return [d["output"]["run_id"] for d in docs]


def trajectory(store: JobStore, job_uuid: str) -> Trajectory:
    """The trajectory of an AIMD or MLP-MD job, loaded from the data store."""
    doc = store.query_one({"uuid": job_uuid}, properties=["output"], load=True)
    if doc is None:
        raise KeyError(f"no job {job_uuid} in the store")
    value = doc["output"]["trajectory"]
    return value if isinstance(value, Trajectory) else Trajectory.from_dict(value)
