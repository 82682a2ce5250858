"""bench/fidelity.py: its options, and the self-check of the AIMD ensemble in its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from haml_flows.analysis.fidelity import Criterion, SelfCheck

SCRIPT = Path(__file__).resolve().parents[2] / "bench/fidelity.py"


@pytest.fixture(scope="module")
def bench(load_bench_script):
    return load_bench_script("fidelity")


@pytest.mark.parametrize(("argv", "message"), [
    (["--seeds", "3", "--haml-seeds", "4"], "--haml-seeds 4 must be 1..--seeds (3)"),
    (["--seeds", "3", "--haml-seeds", "0"], "--haml-seeds 0 must be 1..--seeds (3)"),
    (["--code-tree", "79cc7ef515f1", "--fresh"], "--code-tree judges recorded runs"),
])
def test_options_that_cannot_work_are_refused_before_anything_runs(argv, message):
    done = subprocess.run([sys.executable, str(SCRIPT), "--no-write", *argv], check=False,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr


def _result(reference_seeds: list[int]) -> dict:
    return {
        "key": "lpsc", "label": "Li / Li6PS5Cl (mini)", "seeds": [1, 2, 3],
        "reference_seeds": reference_seeds, "window_fs": 2000.0, "speedup": 0.8,
        "haml_cpu_h_per_ps": 0.39, "aimd_cpu_h_per_ps": 0.32, "aimd_share": 0.8,
        "ends": ["seed 1: 15 cycles, 2.00 ps"], "matched": False,
        "criteria": [Criterion("bonds Li-P", False, "HAML 7.60; AIMD ...", -0.64)],
        "self_check": [SelfCheck("bonds Li-P", [True, False, True, True, False]),
                       SelfCheck("all", [True, False, True, False, False])],
        "audit_frames": [], "cycle_rows": [], "cycles": [15], "continued": [0],
        "audited": [0.124], "runs_passing": [False, True, True],
    }


def test_the_table_shows_how_often_pure_aimd_passes(bench):
    text = bench.table(_result([1, 2, 3, 4, 5]), "python bench/fidelity.py", {}, "quiet")
    assert "HAML seeds 1, 2, 3 against pure-AIMD seeds 1, 2, 3, 4, 5" in text
    assert "each AIMD seed judged against the other 4" in text
    assert "| bonds Li-P | 3 of 5 | 2, 5 |" in text
    assert "| all | 2 of 5 | 2, 4, 5 |" in text
    assert "HAML, judged the same way: every criterion passed on 2 of 3 seeds (failing: 1)." \
        in text


def test_a_larger_ensemble_keeps_the_verdict_of_the_smaller_one(bench, tmp_path, monkeypatch):
    import harness

    monkeypatch.setattr(harness, "VERDICTS", tmp_path / "verdicts.json")
    for reference_seeds in ([1, 2, 3], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5]):
        harness.record_verdict(bench.verdict_record(_result(reference_seeds), {}, "79cc7ef"))
    records = json.loads((tmp_path / "verdicts.json").read_text())
    assert [r["reference_seeds"] for r in records] == [[1, 2, 3], [1, 2, 3, 4, 5]]
    assert records[1]["self_check"][0] == {"name": "bonds Li-P",
                                          "passed": [True, False, True, True, False]}


def test_band_chance_reproduces_the_exact_chance_of_an_unwidened_range(load_bench_script):
    module = load_bench_script("band_chance")
    # a new draw falls inside the range of n others with probability (n - 1) / (n + 1),
    # and k new draws all inside with (n - 1) n / ((n + k - 1)(n + k)) for k = 2
    for n in (3, 7):
        one, two = module.band_chance(n, 2, 200_000, widen=0.0)
        assert one == pytest.approx((n - 1) / (n + 1), abs=0.005)
        assert two == pytest.approx((n - 1) * n / ((n + 1) * (n + 2)), abs=0.005)
    one, three = module.band_chance(3, 3, 200_000)
    assert 0.74 < one < 0.79 and 0.53 < three < 0.59  # the gate's band, three seeds
