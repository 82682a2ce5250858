"""Progress of screens: workflows by state, cycles and simulated ps, failures.

Everything comes from a few indexed queries: the candidate documents, the
FireWorks ``workflows`` (``metadata.screen``) and ``fireworks``/``launches``
collections, and one aggregation over the CycleDocs in the jobflow
documents collection, grouped by run id. Finished runs that ``haml results``
has analysed keep their totals in their CandidateResultDoc and are not
aggregated again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from haml_flows.screening.collections import CANDIDATES, RESULTS
from haml_flows.screening.schemas import GUARD_KINDS, RunAudit


@dataclass
class CandidateProgress:
    """Where one candidate stands."""

    candidate: str
    run_id: str
    dopant: str | None
    concentration: float | None
    seed: int
    state: str
    cycles: int = 0
    simulated_ps: float = 0.0
    finished: bool = False
    failures: list[str] = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    audit: RunAudit | None = None
    metadata: dict = field(default_factory=dict)


@dataclass
class ScreenStatus:
    """A screen's candidates and the count of workflows per state."""

    screen: str
    candidates: list[CandidateProgress]

    @property
    def states(self) -> dict[str, int]:
        return dict(sorted(Counter(c.state for c in self.candidates).items()))


def screen_names(db) -> list[str]:
    """Screens with submitted candidates, sorted."""
    return sorted(db[CANDIDATES].distinct("screen"))


def _is_set(path: str) -> dict:
    """An aggregation expression: the field at ``path`` is present and not null."""
    return {"$ne": [{"$ifNull": [path, None]}, None]}


def _count_if(condition: dict) -> dict:
    return {"$sum": {"$cond": [condition, 1, 0]}}


def _firings(handler: str) -> dict:
    """Summed: the records of ``handler`` in a CycleDoc's mlpmd_collapse."""
    return {"$sum": {"$size": {"$filter": {
        "input": {"$ifNull": ["$output.mlpmd_collapse", []]},
        "cond": {"$eq": ["$$this.handler", handler]},
    }}}}


#: the $group accumulators of a run's audits and guards (fields of RunAudit)
_AUDIT_GROUP = {
    "audited_cycles": _count_if(_is_set("$output.audit_force_rmse")),
    "audits_failed": _count_if({"$eq": ["$output.audit_passed", False]}),
    "audit_force_rmse_max": {"$max": "$output.audit_force_rmse"},
    # documents compare field by field: the audited cycle with the largest number
    "audit_last": {"$max": {"$cond": [
        _is_set("$output.audit_force_rmse"),
        {"cycle": "$output.cycle", "force_rmse": "$output.audit_force_rmse"},
        None,
    ]}},
    "cycles_guarded": _count_if({"$eq": ["$output.stop_reason", "collapse"]}),
    "guard_firings": {"$sum": {"$size": {"$ifNull": ["$output.mlpmd_collapse", []]}}},
    **{f"guard_{kind}": _firings(handler) for kind, handler in GUARD_KINDS.items()},
    "training_fallbacks": _count_if(_is_set("$output.training_fallback")),
    "aimd_corrections": {"$sum": {"$size": {"$ifNull": ["$output.aimd_corrections", []]}}},
}


def _run_audit(group: dict) -> RunAudit:
    """The RunAudit of one run from its $group result (its audit keys are removed)."""
    last = group.pop("audit_last", None) or {}
    guards = {kind: group.pop(f"guard_{kind}", 0) for kind in GUARD_KINDS}
    guards["other"] = group.pop("guard_firings", 0) - sum(guards.values())
    fields = ("audited_cycles", "audits_failed", "audit_force_rmse_max", "cycles_guarded",
              "training_fallbacks", "aimd_corrections")
    return RunAudit(
        **{k: group.pop(k) for k in fields},
        audit_force_rmse_last=last.get("force_rmse"),
        audit_last_cycle=last.get("cycle"),
        guards=guards,
    )


@dataclass
class RunTotals:
    """A run's CycleDocs summed: cost totals and its audits and guards."""

    totals: dict
    audit: RunAudit


def cycle_totals(db, docs_collection: str, run_ids: list[str]) -> dict[str, RunTotals]:
    """run id -> cycles, simulated fs, CPU/AIMD totals, audits and guards, summed in the database."""
    if not run_ids:
        return {}
    pipeline = [
        {"$match": {"output.doc_type": "haml_cycle", "output.run_id": {"$in": run_ids}}},
        {
            "$group": {
                "_id": "$output.run_id",
                "cycles": {"$sum": 1},
                "simulated_fs": {"$max": "$output.cumulative_fs"},
                "aimd_fs": {"$sum": "$output.aimd_fs"},
                "aimd_cpu_s": {"$sum": "$output.aimd_cost.cpu_seconds"},
                "training_cpu_s": {"$sum": "$output.training_cost.cpu_seconds"},
                "mlpmd_cpu_s": {"$sum": "$output.mlpmd_cost.cpu_seconds"},
                "audit_cpu_s": {"$sum": "$output.audit_cost.cpu_seconds"},
                **_AUDIT_GROUP,
            }
        },
    ]
    out = {}
    for group in db[docs_collection].aggregate(pipeline):
        run_id = group.pop("_id")
        audit = _run_audit(group)
        out[run_id] = RunTotals(group, audit)
    return out


