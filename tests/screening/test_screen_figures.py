"""The paper's screen comparison drawn from stored runs: `haml results --figures DIR`.

Each candidate's structure is the one its spec builds; its trajectories (an
AIMD and an MLP-MD segment per cycle, a random walk of the atoms, faster for
some dopants than others) are stored as the engines store them, through the
package's schemas and the JobStore. The numbers behind the figures are checked
against bonds, products and similarity recomputed here from those structures.
"""

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from haml_flows.analysis.bonds import bond_counts
from haml_flows.analysis.products import find_products
from haml_flows.analysis.screen_figures import (
    FIGURES,
    PAPER_BONDS,
    PAPER_PRODUCTS,
    analyze_screen,
)
from haml_flows.analysis.similarity import structure_similarity
from haml_flows.cli.main import app
from haml_flows.queries import run_doc, run_summary
from haml_flows.screening.submit import submit_screen

runner = CliRunner()

AIMD_STEPS, MLPMD_STEPS, SAVE_INTERVAL = 4, 20, 5
#: candidate -> (cycles stored, finished, displacement per step in Angstrom)
PLAN = {
    "lj_lpsc_undoped": (3, True, 0.01),
    "lj_lpsc_f": (3, True, 0.12),
    "lj_lpsc_o": (2, False, 0.06),
    "lj_lpsc_se": (3, True, 0.03),
}


def _walk(start, n_frames: int, sigma: float, rng) -> list:
    """``start`` and ``n_frames - 1`` frames, each displaced from the one before."""
    from pymatgen.core import Structure

    frames, coords = [start], start.cart_coords
    for _ in range(n_frames - 1):
        coords = coords + rng.normal(0, sigma, coords.shape)
        frames.append(Structure(start.lattice, start.species, coords, coords_are_cartesian=True))
    return frames


def _frame_times_fs(n_cycles: int) -> list[float]:
    """Absolute times of the frames the timeline yields (hand-overs once)."""
    cycle_fs = AIMD_STEPS + 0.5 * MLPMD_STEPS
    times = [0.0]
    for c in range(n_cycles):
        t0 = c * cycle_fs
        times += [t0 + i for i in range(1, AIMD_STEPS + 1)]
        times += [t0 + AIMD_STEPS + 0.5 * s
                  for s in range(SAVE_INTERVAL, MLPMD_STEPS + 1, SAVE_INTERVAL)]
    return times


@pytest.fixture
def drawn_screen(tmp_path, screen_file, clients, stored_runs):
    """Undoped, F, O and Se candidates; O unfinished after two cycles."""
    from haml_flows.spec import RunSpec
    from haml_flows.systems import build_system

    settings, store, launchpad, db = clients
    path = screen_file(tmp_path, dopants=["Se", "O", "F"], seeds=[1], include_undoped=True)
    submit_screen(path, store, launchpad, db, settings.DOCS_COLLECTION)
    rng = np.random.default_rng(11)
    frames = {}
    for doc in db["haml_screen_candidates"].find():
        name, run_id = doc["candidate"], doc["run_id"]
        n_cycles, finished, sigma = PLAN[name]
        start = build_system(RunSpec.model_validate(doc["spec"]).system)
        per_cycle = AIMD_STEPS + MLPMD_STEPS // SAVE_INTERVAL
        walk = _walk(start, 1 + per_cycle * n_cycles, sigma, rng)
        jobs = [stored_runs.segments(walk[c * per_cycle: (c + 1) * per_cycle + 1],
                                     AIMD_STEPS, MLPMD_STEPS, SAVE_INTERVAL)
                for c in range(n_cycles)]
        cycles = stored_runs.cycles(
            run_id, n_cycles, 10.0, 2.0, aimd_steps=AIMD_STEPS, mlpmd_steps=MLPMD_STEPS,
            aimd_job=[a for a, _ in jobs], mlpmd_job=[m for _, m in jobs])
        stored_runs.run(run_id, start, walk[-1], cycles, finished=finished)
        frames[name] = walk
    return clients, frames


def _image_is_a_figure(path) -> None:
    import matplotlib.image as mpimg

    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 400, image.shape
    pixels = image[..., :3].reshape(-1, 3)
    assert pixels.std() > 0.05  # not blank
    assert len(np.unique(np.round(pixels, 2), axis=0)) > 20  # lines, bars, text in colour


