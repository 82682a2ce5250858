"""bench/haml_vs_aimd.py: cumulative curve with continuation cycles, start check."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from pymatgen.core import Lattice, Structure


@pytest.fixture(scope="module")
def bench(load_bench_script):
    return load_bench_script("haml_vs_aimd")


def _cost(cpu):
    return SimpleNamespace(cpu_seconds=cpu, wall_seconds=cpu)


def _doc(cycle, aimd_fs, aimd_cpu, train_cpu, mlpmd_cpu, cumulative_fs, **extra):
    return SimpleNamespace(
        cycle=cycle, aimd_fs=aimd_fs, aimd_cost=_cost(aimd_cpu),
        training_cost=_cost(train_cpu), mlpmd_cost=_cost(mlpmd_cpu),
        cumulative_fs=cumulative_fs, **extra,
    )


def test_curve_with_continued_cycle(bench):
    docs = [
        _doc(1, 20.0, 72.0, 36.0, 36.0, 1020.0),
        _doc(2, 0.0, 0.0, 0.0, 36.0, 2020.0, continued=True),
    ]
    first, second = bench.cumulative_curve(docs)
    # AIMD per ps only from the cycle with AIMD: 72 s / 0.02 ps
    assert first["aimd"] == pytest.approx(72 / 3600 / 0.02)
    assert second["aimd"] == pytest.approx(first["aimd"])
    assert second["haml"] == pytest.approx(180 / 3600 / 2.02)
    assert second["speedup"] == pytest.approx(second["aimd"] / second["haml"])
    assert bench.continued_cycles(docs) == 1
    assert bench.continued_cycles(docs[:1]) == 0  # CycleDoc without the field


def test_curve_without_aimd_time_has_no_speedup(bench):
    (point,) = bench.cumulative_curve([_doc(1, 0.0, 0.0, 0.0, 1.0, 0.0)])
    assert point["aimd"] is None and point["haml"] is None
    assert point["speedup"] is None


def test_max_displacement_minimum_image(bench):
    lattice = Lattice.cubic(10.0)
    a = Structure(lattice, ["Li", "S"], [[0.0, 0, 0], [0.5, 0.5, 0.5]])
    b = Structure(lattice, ["Li", "S"], [[0.99, 0, 0], [0.5, 0.5, 0.52]])
    assert bench.max_displacement(a, b) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        bench.max_displacement(a, Structure(lattice, ["S", "Li"], b.frac_coords))


def test_run_end(bench):
    docs = [object(), object()]
    assert bench.run_end({"error": "aimd 3: boom"}, docs, None) == (
        "failed in cycle 3: aimd 3: boom"
    )
    assert bench.run_end({"error": None}, docs, SimpleNamespace(stop_reason="max_cycles")) == (
        "max_cycles"
    )


def test_rows_of_failed_runs(bench):
    summary = {
        "cycles": 0, "total_ps": 0.0, "aimd_ps": 0.0, "mlpmd_ps": 0.0,
        "cpu_s": {"aimd": 0.0, "training": 0.0, "mlpmd": 0.0, "haml": 0.0},
        "haml_cpu_h_per_ps": None, "aimd_cpu_h_per_ps": None, "speedup": None,
    }
    row = {
        "system": {"label": "X"}, "n_atoms": 4, "summary": summary, "continued": 0,
        "run_end": "failed in cycle 1: training 1: RuntimeError: a | b",
        "pure_per_ps": None, "pure_speedup": None,
        "aimd": {"error": "AimdSegmentFailed: boom"},
        "displacement": 0.0, "window": None, "agreement": None, "note": "",
        "verdict": None,
    }
    cost = bench.cost_row(row)
    assert "failed in cycle 1: training 1: RuntimeError: a / b" in cost
    assert "failed: AimdSegmentFailed: boom" in cost
    assert cost.count("| n/a ") >= 4
    assert "pure AIMD failed" in bench.agreement_row(row)
    assert "**not gated** for these settings" in cost


def test_a_speedup_carries_the_gate_verdict_of_the_same_settings(bench, tmp_path, monkeypatch):
    import harness

    monkeypatch.setattr(harness, "VERDICTS", tmp_path / "verdicts.json")
    spec = Path(bench.SYSTEMS["lpsc"]["spec"])
    tried = harness.settings_fingerprint(spec, {"reference.steps": 200})
    # the gate's own seed and stop rules do not change the settings
    assert harness.settings_fingerprint(
        spec, {"reference.steps": 200, "reference.seed": 7, "stop.total_time_ps": 2.0}) == tried
    assert harness.settings_fingerprint(spec, {"reference.steps": 100}) != tried
    record = {"system": "lpsc", "fingerprint": tried, "window_ps": 2.0, "seeds": [1, 2, 3],
              "matched": False, "date": "2026-12-04", "commit": "abc1234",
              "criteria": [{"name": "bonds Li-P", "passed": True},
                           {"name": "audited force RMSE", "passed": False}]}
    harness.record_verdict(record)
    harness.record_verdict({**record, "matched": True})  # the same gate again replaces it
    assert len(harness.gate_verdicts()) == 1
    found = harness.verdict_for("lpsc", tried)
    assert found["matched"] is True
    assert harness.verdict_for("lpsc", harness.settings_fingerprint(spec, {})) is None
    harness.record_verdict(record)
    cell = bench.verdict_cell(harness.verdict_for("lpsc", tried))
    assert cell.startswith("**NOT matched** (2 ps x 3 seeds") and "fails: audited force RMSE" in cell
    # the same gate on other package code is a new row, not a replacement
    harness.record_verdict({**record, "code": "0123456789ab", "matched": True})
    assert len(harness.gate_verdicts()) == 2
    assert harness.verdict_for("lpsc", tried)["code"] == "0123456789ab"
