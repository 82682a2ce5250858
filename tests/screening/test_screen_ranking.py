"""Ranking a screen whose runs are stored with known values.

The stored documents are made through the package's schemas (RunDoc,
CycleDoc, RunSummaryDoc) and written through the JobStore like a job's
output, so the queries see exactly what a finished run leaves behind.
"""

import csv
import json
import uuid

import numpy as np
import pytest
from typer.testing import CliRunner

from haml_flows.analysis.bonds import bond_counts
from haml_flows.analysis.cost import cost_summary
from haml_flows.analysis.similarity import structure_similarity
from haml_flows.cli.main import app
from haml_flows.schemas import CycleDoc, RunDoc, RunSummaryDoc, StageCost
from haml_flows.screening.collections import RESULTS
from haml_flows.screening.ranking import (
    RankKeyError,
    candidate_rows,
    check_rank_key,
    cost_from_totals,
    rank_rows,
)
from haml_flows.screening.status import cycle_totals
from haml_flows.screening.submit import submit_screen

runner = CliRunner()


def _store_output(store, output, name: str) -> None:
    store.update(
        {"uuid": str(uuid.uuid4()), "index": 1, "output": output, "name": name,
         "metadata": {}, "hosts": []},
        key=["uuid", "index"],
    )


def _cycles(run_id: str, n: int, aimd_cpu: float, mlpmd_cpu: float) -> list[CycleDoc]:
    docs, total = [], 0.0
    for cycle in range(1, n + 1):
        total += 20.0 + 100.0
        docs.append(CycleDoc(
            run_id=run_id, cycle=cycle, aimd_steps=20, aimd_fs=20.0, mlpmd_steps=200,
            mlpmd_fs=100.0, gamma_at_stop=11.0, gamma_max=11.0, stop_reason="gamma_break",
            training_set_size=21 * cycle, energy_rmse=0.001, force_rmse=0.1,
            aimd_cost=StageCost(wall_seconds=aimd_cpu, cpu_seconds=aimd_cpu),
            training_cost=StageCost(wall_seconds=5.0, cpu_seconds=5.0),
            mlpmd_cost=StageCost(wall_seconds=mlpmd_cpu, cpu_seconds=mlpmd_cpu),
            mlpmd_gamma_seconds=0.1, cumulative_fs=total, temperature_aimd_start=300,
            temperature_aimd_end=300, temperature_mlpmd_start=300, temperature_mlpmd_end=300,
            aimd_job="a", training_job="t", mlpmd_job="m",
        ))
    return docs


def _store_run(store, run_id, structure, final, cycles, finished=True):
    _store_output(store, RunDoc(
        run_id=run_id, name=run_id, spec={}, formula=structure.composition.reduced_formula,
        n_atoms=len(structure), initial_structure=structure, structure=structure,
        optimization_cost=StageCost(wall_seconds=1.0, cpu_seconds=1.0),
    ), "start run")
    for doc in cycles:
        _store_output(store, doc, f"record {doc.cycle}")
    if finished:
        _store_output(store, RunSummaryDoc(
            run_id=run_id, cycles=len(cycles), simulated_fs=cycles[-1].cumulative_fs,
            stop_reason="max_cycles", structure=final,
        ), "haml cycle")


@pytest.fixture
def stored_screen(tmp_path, screen_file, clients):
    """Se: unchanged, cheapest; O: small displacement; F: large displacement, dearest.

    A fourth candidate (Se, seed 2) has two cycles but no summary yet.
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
        cycles[name] = _cycles(runs[name], 3, *costs[name])
        _store_run(store, runs[name], base, final, cycles[name])
    _store_run(store, runs["lj_lpsc_se_s2"], base, None, _cycles(runs["lj_lpsc_se_s2"], 2, 10, 1),
               finished=False)
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
    for key, value in cost_from_totals(totals[runs["lj_lpsc_f_s1"]]).items():
        assert value == pytest.approx(summary[key])


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
    data = json.loads(out_json.read_text())
    assert data["rank_key"] == "bonds" and data["order"] == "ascending"
    assert [r["candidate"] for r in data["rows"]] == [r["candidate"] for r in rows]
    assert data["rows"][0]["dopant"] == "Se" and data["rows"][0]["concentration"] == 0.25
    assert not list(out_csv.parent.glob(".*.tmp"))

    bad = runner.invoke(app, ["results", "--screen", "lj_screen", "--csv", "x.txt"])
    assert bad.exit_code == 2 and "must end in .csv" in bad.output
    missing = runner.invoke(app, ["results", "--screen", "nope"])
    assert missing.exit_code == 1 and "no screen named 'nope'" in missing.output
