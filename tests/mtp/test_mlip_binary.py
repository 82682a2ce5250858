"""The ``mlp`` executable path: train, calc-grade, select-add through a fake ``mlp``.

``fake_mlp.py`` parses its argv exactly like MLIP-2's three commands, fails on
anything else, and writes real ``.mtp`` / ``.cfg`` files computed with motep.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mtp_test_frames import labelled_frames
from pymatgen.core.trajectory import Trajectory
from pymatgen.io.ase import AseAtomsAdaptor
from typer.testing import CliRunner

from haml_flows.cli.main import app
from haml_flows.engines.commands import resolve_command as resolve_mlp_cmd
from haml_flows.engines.mlip import (
    MlpError,
    calc_grade_with_mlp,
    parse_grades,
    select_add_with_mlp,
    train_with_mlp,
)
from haml_flows.engines.training import MtpTrainMaker
from haml_flows.mtp.frames import cfg_to_frames, frames_to_cfg
from haml_flows.mtp.grade import ActiveSet, load_potential, mtp_calculator
from haml_flows.mtp.training import _errors, held_out_indices
from haml_flows.spec import MtpSpec

FWORKER_PLACEHOLDER = ">>mlp_cmd<<"

FAKE = Path(__file__).with_name("fake_mlp.py")
MLP = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE))}"
FAST = {"level": 8, "cutoff": 4.5, "max_iter": 3}


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def mlp_log(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "mlp.log"
    monkeypatch.setenv("FAKE_MLP_LOG", str(path))
    monkeypatch.delenv("FAKE_MLP_MODE", raising=False)
    return path


@pytest.fixture(scope="module")
def trained(frames):
    return train_with_mlp(frames, mlp_cmd=MLP, **FAST)


@pytest.fixture(scope="module")
def far_candidates():
    """Strongly rattled frames: far outside the training neighbourhoods."""
    return labelled_frames(3, seed=5, rattle=0.4)


def test_train_runs_mlp_train_and_scores_held_out_frames_with_motep(frames, mlp_log):
    result = train_with_mlp(frames, mlp_cmd=MLP, energy_weight=2.0, **FAST)
    (call,) = _log(mlp_log)
    assert call["argv"] == [
        "train", "init.mtp", "train.cfg", "--trained-pot-name=pot.mtp",
        "--energy-weight=2.0", "--force-weight=0.1", "--stress-weight=0.001",
        "--max-iter=3",
    ]
    assert (result.n_frames, result.n_train, result.n_test) == (12, 10, 2)
    # the fake drops our species tag as MLIP does; it is restored from `species`
    data = load_potential(result.potential)
    assert list(data.species) == [13, 29]
    assert data.moment_coeffs is not None
    assert (result.energy_rmse, result.force_rmse) == pytest.approx(
        _errors(data, [frames[i] for i in held_out_indices(12, 2)]), rel=1e-9
    )
    assert result.force_rmse < 1.0 and result.train_seconds > 0


def test_train_cfg_holds_only_training_frames_and_warm_start_sends_previous(
    frames, trained, mlp_log
):
    train_with_mlp(frames, mlp_cmd=MLP, previous=trained.potential, **FAST)
    (call,) = _log(mlp_log)
    assert call["inputs"]["init.mtp"] == _sha(trained.potential)
    held = held_out_indices(12, 2)
    trained_on = [f for i, f in enumerate(frames) if i not in held]
    assert frames[-1] in trained_on  # the newest frame, where MLP-MD starts
    assert call["inputs"]["train.cfg"] == _sha(frames_to_cfg(trained_on, [13, 29]))


def test_mlp_cmd_with_launcher_prefix_is_split(frames, trained, mlp_log):
    # like "mpirun -n 4 mlp": a launcher with its own arguments before mlp
    grades = calc_grade_with_mlp(
        trained.potential, frames[:10], frames[10:], f"env FAKE_MLP_X=1 {MLP}"
    )
    assert len(grades) == 2
    assert _log(mlp_log)[0]["argv"][0] == "calc-grade"


def test_calc_grade_matches_in_process_maxvol(frames, trained, far_candidates, mlp_log):
    inputs = frames[10:] + far_candidates
    grades = calc_grade_with_mlp(trained.potential, frames[:10], inputs, MLP)
    (call,) = _log(mlp_log)
    assert call["argv"] == [
        "calc-grade", "pot.mtp", "train.cfg", "in.cfg", "out.cfg",
        "--als-filename=state.als",
    ]
    active_set = ActiveSet.from_training(trained.potential, frames[:10])
    expected = []
    for atoms in inputs:
        probe = atoms.copy()
        probe.calc = mtp_calculator(trained.potential, active_set)
        expected.append(active_set.gamma(probe))
    assert grades == pytest.approx(expected, rel=1e-8)
    assert min(grades[2:]) > 1.1


def test_select_add_returns_diff_cfg_frames(frames, trained, far_candidates, mlp_log):
    candidates = frames[10:] + far_candidates
    selected = select_add_with_mlp(trained.potential, frames[:10], candidates, MLP)
    (call,) = _log(mlp_log)
    assert call["argv"] == ["select-add", "pot.mtp", "train.cfg", "preselected.cfg", "diff.cfg"]
    grades = calc_grade_with_mlp(trained.potential, frames[:10], candidates, MLP)
    wanted = [c for c, g in zip(candidates, grades) if g > 1.1]  # MLIP's default threshold
    assert len(wanted) >= len(far_candidates) and len(selected) == len(wanted)
    for got, want in zip(selected, wanted):
        assert list(got.numbers) == list(want.numbers)
        np.testing.assert_allclose(got.positions, want.positions, atol=1e-12)
        np.testing.assert_allclose(got.get_forces(), want.get_forces(), atol=1e-12)
    # nothing new: an empty diff.cfg is an empty selection, not an error
    assert select_add_with_mlp(trained.potential, frames[:10], frames[:2], MLP) == []


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("fail", "failed with exit status 3:\nfake mlp: something went wrong\nERROR: simulated failure"),
        ("no-output", "exited with status 0 but wrote no out.cfg"),
        ("garbage", "wrote a malformed out.cfg"),
    ],
)
def test_calc_grade_errors_quote_the_command(frames, trained, monkeypatch, mode, expected):
    monkeypatch.setenv("FAKE_MLP_MODE", mode)
    with pytest.raises(RuntimeError) as info:
        calc_grade_with_mlp(trained.potential, frames[:10], frames[10:], MLP)
    message = str(info.value)
    assert expected in message
    assert "calc-grade pot.mtp train.cfg in.cfg out.cfg --als-filename=state.als" in message
    assert str(FAKE) in message


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("no-output", "wrote no pot.mtp"), ("garbage", "pot.mtp")],
)
def test_train_errors(frames, monkeypatch, mode, expected):
    monkeypatch.setenv("FAKE_MLP_MODE", mode)
    with pytest.raises(MlpError, match=expected) as info:
        train_with_mlp(frames, mlp_cmd=MLP, **FAST)
    assert "train init.mtp train.cfg --trained-pot-name=pot.mtp" in str(info.value)


def test_select_add_failure_and_missing_executable(frames, trained, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_MLP_MODE", "fail")
    with pytest.raises(MlpError, match="select-add pot.mtp .* exit status 3"):
        select_add_with_mlp(trained.potential, frames[:10], frames[10:], MLP)
    monkeypatch.delenv("FAKE_MLP_MODE")
    missing = str(tmp_path / "no" / "mlp")
    with pytest.raises(MlpError, match="could not start"):
        calc_grade_with_mlp(trained.potential, frames[:10], frames[10:], missing)


def test_fake_rejects_unexpected_arguments_and_missing_files(tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, str(FAKE), *args], cwd=tmp_path, capture_output=True, text=True
        )

    (tmp_path / "a.cfg").write_text("BEGIN_CFG\nEND_CFG\n")
    bad = [
        (("train", "init.mtp", "train.cfg"), "cannot open init.mtp"),
        (("train", "x.mtp", "a.cfg", "--trained-pot=pot.mtp"), "unknown or malformed option"),
        (("train", "x.mtp", "a.cfg", "--max-iter=lots"), "needs an integer"),
        (("calc-grade", "p.mtp", "t.cfg", "in.cfg"), "4 file arguments required"),
        (("select-add", "p", "t", "n", "d", "--als-filename"), "unknown or malformed option"),
        (("calc-errors", "p.mtp", "t.cfg"), "unknown command"),
    ]
    for args, message in bad:
        proc = run(*args)
        assert proc.returncode == 1, args
        assert message in proc.stderr, (args, proc.stderr)


def test_parse_grades_needs_one_grade_per_configuration():
    text = "BEGIN_CFG\n Feature   MV_grade\t1.5\nEND_CFG\nBEGIN_CFG\n Feature   MV_grade\t0.25\nEND_CFG\n"
    assert parse_grades(text) == [1.5, 0.25]
    with pytest.raises(ValueError, match="configuration 1 has 0 MV_grade"):
        parse_grades(text.replace("0.25", "").replace(" Feature   MV_grade\t\n", ""))


def test_resolve_mlp_cmd_from_settings_value_or_fworker_env(tmp_path):
    assert resolve_mlp_cmd(None) is None
    assert resolve_mlp_cmd("  ") is None
    assert resolve_mlp_cmd(" mpirun -n 4 mlp ") == "mpirun -n 4 mlp"
    worker = tmp_path / "my_fworker.yaml"
    worker.write_text("name: w\nenv:\n  mlp_cmd: srun -n 2 mlp\n")
    assert resolve_mlp_cmd(FWORKER_PLACEHOLDER, worker) == "srun -n 2 mlp"
    worker.write_text("name: w\nenv:\n  # mlp_cmd: mpirun -n 4 mlp\n")
    assert resolve_mlp_cmd(FWORKER_PLACEHOLDER, worker) is None
    worker.write_text("name: w\nenv:\n  mlp_cmd: ''\n")
    assert resolve_mlp_cmd(FWORKER_PLACEHOLDER, worker) is None
    assert resolve_mlp_cmd(FWORKER_PLACEHOLDER, tmp_path / "missing.yaml") is None


def _trajectory(frames) -> Trajectory:
    structures = [AseAtomsAdaptor.get_structure(a) for a in frames]
    props = [
        {"energy": a.get_potential_energy(), "forces": a.get_forces().tolist(),
         "stress": a.get_stress().tolist()}
        for a in frames
    ]
    return Trajectory.from_structures(structures, frame_properties=props, constant_lattice=False)


def test_train_maker_with_mlp_cmd_produces_training_doc(frames, mlp_log):
    maker = MtpTrainMaker(mtp=MtpSpec(level=8, cutoff=4.5, species=["Al", "Cu"]), mlp_cmd=MLP)
    doc = MtpTrainMaker.make.original(maker, _trajectory(frames[:8]))
    assert doc.engine == "mlip-mlp"
    assert [c["argv"][0] for c in _log(mlp_log)] == ["train"]
    assert "--max-iter" not in " ".join(_log(mlp_log)[0]["argv"])  # MLIP's default
    assert list(load_potential(doc.potential).species) == [13, 29]
    assert (doc.training_set_size, doc.n_train, doc.n_test) == (8, 6, 2)
    assert len(cfg_to_frames(doc.training_set)) == 8
    assert not doc.warm_started and np.isfinite(doc.force_rmse)
    again = MtpTrainMaker.make.original(
        maker, _trajectory(frames[8:]), doc.training_set, doc.potential
    )
    assert again.warm_started and again.training_set_size == 12
    assert [c["argv"][0] for c in _log(mlp_log)] == ["train", "train"]


def test_cli_grade_uses_mlp_when_configured(frames, trained, tmp_path, monkeypatch, mlp_log):
    monkeypatch.setenv("HAML_CONFIG_FILE", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("HAML_MLP_CMD", MLP)
    paths = {name: tmp_path / name for name in ("pot.mtp", "train.cfg", "in.cfg", "out.cfg")}
    paths["pot.mtp"].write_text(trained.potential)
    paths["train.cfg"].write_text(frames_to_cfg(frames[:10]))
    paths["in.cfg"].write_text(frames_to_cfg(frames[10:]))
    result = CliRunner().invoke(app, ["mtp", "grade", *map(str, paths.values())])
    assert result.exit_code == 0, result.output
    assert [c["argv"][0] for c in _log(mlp_log)] == ["calc-grade"]
    graded = cfg_to_frames(paths["out.cfg"].read_text())
    assert len(graded) == 2 and all("MV_grade" in a.info for a in graded)
    monkeypatch.setenv("FAKE_MLP_MODE", "fail")
    result = CliRunner().invoke(app, ["mtp", "grade", *map(str, paths.values())])
    assert result.exit_code == 2 and "simulated failure" in result.output


def test_haml_maker_takes_mlp_cmd_from_settings(tmp_path, monkeypatch):
    from haml_flows.flows.haml import HamlMaker
    from haml_flows.spec import load_spec

    spec = load_spec(Path(__file__).parents[2] / "workflows" / "li_lpsc_mini.yaml")
    monkeypatch.setenv("HAML_CONFIG_FILE", str(tmp_path / "none.yaml"))
    monkeypatch.delenv("HAML_MLP_CMD", raising=False)
    assert HamlMaker.from_spec(spec).cycle_maker.train_maker.command_setting() is None
    monkeypatch.setenv("HAML_MLP_CMD", FWORKER_PLACEHOLDER)
    # resolved on the worker at run time, not when the flow is built
    train_maker = HamlMaker.from_spec(spec).cycle_maker.train_maker
    assert train_maker.command_setting() == FWORKER_PLACEHOLDER
