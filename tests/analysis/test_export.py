"""``haml export``: a real GFN1-xTB + motep run written to extended XYZ and read back."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import units
from ase.io import read
from typer.testing import CliRunner

from haml_flows.analysis import timeline as timeline_module
from haml_flows.analysis.export import (
    ExportSummary,
    export_run,
    frame_atoms,
    one_per_time,
    run_atoms,
    write_frames,
)
from haml_flows.analysis.timeline import Frame
from haml_flows.cli.main import app
from haml_flows.queries import cycle_docs, trajectory

WORKFLOWS = Path(__file__).parents[2] / "workflows"
runner = CliRunner()


@pytest.fixture(scope="module")
def xtb_run(embedded_db, tmp_path_factory):
    """Two full cycles of the smallest real run: 30 atoms, GFN1-xTB AIMD, level-8 MTP.

    Every MLP-MD segment runs its 12 steps (gamma_break far away, no audit, no
    continued cycle), so both kinds of hand-over, AIMD -> MLP-MD and MLP-MD ->
    AIMD, are stored. Yields (settings, store, run id).
    """
    from haml_flows.database.stores import connect, make_job_store
    from haml_flows.runner import prepare_run, run_prepared_locally
    from haml_flows.settings import HamlSettings

    settings = HamlSettings(DATABASE=f"test_{uuid.uuid4().hex[:12]}")
    store = make_job_store(settings)
    store.connect()
    data = yaml.safe_load((WORKFLOWS / "li_lpsc_mini.yaml").read_text())
    data["system"]["parameters"]["li_layers"] = 1
    data["reference"]["steps"] = 6
    data["optimization"]["steps"] = 3
    data["mtp"].update(level=8, radial_iterations=10)
    # no reference-contact guard: 6 AIMD steps see too few contacts, and a
    # segment stopped at its first step would leave no MLP-MD frames to export
    data["mlpmd"].update(max_steps=12, save_interval=3, gamma_break=1e5,
                         continue_trusted=False, contact_tolerance=None)
    data["audit"] = {"enabled": False}
    data["stop"]["max_cycles"] = 2
    folder = tmp_path_factory.mktemp("xtb_run")
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    run = prepare_run(spec)
    run_prepared_locally(run, store, folder / "work")
    yield settings, store, run.run_id
    store.close()
    database = connect(settings)
    database.client.drop_database(database.name)
    database.client.close()


def _stored_segments(store, run_id):
    """(cycle, stage, start fs, time step fs, trajectory) of every stored segment."""
    out = []
    for doc in cycle_docs(store, run_id):
        start = doc.cumulative_fs - doc.aimd_fs - doc.mlpmd_fs
        aimd = trajectory(store, doc.aimd_job)
        out.append((doc.cycle, "aimd", start, doc.aimd_fs / (len(aimd) - 1), aimd))
        mlpmd = trajectory(store, doc.mlpmd_job)
        out.append((doc.cycle, "mlpmd", start + doc.aimd_fs, doc.mlpmd_fs / doc.mlpmd_steps,
                    mlpmd))
    return out


@pytest.mark.slow
def test_every_stored_frame_is_written_in_time_order_with_its_engine_data(xtb_run, tmp_path):
    _, store, run_id = xtb_run
    path = tmp_path / "run.extxyz"
    summary = export_run(store, run_id, path)
    frames = read(path, ":")
    stored = _stored_segments(store, run_id)
    assert [(c, s) for c, s, *_ in stored] == [(1, "aimd"), (1, "mlpmd"), (2, "aimd"),
                                               (2, "mlpmd")]

    # each hand-over (end of one segment = start of the next) is written once
    n_stored = sum(len(traj) for *_, traj in stored)
    assert len(frames) == summary.total == n_stored - (len(stored) - 1)
    assert summary.merged == len(stored) - 1
    times = np.array([a.info["time_fs"] for a in frames])
    assert times[0] == 0.0 and np.all(np.diff(times) > 0)
    assert times[-1] == pytest.approx(cycle_docs(store, run_id)[-1].cumulative_fs)
    assert not path.with_name("run.extxyz.part").exists()

    by_time = {round(a.info["time_fs"], 6): a for a in frames}
    n_atoms = len(frames[0])
    for cycle, stage, start, step_fs, traj in stored:
        for index in range(len(traj)):
            props = traj.frame_properties[index]
            time_fs = start + props.get("step", index) * step_fs
            written = by_time[round(time_fs, 6)]
            if stage == "mlpmd" and written.info["stage"] == "aimd":
                continue  # a hand-over: the AIMD copy is the one written
            assert (written.info["stage"], written.info["cycle"]) == (stage, cycle)
            assert written.info["engine"] == ("GFN1-xTB" if stage == "aimd" else "ase+motep")
            lattice = np.asarray(traj.lattice)
            lattice = lattice if lattice.ndim == 2 else lattice[index]
            np.testing.assert_allclose(  # as stored, not wrapped into the cell
                written.positions, np.asarray(traj.coords[index]) @ lattice, atol=1e-6)
            np.testing.assert_allclose(
                written.arrays["velo"], np.asarray(props["velocities"]) * units.fs, atol=1e-8)
            assert written.get_potential_energy() == pytest.approx(props["energy"], abs=1e-9)
            assert written.info["temperature_K"] == pytest.approx(props["temperature"])
            # each stage's own engine: the reference's forces on AIMD frames, the
            # MTP's (stored by the MLP-MD at the step itself) on MLP-MD frames
            assert written.get_forces().shape == (n_atoms, 3)
            np.testing.assert_allclose(written.get_forces(), props["forces"], atol=1e-7)
            if stage == "mlpmd":
                assert written.info["gamma"] == pytest.approx(props["gamma"])

    aimd_frames = sum(len(t) for _, s, *_, t in stored if s == "aimd")
    assert summary.frames == {"aimd": aimd_frames, "mlpmd": len(frames) - aimd_frames}
    assert [a.info["stage"] for a in frames].count("aimd") == aimd_frames
    assert summary.notes() == []


@pytest.mark.slow
def test_frames_are_written_as_each_segment_is_read(xtb_run, tmp_path, monkeypatch):
    # streaming: when a segment's trajectory is loaded, the frames of the
    # segments before it are already in the file (all but the one held back to
    # see whether the next frame is its copy)
    _, store, run_id = xtb_run
    written_at_load = []
    summary = ExportSummary(tmp_path / "run.extxyz")
    real = timeline_module.trajectory

    def load(store_, job_uuid):
        written_at_load.append(summary.total)
        return real(store_, job_uuid)

    monkeypatch.setattr(timeline_module, "trajectory", load)
    stream = run_atoms(store, run_id, summary)
    assert written_at_load == []  # a generator: nothing read before it is asked
    write_frames(stream, summary.path, summary)
    sizes = [len(traj) for *_, traj in _stored_segments(store, run_id)]
    assert len(written_at_load) == len(sizes)
    # before segment k is read: every frame of the segments before it, less the
    # hand-over copies merged so far and the one frame held back
    expected = [0] + [sum(sizes[:k]) - (k - 1) - 1 for k in range(1, len(sizes))]
    assert written_at_load == expected


@pytest.mark.slow
def test_export_command(xtb_run, tmp_path, monkeypatch):
    from rich.console import Console

    import haml_flows.cli._common as cli

    settings, store, run_id = xtb_run
    monkeypatch.setattr(cli, "console", Console(width=300))
    monkeypatch.setenv("HAML_DATABASE", settings.DATABASE)
    path = tmp_path / "run.extxyz"
    result = runner.invoke(app, ["export", run_id, "-o", str(path)])
    assert result.exit_code == 0, result.output
    n = len(read(path, ":"))
    aimd = sum(len(traj) for _, stage, *_, traj in _stored_segments(store, run_id)
               if stage == "aimd")
    assert f"wrote {n} frames (AIMD {aimd}, MLP-MD {n - aimd}) of run {run_id}" in result.output
    assert f"to {path}" in result.output
    assert "3 hand-over frames stored twice" in result.output
    assert "note:" not in result.output

    again = runner.invoke(app, ["export", run_id, "-o", str(path)])
    assert again.exit_code == 2
    assert again.output.startswith("error: ") and "--force" in again.output
    path.write_text("not a trajectory")
    forced = runner.invoke(app, ["export", run_id, "-o", str(path), "--force"])
    assert forced.exit_code == 0, forced.output
    assert len(read(path, ":")) == n

    typo = run_id[:-1] + ("x" if run_id[-1] != "x" else "y")
    unknown = runner.invoke(app, ["export", typo, "-o", str(tmp_path / "typo.extxyz")])
    assert unknown.exit_code == 1
    assert f"did you mean {run_id}" in " ".join(unknown.output.split())
    assert not (tmp_path / "typo.extxyz").exists()


def test_output_path_is_checked_before_the_database(tmp_path, monkeypatch, unused_port):
    # no database answers at this port: each refusal comes first, in one line
    monkeypatch.setenv("HAML_CONFIG_FILE", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("HAML_DB_PORT", str(unused_port()))
    monkeypatch.delenv("HAML_MONGODB_URI", raising=False)
    missing = runner.invoke(app, ["export", "r", "-o", str(tmp_path / "no" / "r.extxyz")])
    assert missing.exit_code == 2
    assert missing.output.startswith("error: ") and "does not exist" in missing.output
    folder = runner.invoke(app, ["export", "r", "-o", str(tmp_path)])
    assert folder.exit_code == 2 and "a directory is there" in folder.output


def _frame(time_fs: float, stage: str, cycle: int = 1, **properties) -> Frame:
    return Frame(time_fs, ["Li", "S"], np.array([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0]]),
                 np.eye(3) * 5.0, cycle=cycle, stage=stage,
                 energy=properties.get("energy"), properties=properties)


def test_a_hand_over_is_written_once_preferring_the_aimd_copy():
    frames = [
        _frame(0.0, "aimd"), _frame(1.0, "aimd"),
        _frame(1.0, "mlpmd"), _frame(2.0, "mlpmd"),      # AIMD -> MLP-MD
        _frame(2.0, "mlpmd", 2), _frame(3.0, "mlpmd", 2),  # a continued cycle
        _frame(3.0, "aimd", 3), _frame(4.0, "aimd", 3),   # MLP-MD -> AIMD
    ]
    summary = ExportSummary(Path("x"))
    kept = list(one_per_time(frames, summary))
    assert [(f.time_fs, f.stage, f.cycle) for f in kept] == [
        (0.0, "aimd", 1), (1.0, "aimd", 1), (2.0, "mlpmd", 1), (3.0, "aimd", 3),
        (4.0, "aimd", 3),
    ]
    assert summary.merged == 3


def test_frame_atoms_carry_what_is_stored_and_nothing_else():
    velocities = [[0.01, 0.0, 0.0], [0.0, -0.02, 0.0]]
    aimd = frame_atoms(_frame(2.0, "aimd", energy=-3.5, velocities=velocities,
                              forces=[[0.1, 0.2, 0.3], [-0.1, -0.2, -0.3]]), "GFN1-xTB")
    assert aimd.get_potential_energy() == -3.5
    np.testing.assert_allclose(aimd.get_forces()[1], [-0.1, -0.2, -0.3])
    np.testing.assert_allclose(aimd.arrays["velo"], np.array(velocities) * units.fs)
    np.testing.assert_allclose(aimd.positions[1], [1.5, 0.0, 0.0])
    assert aimd.info == {"time_fs": 2.0, "stage": "aimd", "cycle": 1, "engine": "GFN1-xTB"}

    bare = frame_atoms(_frame(3.0, "mlpmd", gamma=4.0))
    assert bare.calc is None and "velo" not in bare.arrays
    assert bare.info["gamma"] == 4.0
    summary = ExportSummary(Path("x"))
    summary.add(aimd)
    summary.add(bare)
    assert summary.notes() == [
        f"MLP-MD frames carry no {q} (1 of 1): the MLP-MD segments do not store them"
        for q in ("energy", "forces", "velocities")
    ]


def test_a_failed_export_leaves_no_file_and_times_out_of_order_are_said(tmp_path):
    path = tmp_path / "run.extxyz"

    def broken():
        yield frame_atoms(_frame(0.0, "aimd", energy=-1.0))
        raise ConnectionError("database went away")

    with pytest.raises(ConnectionError):
        write_frames(broken(), path)
    assert list(tmp_path.iterdir()) == []

    # an AIMD segment that overshoots its end (a correction shortened its step)
    frames = [_frame(0.0, "aimd"), _frame(2.0, "aimd"), _frame(1.5, "mlpmd"),
              _frame(3.0, "mlpmd")]
    summary = write_frames((frame_atoms(f) for f in frames), path)
    assert [a.info["time_fs"] for a in read(path, ":")] == [0.0, 2.0, 1.5, 3.0]
    assert (summary.first_fs, summary.last_fs, summary.total) == (0.0, 3.0, 4)
    assert any(n.startswith("cycle 1: frames not later than the frame before them")
               for n in summary.notes())
