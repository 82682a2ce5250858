"""Ranking a screen whose runs are stored with known values.

The stored documents are made through the package's schemas (RunDoc,
CycleDoc, RunSummaryDoc) and written through the JobStore like a job's
output, so the queries see exactly what a finished run leaves behind.
"""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from haml_flows.analysis.bonds import bond_counts
from haml_flows.analysis.cost import cost_summary
from haml_flows.analysis.similarity import structure_similarity
from haml_flows.cli.main import app
from haml_flows.faults.collapse import (
    BadForcesHandler,
    CloseContactHandler,
    OverheatingHandler,
    TemperatureBandHandler,
)
from haml_flows.screening.collections import RESULTS
from haml_flows.screening.ranking import (
    RankKeyError,
    candidate_rows,
    check_rank_key,
    cost_from_totals,
    rank_rows,
)
from haml_flows.screening.schemas import GUARD_KINDS
from haml_flows.screening.status import cycle_totals
from haml_flows.screening.submit import submit_screen

runner = CliRunner()


def _correction(handler: str):
    from haml_flows.schemas import FaultCorrection

    return FaultCorrection(handler=handler, step=10, errors=["found"], actions=["done"])


#: per candidate, per cycle: audit force RMSE (None: no audit), its verdict, guard
#: handlers that stopped the MLP-MD, a training fallback, corrected AIMD failures
AUDITS = {
    "lj_lpsc_se_s1": dict(rmse=[None, None, None], guards=[[], [], []]),
    "lj_lpsc_o_s1": dict(rmse=[0.40, 0.10, None],
                         guards=[[], ["TemperatureBandHandler", "CloseContactHandler"],
                                 ["CloseContactHandler"]],
                         fallback=[False, False, True], aimd_failures=[2, 0, 1]),
    "lj_lpsc_f_s1": dict(rmse=[0.05, 0.30, 0.20],
                         guards=[["BadForcesHandler"], ["OverheatingHandler"],
                                 ["NewKindOfGuard"]]),
    "lj_lpsc_se_s2": dict(rmse=[0.12, 0.16], guards=[[], ["TemperatureBandHandler"]]),
}
MAX_FORCE_RMSE = 0.15


def _audit_fields(rmse, guards, fallback=None, aimd_failures=None) -> dict:
    """CycleDoc fields per cycle, as StoredRuns.cycles takes them."""
    n = len(rmse)
    return {
        "audit_force_rmse": rmse,
        "audit_passed": [None if r is None else r <= MAX_FORCE_RMSE for r in rmse],
        "audit_frames": [0 if r is None else 4 for r in rmse],
        "mlpmd_collapse": [[_correction(h) for h in g] for g in guards],
        "stop_reason": ["collapse" if g else "gamma_break" for g in guards],
        "training_fallback": [_correction("FitFailedHandler") if f else None
                              for f in fallback or [False] * n],
        "aimd_corrections": [[_correction("XtbScfHandler")] * k
                             for k in aimd_failures or [0] * n],
    }


@pytest.fixture
def stored_screen(tmp_path, screen_file, clients, stored_runs):
    """Se: unchanged, cheapest; O: small displacement; F: large displacement, dearest.

    A fourth candidate (Se, seed 2) has two cycles but no summary yet. Each
    run's cycles carry the audits and guard firings of AUDITS.
    """
    from pymatgen.core import Structure

    settings, store, launchpad, db = clients
    path = screen_file(tmp_path, dopants=["Se", "O", "F"], seeds=[1, 2])
    submit_screen(path, store, launchpad, db, settings.DOCS_COLLECTION)
    runs = {c["candidate"]: c["run_id"] for c in db["haml_screen_candidates"].find()}
    rng = np.random.default_rng(3)
    base = _structure()

    def displaced(sigma: float) -> Structure:
        moved = base.cart_coords + rng.normal(0, sigma, (len(base), 3))
        return Structure(base.lattice, base.species, moved, coords_are_cartesian=True)

    finals = {"lj_lpsc_se_s1": base.copy(), "lj_lpsc_o_s1": displaced(0.15),
              "lj_lpsc_f_s1": displaced(0.4)}
    costs = {"lj_lpsc_se_s1": (10.0, 1.0), "lj_lpsc_o_s1": (10.0, 4.0),
             "lj_lpsc_f_s1": (10.0, 20.0)}
    cycles = {}
    for name, final in finals.items():
        cycles[name] = stored_runs.cycles(runs[name], 3, *costs[name],
                                          **_audit_fields(**AUDITS[name]))
        stored_runs.run(runs[name], base, final, cycles[name])
    name = "lj_lpsc_se_s2"
    cycles[name] = stored_runs.cycles(runs[name], 2, 10, 1, **_audit_fields(**AUDITS[name]))
    stored_runs.run(runs[name], base, None, cycles[name], finished=False)
    return clients, runs, base, finals, cycles


