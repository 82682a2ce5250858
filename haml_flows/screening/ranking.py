"""Ranking a screen's candidates and exporting the table as CSV or JSON.

Per candidate:

- cost from the CycleDocs, summed in the database (``status.cycle_totals``)
  and turned into CPU hours per ps exactly as ``analysis.cost.cost_summary``
  does: HAML = all stages' CPU over all simulated ps, AIMD = AIMD CPU over
  AIMD ps, speed-up = their ratio;
- the fidelity audit, summed in the same aggregation (``schemas.RunAudit``):
  audited cycles, failed audits, the largest and the last audited force
  RMSE, and the guard firings by kind (temperature band, close contact, bad
  forces, overheating), cycles a guard stopped, training fallbacks and
  corrected AIMD failures;
- for finished candidates, the structural change between the optimized
  structure (RunDoc) and the final one (RunSummaryDoc): similarity
  (``analysis.similarity``) and bond-count changes (``analysis.bonds``).
  These, and the run's cost totals and audit, are computed once per finished run and
  kept as CandidateResultDocs, so a later ``haml results`` reads them back
  instead of recomputing or aggregating.

Rank keys (``--rank``), best first:

- ``similarity``: highest similarity first (the least changed interface);
- ``bonds``: smallest total |bond-count change| first;
- ``cost``: lowest HAML CPU hours per ps first;
- ``speedup``: largest speed-up over AIMD first.

Candidates without a value for the key (not finished, no cycles) are listed
after the ranked ones, unranked.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from haml_flows.files import write_atomic
from haml_flows.screening.collections import RESULTS
from haml_flows.screening.rank_keys import RANK_KEYS
from haml_flows.screening.schemas import (
    GUARD_KINDS,
    CandidateResultDoc,
    CandidateRow,
    RunAudit,
)
from haml_flows.screening.status import screen_status



class RankKeyError(ValueError):
    """An unknown rank key; the message lists the allowed ones."""


def check_rank_key(key: str) -> str:
    """Return ``key`` or raise RankKeyError naming the allowed keys."""
    if key not in RANK_KEYS:
        raise RankKeyError(f"unknown rank key {key!r}; allowed: {sorted(RANK_KEYS)}")
    return key


def cost_from_totals(totals: dict) -> dict:
    """CPU hours per ps of HAML and AIMD and the speed-up, from summed CycleDoc fields."""
    haml_cpu = (totals["aimd_cpu_s"] + totals["training_cpu_s"] + totals["mlpmd_cpu_s"]
                + totals.get("audit_cpu_s", 0.0))
    total_ps = (totals.get("simulated_fs") or 0.0) / 1000.0
    aimd_ps = totals["aimd_fs"] / 1000.0
    haml = haml_cpu / total_ps / 3600 if total_ps > 0 else None
    aimd = totals["aimd_cpu_s"] / aimd_ps / 3600 if aimd_ps > 0 else None
    return {
        "haml_cpu_h_per_ps": haml,
        "aimd_cpu_h_per_ps": aimd,
        "speedup": aimd / haml if aimd and haml else None,
    }


def _structures(db, docs_collection: str, run_ids: list[str]) -> dict:
    """run id -> {'start': optimized Structure dict, 'final': ..., 'completed_at': ...}."""
    out: dict[str, dict] = {r: {} for r in run_ids}
    for doc in db[docs_collection].find(
        {"output.doc_type": {"$in": ["haml_run", "haml_run_summary"]},
         "output.run_id": {"$in": run_ids}},
        {"output.doc_type": 1, "output.run_id": 1, "output.structure": 1,
         "output.completed_at": 1},
    ):
        o = doc["output"]
        if o["doc_type"] == "haml_run":
            out[o["run_id"]]["start"] = o["structure"]
        else:
            out[o["run_id"]]["final"] = o["structure"]
            out[o["run_id"]]["completed_at"] = o.get("completed_at")
    return out


def _as_datetime(value) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return datetime.fromtimestamp(0)


def structural_result(
    screen: str, candidate: str, run_id: str, parts: dict, totals: dict,
    audit: RunAudit | None = None,
) -> CandidateResultDoc:
    """Similarity and bond-count change between the optimized and the final structure."""
    # loaded here: a screen ranked once reads its stored results without them
    from pymatgen.core import Structure

    from haml_flows.analysis.bonds import bond_counts
    from haml_flows.analysis.similarity import structure_similarity

    start = Structure.from_dict(parts["start"])
    final = Structure.from_dict(parts["final"])
    before, after = bond_counts(start), bond_counts(final)
    change = {k: after[k] - before[k] for k in before}
    return CandidateResultDoc(
        run_id=run_id,
        screen=screen,
        candidate=candidate,
        similarity=structure_similarity(start, final),
        bonds_initial=before,
        bonds_final=after,
        bond_change=change,
        bond_change_total=sum(abs(v) for v in change.values()),
        totals=totals,
        audit=audit,
        summary_completed_at=_as_datetime(parts.get("completed_at")),
    )


def candidate_rows(
    db,
    launchpad,
    screen: str,
    docs_collection: str = "outputs",
    progress: Callable[[str], None] | None = None,
) -> list[CandidateRow]:
    """Every candidate's row; structural results of newly finished runs are stored."""
    status = screen_status(db, launchpad, screen, docs_collection)
    finished = [c.run_id for c in status.candidates if c.finished]
    cached = {
        d["_id"]: CandidateResultDoc.model_validate(d)
        for d in db[RESULTS].find({"_id": {"$in": finished}})
    }
    by_run = {c.run_id: c for c in status.candidates}
    for run_id, result in list(cached.items()):
        if result.audit is None and by_run[run_id].audit is not None:
            # kept before audits were: screen_status summed them just now
            audit = by_run[run_id].audit
            db[RESULTS].update_one({"_id": run_id}, {"$set": {"audit": audit.model_dump()}})
            cached[run_id] = result.model_copy(update={"audit": audit})
    missing = [r for r in finished if r not in cached]
    if missing:
        parts = _structures(db, docs_collection, missing)
        for run_id in missing:
            if "start" not in parts[run_id] or "final" not in parts[run_id]:
                continue
            c = by_run[run_id]
            result = structural_result(
                screen, c.candidate, run_id, parts[run_id], c.totals, c.audit
            )
            db[RESULTS].replace_one(
                {"_id": run_id}, {"_id": run_id, **result.model_dump()}, upsert=True
            )
            cached[run_id] = result
            if progress is not None:
                progress(by_run[run_id].candidate)
    rows = []
    for c in status.candidates:
        cost = cost_from_totals(c.totals) if c.totals else {}
        result = cached.get(c.run_id)
        rows.append(
            CandidateRow(
                rank=None,
                screen=screen,
                candidate=c.candidate,
                run_id=c.run_id,
                dopant=c.dopant,
                host=c.metadata.get("host"),
                concentration=c.concentration,
                seed=c.seed,
                state=c.state,
                cycles=c.cycles,
                simulated_ps=c.simulated_ps,
                finished=c.finished,
                similarity=result.similarity if result else None,
                bond_change_total=result.bond_change_total if result else None,
                bond_change=result.bond_change if result else {},
                haml_cpu_h_per_ps=cost.get("haml_cpu_h_per_ps"),
                aimd_cpu_h_per_ps=cost.get("aimd_cpu_h_per_ps"),
                speedup=cost.get("speedup"),
                audit=c.audit,
            )
        )
    return rows


