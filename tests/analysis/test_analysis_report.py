"""A real small run (lj_small spec) streamed into a report, a comparison and the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from haml_flows.analysis import timeline as timeline_module
from haml_flows.analysis.report import FIGURES, analyze_run, build_report, compare_runs
from haml_flows.analysis.timeline import run_timeline
from haml_flows.queries import cycle_docs
from haml_flows.runner import prepare_run, run_prepared_locally

DATA = Path(__file__).parents[1] / "data"


def _run(job_store, tmp_path: Path, seed: int) -> str:
    data = yaml.safe_load((DATA / "lj_small.yaml").read_text())
    data["reference"]["seed"] = seed
    data["audit"] = {"enabled": True, "frames": 3}  # the report draws the audits
    spec = tmp_path / f"spec{seed}.yaml"
    spec.write_text(yaml.safe_dump(data))
    run = prepare_run(spec)
    run_prepared_locally(run, job_store, tmp_path / f"work{seed}")
    return run.run_id


def test_report_of_a_real_run(job_store, haml_settings, tmp_path, monkeypatch):
    import matplotlib.image as mpimg

    run_id = _run(job_store, tmp_path, seed=7)
    docs = cycle_docs(job_store, run_id)

    # the timeline: time-ordered, absolute times, one segment loaded at a time
    loads = []
    real = timeline_module.trajectory
    monkeypatch.setattr(
        timeline_module, "trajectory", lambda s, u: loads.append(u) or real(s, u)
    )
    stream = run_timeline(job_store, run_id)
    first = next(stream)
    assert len(loads) == 1 and first.time_fs == 0.0 and first.stage == "aimd"
    frames = [first, *stream]
    assert len(loads) == 2 * len(docs)
    times = [f.time_fs for f in frames]
    assert np.all(np.diff(times) > 0)
    assert times[-1] == pytest.approx(docs[-1].cumulative_fs)
    for doc in docs:  # temperatures at the hand-overs match the CycleDocs
        start = doc.cumulative_fs - doc.aimd_fs - doc.mlpmd_fs
        at = {f.time_fs: f for f in frames}
        assert at[start].temperature == pytest.approx(doc.temperature_aimd_start)
        assert at[start + doc.aimd_fs].temperature == pytest.approx(doc.temperature_aimd_end)
    monkeypatch.setattr(timeline_module, "trajectory", real)

    out = tmp_path / "report"
    summary = build_report(job_store, run_id, out)
    page = (out / "index.html").read_text()
    referenced = set(re.findall(r'<img src="([^"]+)"', page))
    assert referenced == set(FIGURES.values()) == set(summary["figures"].values())
    for name in referenced:
        image = mpimg.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    # the page says what each figure is and with which parameters the run ran
    import html

    from haml_flows.analysis.report import CAPTIONS

    assert all(html.escape(CAPTIONS[key]) in page for key in summary["figures"])
    assert "Run parameters" in page and "γ_break" in page and "haml-flows version" in page
    assert summary["parameters"]["temperature (K)"] == 300
    series = json.loads((out / "series.json").read_text())
    assert len(series["temperature"]["T"]) == len(series["temperature"]["time_ps"]) > 0
    assert len(series["msd"]["msd_A2"]) == len(series["msd"]["time_ps"])
    assert series["cycles"]["training_set_size"] == [d.training_set_size for d in docs]
    assert on_disk["cycles"] == len(docs)
    # every cycle's audit, as its CycleDoc has it; the report names the guards that fired
    assert {int(k): v for k, v in on_disk["audit"]["cycle_force_rmse"].items()} == {
        d.cycle: pytest.approx(d.audit_force_rmse) for d in docs
    }
    assert "audited force RMSE" in page and "guards that stopped MLP-MD" in page
    assert on_disk["simulated_ps"] == pytest.approx(docs[-1].cumulative_ps)
    cost = on_disk["cost"]
    for doc in docs:  # the audit's cost is carried into the CycleDoc and counted
        assert doc.audit_cost.cpu_seconds == pytest.approx(
            job_store.get_output(doc.audit_job)["cost"]["cpu_seconds"])
    assert cost["cpu_s"]["audit"] == pytest.approx(sum(d.audit_cost.cpu_seconds for d in docs))
    assert cost["haml_cpu_s_per_ps"] == pytest.approx(
        sum(d.aimd_cost.cpu_seconds + d.training_cost.cpu_seconds
            + d.mlpmd_cost.cpu_seconds + d.audit_cost.cpu_seconds for d in docs)
        / docs[-1].cumulative_ps
    )
    assert cost["speedup"] == pytest.approx(
        cost["aimd_cpu_s_per_ps"] / cost["haml_cpu_s_per_ps"]
    )
    assert 0.0 <= on_disk["similarity"]["similarity"] < 1.0
    assert on_disk["bonds"]["initial"]["P-S"] == 8  # two PS4 units at the start
    assert on_disk["n_frames"] == len(frames)
    assert on_disk["msd"]["n_ions"] + on_disk["msd"]["n_excluded"] == sum(
        1 for s in frames[0].symbols if s == "Li")
    assert on_disk["msd"]["n_ions"] > 0 and not on_disk["msd"]["diffusive"]
    assert "Li diffusion" in page and "not reported: too short" in page and "speed-up" in page

    # chosen RDF times and pairs
    from haml_flows.analysis.report import AnalysisOptions

    result = analyze_run(
        job_store, run_id, AnalysisOptions(rdf_pairs=[("P", "S")], rdf_times_ps=[0.0, 0.015])
    )
    assert result.rdf.pairs == ["P-S"]
    peaks = [fr.first_peak["P-S"] for fr in result.rdf.frames]
    assert peaks[0] == pytest.approx(2.05, abs=0.1)

    # a second run and the comparison
    other = _run(job_store, tmp_path, seed=11)
    table = compare_runs(job_store, [run_id, other], tmp_path / "cmp")
    assert table["runs"] == [run_id, other]
    assert mpimg.imread(tmp_path / "cmp" / "compare.png").ndim == 3
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["runs"] == [run_id, other]

    # the commands
    from haml_flows.cli import _common
    from haml_flows.cli import report as cli

    monkeypatch.setenv("HAML_DATABASE", haml_settings.DATABASE)
    from rich.console import Console

    monkeypatch.setattr(_common, "console", Console(width=200))
    runner = CliRunner()
    res = runner.invoke(cli.report_app, ["report", run_id, "-o", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "index.html").exists() and "speed-up" in res.output
    res = runner.invoke(cli.report_app, ["compare", run_id, other, "-o", str(tmp_path / "c2")])
    assert res.exit_code == 0, res.output
    assert "similarity" in res.output and (tmp_path / "c2" / "compare.png").exists()
    res = runner.invoke(cli.report_app, ["report", "no-such-run", "-o", str(tmp_path / "x")])
    assert res.exit_code == 1

    # arguments that cannot apply are refused with what the run has, not drawn empty
    res = runner.invoke(cli.report_app, ["report", run_id, "-o", str(tmp_path / "y"),
                                         "--rdf-pair", "Li-Se"])
    assert res.exit_code == 2, res.output
    assert "RDF pair Li-Se: not in run" in " ".join(res.output.split())
    res = runner.invoke(cli.report_app, ["report", run_id, "-o", str(tmp_path / "y"),
                                         "--rdf-time", "999"])
    assert res.exit_code == 2 and "RDF time 999 ps: outside the run" in " ".join(
        res.output.split())
    existing = tmp_path / "a_file.txt"
    existing.write_text("keep me")
    res = runner.invoke(cli.report_app, ["report", run_id, "-o", str(existing)])
    assert res.exit_code == 2 and "a file is there" in res.output
    assert existing.read_text() == "keep me" and "Traceback" not in res.output