def test_results_draws_the_screen_from_the_stored_runs(drawn_screen, tmp_path, monkeypatch):
    (settings, store, _, db), frames = drawn_screen
    monkeypatch.setenv("HAML_DATABASE", settings.DATABASE)
    out = tmp_path / "figures"
    result = runner.invoke(app, ["results", "--screen", "lj_screen", "--figures", str(out),
                                 "--csv", str(tmp_path / "ranked.csv")])
    assert result.exit_code == 0, result.output
    assert "unfinished, drawn at their last stored frame (hatched): O" in result.output
    for name in FIGURES.values():
        _image_is_a_figure(out / name)

    series = json.loads((out / "series.json").read_text())
    by_name = {c["candidate"]: c for c in series["candidates"]}
    # the screen's order (undoped first, then by dopant), short labels
    assert [c["label"] for c in series["candidates"]] == ["undoped", "F", "O", "Se"]
    assert series["bond_pairs"][:5] == PAPER_BONDS and series["products"][:6] == PAPER_PRODUCTS
    assert series["left_out"] == []
    runs = {c["candidate"]: c["run_id"] for c in db["haml_screen_candidates"].find()}
    ranked = {r["candidate"]: r for r in csv.DictReader((tmp_path / "ranked.csv").open())}
    for name, (n_cycles, finished, _) in PLAN.items():
        drawn = by_name[name]
        start = run_doc(store, runs[name]).structure
        end = run_summary(store, runs[name]).structure if finished else frames[name][-1]
        assert drawn["finished"] is finished
        assert drawn["end"] == ("final structure" if finished else "last stored frame")
        before, after = bond_counts(start), bond_counts(end)
        assert drawn["bond_change"] == {k: after[k] - before[k] for k in before}
        assert drawn["similarity"] == pytest.approx(structure_similarity(start, end), abs=1e-12)
        first, last = find_products(start), find_products(end)
        assert drawn["products_formed"] == {k: last[k] - first[k] for k in first}
        if finished:  # the bars are the ranking's columns
            assert float(ranked[name]["similarity"]) == pytest.approx(drawn["similarity"])
            for pair, change in drawn["bond_change"].items():
                assert int(ranked[name][f"bond_change_{pair}"]) == change
        # Fig. 4a: the CycleDocs' times
        cycle_fs = AIMD_STEPS + 0.5 * MLPMD_STEPS
        assert drawn["cycles"]["cycle"] == list(range(1, n_cycles + 1))
        assert drawn["cycles"]["cumulative_ps"] == pytest.approx(
            [cycle_fs * c / 1000 for c in range(1, n_cycles + 1)])
        assert drawn["cycles"]["aimd_fs"] == [AIMD_STEPS] * n_cycles
        # the bond series: every stored frame (fewer than max_samples), in time order
        assert drawn["samples_time_ps"] == pytest.approx(
            [t / 1000 for t in _frame_times_fs(n_cycles)])
        counted = [bond_counts(f) for f in frames[name]]
        assert len(counted) == len(drawn["samples_time_ps"])
        for pair in series["bond_pairs"]:
            assert drawn["bond_series"][pair] == [c[pair] for c in counted], (name, pair)
    # the doped candidates really differ: F moved most, undoped least
    assert by_name["lj_lpsc_f"]["similarity"] < by_name["lj_lpsc_undoped"]["similarity"]
    assert any(by_name["lj_lpsc_f"]["bond_change"].values())

    # the products table, as CSV and markdown
    rows = {r["candidate"]: r for r in csv.DictReader((out / "products.csv").open())}
    assert set(rows) == set(PLAN)
    for name, drawn in by_name.items():
        for product in PAPER_PRODUCTS:
            assert int(rows[name][f"{product}_start"]) == drawn["products_start"][product]
            assert int(rows[name][f"{product}_end"]) == drawn["products_end"][product]
            assert int(rows[name][f"{product}_formed"]) == drawn["products_formed"][product]
    assert rows["lj_lpsc_o"]["finished"] == "False"
    markdown = (out / "products.md").read_text().splitlines()
    assert [c.strip() for c in markdown[2].strip("| ").split("|")][3:9] == PAPER_PRODUCTS
    body = [line for line in markdown[4:] if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in body] == ["| undoped", "| F", "| O", "| Se"]
    assert "unfinished" in body[2] and "unfinished" not in body[1]


def test_candidates_without_cycles_are_left_out_and_named(drawn_screen, tmp_path):
    (_, store, _, db), _ = drawn_screen
    docs = list(db["haml_screen_candidates"].find().sort("dopant", 1))
    fields = ("candidate", "run_id", "dopant", "concentration", "seed")
    candidates = [SimpleNamespace(**{k: d[k] for k in fields}, state="READY", finished=False)
                  for d in docs]
    candidates.append(SimpleNamespace(candidate="lj_lpsc_x", run_id="never-ran", dopant="Se",
                                      concentration=0.5, seed=1, state="READY",
                                      finished=False))
    analysis = analyze_screen(store, "lj_screen", candidates)
    assert [c.candidate for c in analysis.candidates] == [d["candidate"] for d in docs]
    assert analysis.left_out == [{"candidate": "lj_lpsc_x", "run_id": "never-ran",
                                  "state": "READY", "reason": "no cycle stored yet"}]
    # concentrations differ now: the labels say them
    assert {c.label for c in analysis.candidates} == {"undoped", "F 0.25", "O 0.25", "Se 0.25"}


