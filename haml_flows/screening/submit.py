"""Submitting a screen: expand, build every new candidate, add them in one batch.

Idempotent: a candidate is ``<screen>:<spec hash>``. Before a workflow is
added, the candidate is claimed by inserting its CandidateDoc under that
``_id``; a second submission (or a concurrent one) collides with the claim
and adds nothing. Every candidate is expanded, validated and built before
the first claim, so a bad screen leaves the database untouched; if adding the
workflows fails, the claims are removed again. A claim still marked
``submitted: False`` at the next submission (its submitter died between
claim and insert) is taken over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jobflow import Flow, JobStore
from pymatgen.core import Structure
from pymongo.errors import BulkWriteError

from haml_flows.database.launchpad import ensure_initialized
from haml_flows.runner import build_run
from haml_flows.screening.collections import CANDIDATES, ensure_indexes
from haml_flows.screening.plan import Candidate, ScreenPlan, expand_candidates
from haml_flows.screening.schemas import CandidateDoc, CandidateMetadata
from haml_flows.spec import SpecError
from haml_flows.systems import build_system

DUPLICATE_KEY = 11000


@dataclass(eq=False)
class PreparedCandidate:
    """A candidate with its structure, flow and the document that claims it."""

    candidate: Candidate
    structure: Structure
    flow: Flow
    doc: CandidateDoc

    @property
    def doc_id(self) -> str:
        return f"{self.doc.screen}:{self.doc.spec_hash}"


@dataclass
class SubmissionReport:
    """What a submission did: candidates added and already present."""

    screen: str
    added: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    fireworks: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.added) + len(self.present)


class _Clock:
    """Wall seconds per phase, for the benchmark and the command's summary."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now


def candidate_id(screen: str, spec_hash: str) -> str:
    """The ``_id`` of a candidate document."""
    return f"{screen}:{spec_hash}"


def run_id_for(candidate: Candidate) -> str:
    """Deterministic run id: candidate name and the first 8 digits of its hash."""
    return f"{candidate.name}-{candidate.spec_hash[:8]}"


def metadata_for(plan: ScreenPlan, candidate: Candidate) -> CandidateMetadata:
    """The labels stored with the candidate and on its FireWorks workflow."""
    return CandidateMetadata(
        screen=plan.name,
        candidate=candidate.name,
        system=plan.system,
        dopant=candidate.dopant,
        host=candidate.host,
        concentration=candidate.concentration,
        seed=candidate.seed,
        spec_hash=candidate.spec_hash,
        run_id=run_id_for(candidate),
    )


def prepare_candidates(
    plan: ScreenPlan,
    candidates: list[Candidate] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[PreparedCandidate]:
    """Build structure and flow of each candidate; raises SpecError on the first bad one.

    Candidates with the same ``system`` section share one built structure.
    """
    structures: dict[str, Structure] = {}
    prepared = []
    for candidate in plan.candidates if candidates is None else candidates:
        spec = candidate.spec
        key = json.dumps(spec.system.model_dump(mode="json"), sort_keys=True)
        meta = metadata_for(plan, candidate)
        manager_config = {"haml_screen": plan.name}
        if plan.category:
            manager_config["_category"] = plan.category
        try:
            if key not in structures:
                structures[key] = build_system(spec.system, base_dir=Path(plan.source).parent)
            run = build_run(spec, structures[key], meta.run_id, **manager_config)
        except SpecError as exc:
            raise SpecError(f"candidate {candidate.name}: {exc}") from None
        except ValueError as exc:  # the builders' own checks (doping, geometry)
            raise SpecError(f"candidate {candidate.name}: system.parameters: {exc}") from None
        doc = CandidateDoc(
            **meta.model_dump(),
            formula=run.structure.composition.reduced_formula,
            n_atoms=len(run.structure),
            spec=spec.model_dump(mode="json"),
            source=str(plan.source),
            submitted=False,
        )
        prepared.append(PreparedCandidate(candidate, run.structure, run.flow, doc))
        if progress is not None:
            progress(candidate.name)
    return prepared


def _claim(collection, prepared: list[PreparedCandidate]) -> list[PreparedCandidate]:
    """Insert the claims; return the candidates this call claimed."""
    if not prepared:
        return []
    docs = [{"_id": p.doc_id, **p.doc.model_dump()} for p in prepared]
    try:
        collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        lost = {e["index"] for e in errors}
        return [p for i, p in enumerate(prepared) if i not in lost]
    return prepared


def submit_screen(
    path: str | Path,
    store: JobStore,
    launchpad,
    db,
    docs_collection: str = "outputs",
    progress: Callable[[str], None] | None = None,
    plan: ScreenPlan | None = None,
) -> SubmissionReport:
    """Add the screen's new candidates to the LaunchPad; skip those already there."""
    from jobflow.managers.fireworks import flow_to_workflow

    clock = _Clock()
    plan = plan or expand_candidates(path)
    clock.lap("expand")
    ensure_indexes(db, docs_collection)
    ensure_initialized(launchpad)
    collection = db[CANDIDATES]
    ids = {candidate_id(plan.name, c.spec_hash): c for c in plan.candidates}
    report = SubmissionReport(screen=plan.name)
    existing = {
        d["_id"]: d["submitted"]
        for d in collection.find({"_id": {"$in": list(ids)}}, {"submitted": 1})
    }
    stale = [i for i, submitted in existing.items() if not submitted]
    if stale:  # claims whose submission never finished
        collection.delete_many({"_id": {"$in": stale}, "submitted": False})
    present = {i for i, submitted in existing.items() if submitted}
    report.present = [ids[i].name for i in ids if i in present]
    new = [c for i, c in ids.items() if i not in present]
    clock.lap("lookup")
    prepared = prepare_candidates(plan, new, progress)
    clock.lap("build")

    claimed = _claim(collection, prepared)
    claimed_ids = {p.doc_id for p in claimed}
    report.present += [p.candidate.name for p in prepared if p.doc_id not in claimed_ids]
    clock.lap("claim")
    report.seconds = clock.laps
    if not claimed:
        return report
    workflows = []
    for p in claimed:
        wf = flow_to_workflow(p.flow, store=store, name=f"{plan.name} {p.candidate.name}")
        wf.metadata = p.doc.model_dump(include=set(CandidateMetadata.model_fields))
        workflows.append(wf)
    clock.lap("workflows")
    try:
        launchpad.bulk_add_wfs(workflows)
    except BaseException:
        collection.delete_many({"_id": {"$in": [p.doc_id for p in claimed]}})
        raise
    from pymongo import UpdateOne

    collection.bulk_write(
        [
            UpdateOne(
                {"_id": p.doc_id},
                {"$set": {"submitted": True, "fw_ids": sorted(wf.id_fw)}},
            )
            for p, wf in zip(claimed, workflows, strict=True)
        ]
    )
    clock.lap("insert")
    report.added = [p.candidate.name for p in claimed]
    report.fireworks = sum(len(wf) for wf in workflows)
    return report
