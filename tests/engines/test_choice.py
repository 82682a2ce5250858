"""Engine choice per spec: makers by engine name, commands checked at submission."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from engine_fakes import fake_command
from haml_flows.engines.commands import LMP, MLP, VASP, resolve_command
from haml_flows.engines.lammps import LammpsMlpMdMaker
from haml_flows.engines.mlpmd import MlpMdMaker
from haml_flows.engines.reference import LennardJonesAimdSegmentMaker
from haml_flows.engines.vasp import VaspAimdSegmentMaker
from haml_flows.runner import prepare_run
from haml_flows.spec import SpecError

DATA = Path(__file__).parents[1] / "data"
COMMAND_SETTINGS = ("HAML_VASP_CMD", "HAML_CP2K_CMD", "HAML_MLP_CMD", "HAML_LMP_CMD")


@pytest.fixture
def clean_settings(tmp_path, monkeypatch):
    """No engine command configured, no user config file."""
    monkeypatch.setenv("HAML_CONFIG_FILE", str(tmp_path / "none.yaml"))
    for name in COMMAND_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _spec(tmp_path: Path, **engines) -> Path:
    data = yaml.safe_load((DATA / "lj_small.yaml").read_text())
    for section, engine in engines.items():
        data[section]["engine"] = engine
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _makers(run):
    cycle = run.flow.jobs[1].function.__self__
    return cycle.aimd_maker, cycle.train_maker, cycle.mlpmd_maker


def test_embedded_engines_need_nothing(clean_settings, tmp_path):
    aimd, train, mlpmd = _makers(prepare_run(_spec(tmp_path)))
    assert isinstance(aimd, LennardJonesAimdSegmentMaker)
    assert train.command_setting() is None and isinstance(mlpmd, MlpMdMaker)


def test_training_settings_reach_the_maker(clean_settings, tmp_path):
    path = _spec(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["mtp"].update(rounds=3, radial_iterations=7)
    path.write_text(yaml.safe_dump(data))
    _, train, _ = _makers(prepare_run(path))
    assert (train.mtp.rounds, train.mtp.radial_iterations) == (3, 7)


def test_unknown_engine_lists_the_allowed_ones(clean_settings, tmp_path):
    with pytest.raises(SpecError, match=r"reference\.engine: .*'xtb', 'lj', 'vasp' or 'cp2k'"):
        prepare_run(_spec(tmp_path, reference="gaussian"))
    with pytest.raises(SpecError, match=r"mlpmd\.engine: .*'ase' or 'lammps'"):
        prepare_run(_spec(tmp_path, mlpmd="gromacs"))
    with pytest.raises(SpecError, match=r"mtp\.engine: .*'motep' or 'mlip'"):
        prepare_run(_spec(tmp_path, mtp="ace"))


def test_missing_commands_fail_at_submission(clean_settings, tmp_path):
    with pytest.raises(SpecError, match=r"reference\.engine: 'vasp' needs a command: set "
                                        r"HAML_VASP_CMD"):
        prepare_run(_spec(tmp_path, reference="vasp"))
    with pytest.raises(SpecError, match=r"reference\.engine: 'cp2k' needs a command: set "
                                        r"HAML_CP2K_CMD"):
        prepare_run(_spec(tmp_path, reference="cp2k"))
    with pytest.raises(SpecError, match=r"mtp\.engine: 'mlip' needs a command: set "
                                        r"HAML_MLP_CMD"):
        prepare_run(_spec(tmp_path, mtp="mlip"))
    clean_settings.setenv("HAML_LMP_CMD", fake_command("fake_lmp.py"))
    with pytest.raises(SpecError, match=r"mlpmd\.engine 'lammps' needs MLIP's mlp too: "
                                        r".*HAML_MLP_CMD"):
        prepare_run(_spec(tmp_path, mlpmd="lammps"))
    clean_settings.setenv("HAML_VASP_CMD", "vasp_std_not_installed -n 4")
    with pytest.raises(SpecError, match="'vasp_std_not_installed' is not an executable"):
        prepare_run(_spec(tmp_path, reference="vasp"))


def test_commands_from_settings_and_fireworker_placeholders(clean_settings, tmp_path):
    clean_settings.setenv("HAML_VASP_CMD", ">>vasp_cmd<<")
    clean_settings.setenv("HAML_MLP_CMD", ">>mlp_cmd<<")
    clean_settings.setenv("HAML_LMP_CMD", f"{sys.executable} -X utf8 lmp.py")
    run = prepare_run(_spec(tmp_path, reference="vasp", mtp="mlip", mlpmd="lammps"))
    aimd, train, mlpmd = _makers(run)
    # the commands each job will read on the worker, not fixed at submission
    assert isinstance(aimd, VaspAimdSegmentMaker)
    assert VASP.setting_value(aimd.vasp_cmd) == ">>vasp_cmd<<"
    assert aimd.n_steps == 8 and aimd.mb_velocity_seed == 7
    assert train.command_setting() == ">>mlp_cmd<<" and train.mtp.level == 6
    assert isinstance(mlpmd, LammpsMlpMdMaker) and mlpmd.mlpmd.gamma_break == 3
    assert LMP.setting_value(mlpmd.lmp_cmd).endswith("lmp.py")
    assert MLP.setting_value(mlpmd.mlp_cmd) == ">>mlp_cmd<<"
    # the optimization of a production reference runs on GFN1-xTB
    from haml_flows.flows.haml import HamlMaker

    spec = run.spec.model_copy(update={"optimization": run.spec.optimization.model_copy(
        update={"enabled": True})})
    assert HamlMaker.from_spec(spec).optimization.engine == "xtb"
    # an explicit motep ignores a configured mlp
    train = _makers(prepare_run(_spec(tmp_path, mtp="motep")))[1]
    assert train.command_setting() is None


def test_placeholders_resolve_on_the_worker(tmp_path):
    worker = tmp_path / "my_fworker.yaml"
    worker.write_text("name: w\nenv:\n  vasp_cmd: srun vasp_std\n  lmp_cmd: ''\n")
    assert resolve_command(">>vasp_cmd<<", worker) == "srun vasp_std"
    assert resolve_command(">>lmp_cmd<<", worker) is None
    assert resolve_command(">>cp2k_cmd<<", worker) is None
    assert resolve_command(" mpirun -n 2 lmp ", worker) == "mpirun -n 2 lmp"