def test_figures_that_cannot_be_drawn_are_refused(tmp_path, screen_file, clients, monkeypatch):
    settings, store, launchpad, db = clients
    submit_screen(screen_file(tmp_path), store, launchpad, db, settings.DOCS_COLLECTION)
    monkeypatch.setenv("HAML_DATABASE", settings.DATABASE)
    a_file = tmp_path / "figures.png"
    a_file.write_text("")
    result = runner.invoke(app, ["results", "--screen", "lj_screen", "--figures", str(a_file)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: --figures {a_file}: a file is there")
    result = runner.invoke(app, ["results", "--screen", "lj_screen", "--figures",
                                 str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.startswith("error: --figures: no candidate of screen 'lj_screen' "
                                    "has a stored cycle yet")
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_screen_run_by_a_worker_is_ranked_audited_and_drawn(
    tmp_path, screen_file, clients, monkeypatch, summed_audit
):
    """Undoped, F and O Li6PS5Cl through FireWorks on the Lennard-Jones reference, two
    audited cycles each with the temperature-band guard on, then `haml results`."""
    import yaml
    from fireworks import FWorker
    from fireworks.core.rocket_launcher import rapidfire

    from haml_flows.analysis.timeline import run_timeline
    from haml_flows.queries import cycle_docs

    settings, store, launchpad, db = clients
    path = screen_file(tmp_path, dopants=["F", "O"], seeds=[1], include_undoped=True)
    base = yaml.safe_load((tmp_path / "base.yaml").read_text())
    base["stop"]["max_cycles"] = 2
    base["audit"] = {"enabled": True, "frames": 2, "selected_frames": 0,
                     "max_force_rmse": 0.05}
    # the Lennard-Jones reference runs far hotter than 50 K: the band guard fires
    base["mlpmd"].update(temperature=50.0, temperature_band=0.2, temperature_window_fs=4.0)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    submit_screen(path, store, launchpad, db, settings.DOCS_COLLECTION)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    rapidfire(launchpad, FWorker(query={"spec.haml_screen": "lj_screen"}), m_dir=str(work),
              nlaunches=0, sleep_time=0, max_loops=1)

    monkeypatch.setenv("HAML_DATABASE", settings.DATABASE)
    out = tmp_path / "figures"
    result = runner.invoke(app, ["results", "--screen", "lj_screen", "--figures", str(out),
                                 "--csv", str(tmp_path / "r.csv"),
                                 "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    for name in FIGURES.values():
        _image_is_a_figure(out / name)

    runs = {c["candidate"]: c["run_id"] for c in db["haml_screen_candidates"].find()}
    assert set(runs) == {"lj_lpsc_undoped", "lj_lpsc_f", "lj_lpsc_o"}
    ranked = {r["candidate"]: r for r in json.loads((tmp_path / "r.json").read_text())["rows"]}
    table = {r["candidate"]: r for r in csv.DictReader((tmp_path / "r.csv").open())}
    drawn = {c["candidate"]: c for c in json.loads((out / "series.json").read_text())
             ["candidates"]}
    fired = 0
    for name, run_id in runs.items():
        docs = cycle_docs(store, run_id)
        assert len(docs) == 2 and ranked[name]["state"] == "COMPLETED"
        expected = summed_audit(docs)
        assert expected["audited_cycles"] == 2  # every cycle was audited
        assert ranked[name]["audit"] == expected
        assert table[name]["audits_failed"] == str(expected["audits_failed"])
        assert table[name]["guard_temperature_band"] == str(
            expected["guards"]["temperature_band"])
        fired += expected["guards"]["temperature_band"]

        start = run_doc(store, run_id).structure
        end = run_summary(store, run_id).structure
        before, after = bond_counts(start), bond_counts(end)
        assert drawn[name]["bond_change"] == {k: after[k] - before[k] for k in before}
        assert drawn[name]["similarity"] == pytest.approx(structure_similarity(start, end))
        assert drawn[name]["similarity"] == pytest.approx(ranked[name]["similarity"])
        first, last = find_products(start), find_products(end)
        assert drawn[name]["products_end"] == last and drawn[name]["products_start"] == first
        frames = list(run_timeline(store, run_id))
        assert drawn[name]["samples_time_ps"][-1] == pytest.approx(frames[-1].time_ps)
        assert drawn[name]["samples_time_ps"][-1] == pytest.approx(docs[-1].cumulative_ps)
        for pair in PAPER_BONDS:
            assert drawn[name]["bond_series"][pair][0] == bond_counts(frames[0])[pair]
            assert drawn[name]["bond_series"][pair][-1] == bond_counts(frames[-1])[pair]
    assert fired > 0, "the band guard was meant to fire in this screen"
