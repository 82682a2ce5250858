"""``haml mtp template`` and ``haml mtp grade`` on real files."""

from __future__ import annotations

from motep.io.mlip.mtp import read_mtp
from mtp_test_frames import labelled_frames
from typer.testing import CliRunner

from haml_flows.cli.main import app
from haml_flows.mtp.frames import cfg_to_frames, frames_to_cfg
from haml_flows.mtp.training import train_mtp

runner = CliRunner()


def test_template_reads_back_with_motep(tmp_path):
    out = tmp_path / "12.mtp"
    result = runner.invoke(
        app,
        ["mtp", "template", "--level", "12", "--species", "Li", "--species", "P",
         "--species", "S", "--species", "Cl", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    data = read_mtp(str(out))
    assert data.species_count == 4
    assert data.alpha_scalar_moments == 29 and data.alpha_moments_count == 84


def test_template_bad_level_writes_nothing(tmp_path):
    out = tmp_path / "7.mtp"
    result = runner.invoke(
        app, ["mtp", "template", "--level", "7", "--species", "Li", "-o", str(out)]
    )
    assert result.exit_code == 2
    assert "level" in result.output
    assert not out.exists() and not list(tmp_path.iterdir())


def test_grade_writes_mv_grade(tmp_path):
    frames = labelled_frames(12)
    trained = train_mtp(frames, level=6, radial_iterations=3)
    (tmp_path / "pot.mtp").write_text(trained.potential)
    (tmp_path / "train.cfg").write_text(frames_to_cfg(frames))
    squeezed = [a.copy() for a in frames[:2]]
    for atoms, calc_source in zip(squeezed, frames[:2]):
        atoms.calc = calc_source.calc
    squeezed[1].set_cell(squeezed[1].cell * 0.8, scale_atoms=True)
    (tmp_path / "in.cfg").write_text(frames_to_cfg([frames[0], squeezed[1]]))

    result = runner.invoke(
        app,
        ["mtp", "grade", *(str(tmp_path / n) for n in
                           ("pot.mtp", "train.cfg", "in.cfg", "out.cfg"))],
    )
    assert result.exit_code == 0, result.output
    graded = cfg_to_frames((tmp_path / "out.cfg").read_text())
    assert graded[0].info["MV_grade"] <= 1 + 1e-6  # a training configuration
    assert graded[1].info["MV_grade"] > 2  # compressed by 20 %
    assert graded[0].get_potential_energy() == frames[0].get_potential_energy()


def test_grade_says_how_many_training_neighbourhoods_are_needed(tmp_path):
    frames = labelled_frames(12)
    trained = train_mtp(frames, level=6, radial_iterations=3)
    (tmp_path / "pot.mtp").write_text(trained.potential)
    (tmp_path / "train.cfg").write_text(frames_to_cfg(frames[:2]))
    (tmp_path / "in.cfg").write_text(frames_to_cfg(frames[2:4]))
    names = ("pot.mtp", "train.cfg", "in.cfg", "out.cfg")
    result = runner.invoke(app, ["mtp", "grade", *(str(tmp_path / n) for n in names)])
    assert result.exit_code == 2
    assert "16 training neighbourhoods (2 frames) cannot span" in result.output
    assert "neighbourhoods are needed" in result.output
    assert not (tmp_path / "out.cfg").exists()
    bad_mode = runner.invoke(
        app, ["mtp", "grade", *(str(tmp_path / n) for n in names), "--mode", "atoms"]
    )
    assert bad_mode.exit_code == 2 and "--mode" in bad_mode.output
