"""The HAML cycle on the production engines (VASP, MLIP's mlp, LAMMPS + MLIP), faked.

Run under FireWorks with the commands as ``>>key<<`` placeholders, resolved
from the worker's my_fworker.yaml, as on a cluster. The cycle documents must
be the same kind as on the embedded engines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from engine_fakes import FAKE_MLP, fake_command
from haml_flows.queries import cycle_docs, run_summary
from haml_flows.runner import prepare_run, run_prepared_on_fireworks
from haml_flows.schemas import CycleDoc

DATA = Path(__file__).parents[1] / "data"


@pytest.mark.slow
def test_vasp_mlip_lammps_cycles_on_fireworks(
    haml_settings, job_store, tmp_path, monkeypatch
):
    from fireworks import fw_config

    from haml_flows.database.stores import make_launchpad

    worker = tmp_path / "my_fworker.yaml"
    worker.write_text(
        yaml.safe_dump(
            {
                "name": "test_worker",
                "env": {
                    "vasp_cmd": fake_command("fake_vasp.py"),
                    "mlp_cmd": FAKE_MLP,
                    "lmp_cmd": fake_command("fake_lmp.py"),
                },
            }
        )
    )
    monkeypatch.setattr(fw_config, "FWORKER_LOC", str(worker))
    for key in ("vasp_cmd", "mlp_cmd", "lmp_cmd"):
        monkeypatch.setenv(f"HAML_{key.upper()}", f">>{key}<<")
    # no POTCARs here: POTCAR.spec instead, as atomate2's mock_vasp does
    from atomate2.vasp.sets.base import VaspInputGenerator

    get_input_set = VaspInputGenerator.get_input_set
    monkeypatch.setattr(
        VaspInputGenerator,
        "get_input_set",
        lambda self, *args, **kwargs: get_input_set(
            self, *args, **{**kwargs, "potcar_spec": True}
        ),
    )

    spec = yaml.safe_load((DATA / "lj_small.yaml").read_text())
    spec["name"] = "production_engines"
    spec["reference"].update(engine="vasp", steps=6)
    spec["mtp"]["engine"] = "mlip"
    spec["mlpmd"].update(
        engine="lammps", max_steps=40, gamma_break=3, continue_trusted=False
    )
    spec["stop"]["max_cycles"] = 2
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))

    launchpad = make_launchpad(haml_settings)
    launchpad.reset("", require_password=False)
    run = prepare_run(spec_path)
    run_prepared_on_fireworks(run, job_store, launchpad, tmp_path / "fw")

    states = {fw["state"] for fw in launchpad.fireworks.find({}, {"state": 1})}
    assert states == {"COMPLETED"}
    docs = cycle_docs(job_store, run.run_id)
    assert [d.cycle for d in docs] == [1, 2]
    assert all(isinstance(d, CycleDoc) for d in docs)
    assert run_summary(job_store, run.run_id).stop_reason == "max_cycles"
    # every VASP ionic step is a training frame
    assert [d.training_set_size for d in docs] == [6, 12]
    for doc in docs:
        assert doc.aimd_steps == 6 and doc.aimd_fs == pytest.approx(6.0)
        assert doc.aimd_cost.cores == 1 and doc.aimd_cost.cpu_seconds > 0
        assert doc.stop_reason in ("gamma_break", "max_steps")
        assert doc.mlpmd_fs == pytest.approx(0.5 * doc.mlpmd_steps)
        assert np.isfinite(doc.force_rmse) and np.isfinite(doc.gamma_max)
        assert doc.temperature_mlpmd_start == pytest.approx(
            doc.temperature_aimd_end, rel=0.05
        )
    outputs = {
        d["output"]["doc_type"]: d["output"]["engine"]
        for d in job_store.docs_store.query(
            {"output.doc_type": {"$in": ["aimd_segment", "mtp_training", "mlpmd_segment"]}}
        )
    }
    assert outputs == {
        "aimd_segment": "VASP PBE+D3",
        "mtp_training": "mlip-mlp",
        "mlpmd_segment": "lammps+mlip",
    }
