"""Reading a run back: run, cycle and summary documents, and trajectories.

Cycle and run documents are small and come from the documents store alone;
trajectories are loaded from the ``data`` store (GridFS bucket
``outputs_data``) only when asked for.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime

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


@dataclass
class RunListing:
    """One line of ``haml runs``: a run's identity and how far it got."""

    run_id: str
    name: str
    formula: str
    n_atoms: int
    started: str
    cycles: int
    simulated_ps: float
    finished: bool
    stop_reason: str | None
    last_update: str

    @property
    def state(self) -> str:
        return f"finished ({self.stop_reason})" if self.finished else "unfinished"


def _timestamp(value) -> str:
    """Job-store times (ISO strings or datetimes) as ``YYYY-MM-DD HH:MM`` UTC."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    text = str(value or "")
    return text[:16].replace("T", " ")


def run_listing(store: JobStore) -> list[RunListing]:
    """Every stored run, oldest first, from three small queries (no structures loaded)."""
    runs = list(store.query(
        {"output.doc_type": "haml_run"},
        properties=["output.run_id", "output.name", "output.formula", "output.n_atoms",
                    "output.created_at", "completed_at"],
        sort={"completed_at": 1},
    ))
    progress: dict[str, tuple[int, float, str]] = {}
    for d in store.query(
        {"output.doc_type": "haml_cycle"},
        properties=["output.run_id", "output.cumulative_fs", "completed_at"],
    ):
        run_id = d["output"]["run_id"]
        cycles, fs, last = progress.get(run_id, (0, 0.0, ""))
        stamp = str(d.get("completed_at") or "")
        progress[run_id] = (cycles + 1, max(fs, d["output"]["cumulative_fs"]), max(last, stamp))
    ended = {
        d["output"]["run_id"]: (d["output"]["stop_reason"], str(d.get("completed_at") or ""))
        for d in store.query(
            {"output.doc_type": "haml_run_summary"},
            properties=["output.run_id", "output.stop_reason", "completed_at"],
        )
    }
    rows = []
    for d in runs:
        out = d["output"]
        run_id = out["run_id"]
        cycles, fs, last = progress.get(run_id, (0, 0.0, ""))
        reason, end = ended.get(run_id, (None, ""))
        last = max(last, end, str(d.get("completed_at") or ""))
        rows.append(RunListing(
            run_id=run_id, name=out.get("name", ""), formula=out.get("formula", ""),
            n_atoms=out.get("n_atoms", 0),
            started=_timestamp(out.get("created_at") or d.get("completed_at")),
            cycles=cycles, simulated_ps=fs / 1000.0, finished=run_id in ended,
            stop_reason=reason, last_update=_timestamp(last),
        ))
    return rows


def similar_run_ids(store: JobStore, run_id: str, n: int = 3) -> list[str]:
    """Stored run ids close to a mistyped ``run_id`` (for 'did you mean')."""
    return difflib.get_close_matches(run_id, run_ids(store), n=n, cutoff=0.6)


def unknown_run_message(store: JobStore, run_id: str) -> str:
    """'no run X stored', with the closest stored ids or the command that lists them."""
    close = similar_run_ids(store, run_id)
    if close:
        return f"no run {run_id!r} stored; did you mean {' or '.join(close)}?"
    return f"no run {run_id!r} stored; `haml runs` lists the stored runs"