def _structure():
    from haml_flows.builders.doping import doped_li6ps5cl

    return doped_li6ps5cl(dopant="Se", concentration=0.25)


def test_rank_keys_order_known_values(stored_screen):
    (settings, _, launchpad, db), runs, base, finals, cycles = stored_screen
    rows = candidate_rows(db, launchpad, "lj_screen", settings.DOCS_COLLECTION)
    by_name = {r.candidate: r for r in rows}
    assert len(rows) == 6
    assert by_name["lj_lpsc_se_s1"].similarity == 1.0
    assert by_name["lj_lpsc_se_s1"].bond_change_total == 0
    for name in ("lj_lpsc_o_s1", "lj_lpsc_f_s1"):
        row = by_name[name]
        assert row.similarity == pytest.approx(structure_similarity(base, finals[name]))
        expected = {k: v - bond_counts(base)[k] for k, v in bond_counts(finals[name]).items()}
        assert row.bond_change == expected
        assert row.bond_change_total == sum(abs(v) for v in expected.values())
        cost = cost_summary(cycles[name])
        assert row.haml_cpu_h_per_ps == pytest.approx(cost["haml_cpu_h_per_ps"])
        assert row.aimd_cpu_h_per_ps == pytest.approx(cost["aimd_cpu_h_per_ps"])
        assert row.speedup == pytest.approx(cost["speedup"])
        assert row.cycles == 3 and row.simulated_ps == pytest.approx(0.36) and row.finished

    running = by_name["lj_lpsc_se_s2"]
    assert not running.finished and running.cycles == 2 and running.similarity is None
    assert running.speedup is not None  # cost is known while a run goes on
    assert by_name["lj_lpsc_o_s2"].cycles == 0 and by_name["lj_lpsc_o_s2"].speedup is None

    order = ["lj_lpsc_se_s1", "lj_lpsc_o_s1", "lj_lpsc_f_s1"]
    for key in ("similarity", "bonds"):
        ranked = rank_rows(rows, key)
        assert [r.candidate for r in ranked[:3]] == order
        assert [r.rank for r in ranked] == [1, 2, 3, None, None, None]
        assert [r.candidate for r in rank_rows(rows, key, reverse=True)[:3]] == order[::-1]
    cost_order = [r.candidate for r in rank_rows(rows, "cost")]
    assert cost_order[:4] == ["lj_lpsc_se_s1", "lj_lpsc_se_s2", "lj_lpsc_o_s1", "lj_lpsc_f_s1"]
    assert [r.candidate for r in rank_rows(rows, "speedup")][:4] == cost_order[:4]

    # results of finished runs are kept and reused
    assert db[RESULTS].count_documents({}) == 3
    db[RESULTS].update_one({"_id": runs["lj_lpsc_f_s1"]}, {"$set": {"similarity": 0.5}})
    again = {r.candidate: r for r in candidate_rows(db, launchpad, "lj_screen",
                                                    settings.DOCS_COLLECTION)}
    assert again["lj_lpsc_f_s1"].similarity == 0.5


def test_cost_from_totals_is_cost_summary(stored_screen):
    (settings, _, _, db), runs, _, _, cycles = stored_screen
    totals = cycle_totals(db, settings.DOCS_COLLECTION, [runs["lj_lpsc_f_s1"]])
    summary = cost_summary(cycles["lj_lpsc_f_s1"])
    for key, value in cost_from_totals(totals[runs["lj_lpsc_f_s1"]].totals).items():
        assert value == pytest.approx(summary[key])


def test_guard_kinds_name_the_collapse_guards():
    assert GUARD_KINDS == {
        "temperature_band": TemperatureBandHandler.__name__,
        "close_contact": CloseContactHandler.__name__,
        "bad_forces": BadForcesHandler.__name__,
        "overheating": OverheatingHandler.__name__,
    }


