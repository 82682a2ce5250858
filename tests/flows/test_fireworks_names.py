"""Fireworks of a 3-cycle run carry one name each, set per job, never grown."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import yaml

from haml_flows.queries import cycle_docs
from haml_flows.runner import prepare_run, run_prepared_on_fireworks

DATA = Path(__file__).parents[1] / "data"


def test_three_cycles_give_distinct_names(haml_settings, job_store, tmp_path):
    from haml_flows.database.stores import make_launchpad

    data = yaml.safe_load((DATA / "lj_small.yaml").read_text())
    data["reference"]["steps"] = 3
    data["mtp"]["radial_iterations"] = 0
    data["mlpmd"].update(max_steps=10, continue_trusted=False)
    data["stop"]["max_cycles"] = 3
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    launchpad = make_launchpad(haml_settings)
    launchpad.reset("", require_password=False)
    run = prepare_run(spec)
    run_prepared_on_fireworks(run, job_store, launchpad, tmp_path / "fw")

    assert [d.cycle for d in cycle_docs(job_store, run.run_id)] == [1, 2, 3]
    names = Counter(fw["name"] for fw in launchpad.fireworks.find({}, {"name": 1}))
    cycle_jobs = sorted(n for n in names if n.startswith("haml cycle"))
    assert cycle_jobs == ["haml cycle 1", "haml cycle 2", "haml cycle 3", "haml cycle 4"]
    stages = {n for n in names if not n.startswith(("haml cycle", "start", "store"))}
    assert stages == {f"{s} {c}" for s in ("aimd", "training", "mlpmd", "record")
                      for c in (1, 2, 3)}
    assert all(names[n] == 1 for n in {*cycle_jobs, *stages})
    assert not [n for n in names if re.search(r"\d+ \d+", n)]