def finished_runs(db, docs_collection: str, run_ids: list[str]) -> set[str]:
    """Run ids whose RunSummaryDoc is stored."""
    if not run_ids:
        return set()
    return set(
        db[docs_collection].distinct(
            "output.run_id",
            {"output.doc_type": "haml_run_summary", "output.run_id": {"$in": run_ids}},
        )
    )


def _reason(launch: dict) -> str:
    """Last line of the stored exception, or FireWorks' message."""
    stored = (launch.get("action") or {}).get("stored_data") or {}
    exception = stored.get("_exception") or {}
    trace = exception.get("_stacktrace") or stored.get("_message") or "no reason stored"
    lines = [line for line in str(trace).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no reason stored"


def failures(launchpad, screen: str, run_ids: list[str]) -> dict[str, list[str]]:
    """run id -> '<job name>: <reason>' for every FIZZLED Firework of the runs.

    Asked by screen and state (an equality query on the screen index; an
    ``$in`` over hundreds of run ids is 100x slower on the embedded server),
    then kept to ``run_ids``.
    """
    wanted = set(run_ids)
    if not wanted:
        return {}
    fizzled = [
        fw
        for fw in launchpad.fireworks.find(
            {"spec.haml_screen": screen, "state": "FIZZLED"},
            {"fw_id": 1, "name": 1, "spec.haml_run_id": 1},
        )
        if fw.get("spec", {}).get("haml_run_id") in wanted
    ]
    if not fizzled:
        return {}
    last_launch = {}
    for launch in launchpad.launches.find(
        {"fw_id": {"$in": [f["fw_id"] for f in fizzled]}, "state": "FIZZLED"},
        {"fw_id": 1, "launch_id": 1, "action.stored_data": 1},
    ):
        previous = last_launch.get(launch["fw_id"])
        if previous is None or launch["launch_id"] > previous["launch_id"]:
            last_launch[launch["fw_id"]] = launch
    out: dict[str, list[str]] = {}
    for fw in fizzled:
        launch = last_launch.get(fw["fw_id"])
        reason = _reason(launch) if launch else "no launch stored"
        out.setdefault(fw["spec"]["haml_run_id"], []).append(f"{fw['name']}: {reason}")
    return out


def screen_status(db, launchpad, screen: str, docs_collection: str = "outputs") -> ScreenStatus:
    """Every candidate of ``screen`` with its workflow state and progress."""
    candidates = list(
        db[CANDIDATES].find(
            {"screen": screen},
            {"spec": 0, "source": 0},
        ).sort([("dopant", 1), ("concentration", 1), ("seed", 1)])
    )
    run_ids = [c["run_id"] for c in candidates]
    states = {
        w["metadata"]["run_id"]: w["state"]
        for w in launchpad.workflows.find(
            {"metadata.screen": screen}, {"state": 1, "metadata.run_id": 1}
        )
    }
    # finished runs that were ranked before carry their totals and audits with them
    wanted = set(run_ids)
    cached = {
        d["_id"]: RunTotals(d["totals"], RunAudit.model_validate(d["audit"]))
        for d in db[RESULTS].find({"screen": screen}, {"totals": 1, "audit": 1})
        if d.get("totals") and d.get("audit") and d["_id"] in wanted
    }
    others = [r for r in run_ids if r not in cached]
    totals = {**cycle_totals(db, docs_collection, others), **cached}
    done = finished_runs(db, docs_collection, others) | set(cached)
    failed = failures(launchpad, screen, run_ids)
    out = []
    for c in candidates:
        run_id = c["run_id"]
        summed = totals.get(run_id)
        t = summed.totals if summed else {}
        state = states.get(run_id) or ("SUBMITTING" if not c.get("submitted") else "MISSING")
        out.append(
            CandidateProgress(
                candidate=c["candidate"],
                run_id=run_id,
                dopant=c.get("dopant"),
                concentration=c.get("concentration"),
                seed=c["seed"],
                state=state,
                cycles=t.get("cycles", 0),
                simulated_ps=(t.get("simulated_fs") or 0.0) / 1000.0,
                finished=run_id in done,
                failures=failed.get(run_id, []),
                totals=t,
                audit=summed.audit if summed else None,
                metadata={k: c.get(k) for k in ("host", "system", "spec_hash")},
            )
        )
    return ScreenStatus(screen=screen, candidates=out)