def test_audit_columns_sum_the_cycle_docs(stored_screen, summed_audit):
    (settings, _, launchpad, db), runs, _, _, cycles = stored_screen
    rows = {r.candidate: r for r in candidate_rows(db, launchpad, "lj_screen",
                                                   settings.DOCS_COLLECTION)}
    for name, docs in cycles.items():
        assert rows[name].audit.model_dump() == summed_audit(docs), name
    # the same numbers written out by hand for one run
    o = rows["lj_lpsc_o_s1"].audit
    assert (o.audited_cycles, o.audits_failed) == (2, 1)
    assert (o.audit_force_rmse_max, o.audit_force_rmse_last, o.audit_last_cycle) == (0.4, 0.1, 2)
    assert o.guards == {"temperature_band": 1, "close_contact": 2, "bad_forces": 0,
                        "overheating": 0, "other": 0}
    assert (o.cycles_guarded, o.training_fallbacks, o.aimd_corrections) == (2, 1, 3)
    assert rows["lj_lpsc_f_s1"].audit.guards["other"] == 1
    assert rows["lj_lpsc_se_s1"].audit.audit_force_rmse_max is None
    assert rows["lj_lpsc_o_s2"].audit is None  # no cycle yet

    # kept with the finished run's result and read back from there
    cached = db[RESULTS].find_one({"_id": runs["lj_lpsc_o_s1"]})
    assert cached["audit"] == o.model_dump()
    db[RESULTS].update_one({"_id": runs["lj_lpsc_o_s1"]}, {"$set": {"audit.audits_failed": 7}})
    again = {r.candidate: r for r in candidate_rows(db, launchpad, "lj_screen",
                                                    settings.DOCS_COLLECTION)}
    assert again["lj_lpsc_o_s1"].audit.audits_failed == 7
    # a result kept before audits were gets them summed and stored
    db[RESULTS].update_one({"_id": runs["lj_lpsc_o_s1"]}, {"$unset": {"audit": ""}})
    again = {r.candidate: r for r in candidate_rows(db, launchpad, "lj_screen",
                                                    settings.DOCS_COLLECTION)}
    assert again["lj_lpsc_o_s1"].audit == o
    assert db[RESULTS].find_one({"_id": runs["lj_lpsc_o_s1"]})["audit"] == o.model_dump()


def test_unknown_rank_key():
    with pytest.raises(RankKeyError, match=r"unknown rank key 'size'; allowed: \['bonds', "):
        check_rank_key("size")


def test_results_cli_exports_csv_and_json(stored_screen, tmp_path, monkeypatch):
    (settings, *_), *_ = stored_screen
    monkeypatch.setenv("HAML_DATABASE", settings.DATABASE)
    out_csv, out_json = tmp_path / "out" / "rank.csv", tmp_path / "out" / "rank.json"
    result = runner.invoke(app, ["results", "--screen", "lj_screen", "--rank", "bonds",
                                 "--csv", str(out_csv), "--json", str(out_json)])
    assert result.exit_code == 0, result.output
    assert "ranked by bonds" in result.output and "lj_lpsc_f_s1" in result.output
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["candidate"] for r in rows[:3]] == ["lj_lpsc_se_s1", "lj_lpsc_o_s1", "lj_lpsc_f_s1"]
    assert rows[0]["rank"] == "1" and rows[0]["similarity"] == "1.0" and rows[5]["rank"] == ""
    assert "bond_change_P-S" in rows[0] and rows[0]["bond_change_P-S"] == "0"
    by_name = {r["candidate"]: r for r in rows}
    o = by_name["lj_lpsc_o_s1"]
    assert (o["audited_cycles"], o["audits_failed"], o["audit_force_rmse_max"],
            o["audit_force_rmse_last"], o["audit_last_cycle"]) == ("2", "1", "0.4", "0.1", "2")
    assert (o["guard_temperature_band"], o["guard_close_contact"], o["guard_bad_forces"],
            o["guard_overheating"], o["guard_other"]) == ("1", "2", "0", "0", "0")
    assert (o["cycles_guarded"], o["training_fallbacks"], o["aimd_corrections"]) == (
        "2", "1", "3")
    assert by_name["lj_lpsc_se_s1"]["audit_force_rmse_max"] == ""  # never audited
    assert by_name["lj_lpsc_o_s2"]["audited_cycles"] == ""  # no cycle
    assert by_name["lj_lpsc_f_s1"]["guard_other"] == "1"
    data = json.loads(out_json.read_text())
    assert data["rank_key"] == "bonds" and data["order"] == "ascending"
    assert [r["candidate"] for r in data["rows"]] == [r["candidate"] for r in rows]
    assert data["rows"][0]["dopant"] == "Se" and data["rows"][0]["concentration"] == 0.25
    audit = {r["candidate"]: r["audit"] for r in data["rows"]}["lj_lpsc_o_s1"]
    assert audit["audit_force_rmse_max"] == 0.4 and audit["guards"]["close_contact"] == 2
    # the printed table: largest/last audited RMSE, failed audits, guards by kind
    line = next(x for x in result.output.splitlines() if "lj_lpsc_o_s1" in x)
    assert "0.400/0.100" in line and "1 of 2" in line
    assert "band 1, contact 2" in result.output and "fallback 1" in result.output
    assert not list(out_csv.parent.glob(".*.tmp"))

    bad = runner.invoke(app, ["results", "--screen", "lj_screen", "--csv", "x.txt"])
    assert bad.exit_code == 2 and "must end in .csv" in bad.output
    missing = runner.invoke(app, ["results", "--screen", "nope"])
    assert missing.exit_code == 1 and "no screen named 'nope'" in missing.output