def rank_rows(rows: list[CandidateRow], key: str, reverse: bool = False) -> list[CandidateRow]:
    """Rows best first by ``key`` (``reverse`` flips the order); unranked rows last."""
    field, larger_is_better = RANK_KEYS[check_rank_key(key)]
    descending = larger_is_better != reverse
    ranked = [r for r in rows if getattr(r, field) is not None]
    rest = [r for r in rows if getattr(r, field) is None]
    sign = -1 if descending else 1
    ranked.sort(key=lambda r: (sign * getattr(r, field), r.candidate))
    out = [r.model_copy(update={"rank": i + 1}) for i, r in enumerate(ranked)]
    return out + [r.model_copy(update={"rank": None}) for r in rest]


CSV_COLUMNS = [
    "rank", "candidate", "dopant", "host", "concentration", "seed", "state", "cycles",
    "simulated_ps", "finished", "similarity", "bond_change_total",
    "haml_cpu_h_per_ps", "aimd_cpu_h_per_ps", "speedup", "run_id", "screen",
]

AUDIT_COLUMNS = [
    "audited_cycles", "audits_failed", "audit_force_rmse_max", "audit_force_rmse_last",
    "audit_last_cycle", "cycles_guarded",
    *(f"guard_{kind}" for kind in [*GUARD_KINDS, "other"]),
    "training_fallbacks", "aimd_corrections",
]
"""The audit columns of the CSV: RunAudit's fields, one ``guard_<kind>`` column per guard."""


def audit_values(audit: RunAudit | None) -> list:
    """The AUDIT_COLUMNS values of one row ('' for a candidate without cycles)."""
    if audit is None:
        return [""] * len(AUDIT_COLUMNS)
    flat = {**audit.model_dump(exclude={"guards"}),
            **{f"guard_{k}": audit.guards.get(k, 0) for k in [*GUARD_KINDS, "other"]}}
    return ["" if flat[c] is None else flat[c] for c in AUDIT_COLUMNS]


def rows_csv(rows: list[CandidateRow]) -> str:
    """CSV text: the row fields, the audit columns, then a ``bond_change_<pair>`` column per pair."""
    pairs = sorted({k for r in rows for k in r.bond_change})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS + AUDIT_COLUMNS + [f"bond_change_{p}" for p in pairs])
    for r in rows:
        values = r.model_dump()
        writer.writerow(
            ["" if values[c] is None else values[c] for c in CSV_COLUMNS]
            + audit_values(r.audit)
            + [r.bond_change.get(p, "") for p in pairs]
        )
    return buffer.getvalue()


def rows_json(rows: list[CandidateRow], screen: str, key: str, reverse: bool) -> str:
    """JSON text: the rank key, its order and the rows."""
    field, larger_is_better = RANK_KEYS[key]
    return json.dumps(
        {
            "screen": screen,
            "rank_key": key,
            "rank_field": field,
            "order": "descending" if larger_is_better != reverse else "ascending",
            "rows": [r.model_dump(mode="json") for r in rows],
        },
        indent=2,
    )


def export(rows, path: Path, screen: str, key: str, reverse: bool = False) -> None:
    """Write rows to ``path``: CSV for .csv, JSON for .json."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        write_atomic(path, rows_csv(rows))
    elif suffix == ".json":
        write_atomic(path, rows_json(rows, screen, key, reverse))
    else:
        raise ValueError(f"export file {path}: suffix must be .csv or .json")
