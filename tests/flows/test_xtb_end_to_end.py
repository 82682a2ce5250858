"""The real path: GFN1-xTB AIMD, motep training and MLP-MD, end to end."""

from pathlib import Path

import pytest
import yaml

from haml_flows.queries import cycle_docs, run_summary, trajectory
from haml_flows.runner import prepare_run, run_prepared_locally

WORKFLOWS = Path(__file__).parents[2] / "workflows"


@pytest.mark.slow
def test_gfn1_xtb_and_motep_cycles(job_store, tmp_path):
    data = yaml.safe_load((WORKFLOWS / "li_lpsc_mini.yaml").read_text())
    data["system"]["parameters"]["li_layers"] = 1  # 30 atoms
    data["reference"]["steps"] = 6
    data["optimization"]["steps"] = 3
    data["mtp"]["level"] = 8
    data["mtp"]["radial_iterations"] = 10
    data["mlpmd"]["max_steps"] = 200
    data["stop"]["max_cycles"] = 2
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))

    run = prepare_run(spec)
    run_prepared_locally(run, job_store, tmp_path / "work")

    docs = cycle_docs(job_store, run.run_id)
    assert [d.cycle for d in docs] == [1, 2]
    assert run_summary(job_store, run.run_id).stop_reason == "max_cycles"
    frames = trajectory(job_store, docs[0].aimd_job)
    energies = [p["energy"] for p in frames.frame_properties]
    # GFN1-xTB total energies of this cell are hundreds of eV below zero
    assert all(e < -100 for e in energies)
    for doc in docs:
        assert doc.training_cost.wall_seconds > 0
        assert doc.force_rmse < 5.0
        assert doc.mlpmd_steps >= 0
