"""LAMMPS + MLIP MLP-MD segments against a fake lmp and the fake mlp.

The fakes read the files our maker writes (in.lammps, mlip.ini, data.lammps,
state.als) and write LAMMPS's dump and log; a γ break ends with MLIP's
message and exit status 8, which the segment must treat as a normal end.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io.lammpsdata import read_lammps_data

from engine_fakes import FAKE_MLP, fake_command
from haml_flows.engines.commands import EngineError
from haml_flows.engines.frames import atoms_with_velocities
from haml_flows.engines.lammps import LammpsError, LammpsMlpMdMaker, lammps_frame
from haml_flows.engines.reference import LennardJonesAimdSegmentMaker
from haml_flows.engines.training import MtpTrainMaker
from haml_flows.mtp.frames import cfg_to_frames
from haml_flows.spec import MlpMdSpec, MtpSpec
from haml_flows.systems import li_lpsc_mini



@pytest.fixture(scope="module")
def trained():
    """An AIMD segment on the analytic reference and an MTP trained on it."""
    maker = LennardJonesAimdSegmentMaker(n_steps=12, mb_velocity_seed=3)
    aimd = LennardJonesAimdSegmentMaker.make.original(maker, li_lpsc_mini(li_layers=1))
    train = MtpTrainMaker(mtp=MtpSpec(level=6, radial_iterations=5))
    return aimd, MtpTrainMaker.make.original(train, aimd.trajectory)


def _maker(**kwargs) -> LammpsMlpMdMaker:
    return LammpsMlpMdMaker(mlpmd=MlpMdSpec(**kwargs), lmp_cmd=fake_command("fake_lmp.py"), mlp_cmd=FAKE_MLP)


def _run(maker, aimd, doc):
    return LammpsMlpMdMaker.make.original(
        maker, aimd.structure, doc.potential, doc.training_set
    )


def test_inputs(in_tmp, trained):
    aimd, doc = trained
    maker = _maker(gamma_break=7.5, time_step=0.5, temperature=450.0, max_steps=30)
    symbols = maker.write_inputs(in_tmp, aimd.structure, doc.potential, doc.training_set)
    assert symbols == ["Li", "P", "S", "Cl"]
    ini = dict(line.split() for line in (in_tmp / "mlip.ini").read_text().splitlines())
    assert ini == {
        "mtp-filename": "pot.mtp", "calculate-efs": "TRUE", "select": "TRUE",
        "select:threshold": "2.0", "select:threshold-break": "7.5",
        "select:save-selected": "preselected.cfg", "select:load-state": "state.als",
    }
    script = (in_tmp / "in.lammps").read_text()
    assert "pair_style      mlip mlip.ini" in script
    assert "fix             nvt all nvt temp 450.0 450.0 0.025" in script
    assert "timestep        0.0005" in script and "run             30" in script
    assert "vx vy vz" in script and "dump_modify     traj element Li P S Cl" in script
    with open(in_tmp / "data.lammps") as handle:
        data = read_lammps_data(handle, Z_of_type={1: 3, 2: 15, 3: 16, 4: 17},
                                units="metal", atom_style="atomic")
    incoming = atoms_with_velocities(aimd.structure)
    assert list(data.numbers) == list(incoming.numbers)
    assert np.allclose(data.positions, incoming.positions, atol=1e-8)
    assert np.allclose(data.get_velocities(), incoming.get_velocities(), atol=1e-8)


def test_gamma_break_is_a_normal_end(in_tmp, trained, monkeypatch):
    aimd, doc = trained
    monkeypatch.setenv("FAKE_LMP_LOG", str(in_tmp / "lmp_calls.jsonl"))
    out = _run(_maker(max_steps=400, gamma_break=1.2, gamma_select=1.1, temperature=3000.0,
                      save_interval=5), aimd, doc)
    assert "Breaking threshold exceeded" in (in_tmp / "lmp.out").read_text()
    assert out.stop_reason == "gamma_break" and out.engine == "lammps+mlip"
    assert out.gamma_at_stop > 1.2 and out.n_steps < 400
    # the break grade closes the history at the step after the last dumped one
    assert out.gamma_history[-1] == [out.n_steps + 1, pytest.approx(out.gamma_at_stop)]
    assert all(g <= 1.2 for _, g in out.gamma_history[:-1])
    steps = [p["step"] for p in out.trajectory.frame_properties]
    assert steps[-1] == out.n_steps and all(s % 5 == 0 for s in steps[:-1])
    assert out.simulated_fs == pytest.approx(0.5 * out.n_steps)
    # the final frame carries the velocities of the last dumped step
    assert np.allclose(
        out.structure.site_properties["velocities"],
        out.trajectory.frame_properties[-1]["velocities"],
    )
    assert out.temperature_start == pytest.approx(aimd.temperature_end, rel=0.03)
    (call,) = [json.loads(x) for x in (in_tmp / "lmp_calls.jsonl").read_text().splitlines()]
    assert call["argv"] == ["-in", "in.lammps"]
    assert call["mlip_ini"]["select:threshold-break"] == "1.2"
    assert out.cost.wall_seconds > 0 and out.cost.cpu_seconds > 0


def test_a_break_in_the_first_force_call_hands_back_the_start(in_tmp, trained):
    aimd, doc = trained
    # below the start frame's own grade, so MLIP breaks before the first dump
    # (below what a spec accepts, gamma_break > 1: set past its validation)
    maker = _maker(max_steps=40)
    maker.mlpmd = maker.mlpmd.model_copy(update={"gamma_break": 0.5})
    out = _run(maker, aimd, doc)
    assert (in_tmp / "dump.lammpstrj").read_text() == ""
    assert out.stop_reason == "gamma_break" and out.n_steps == 0
    assert out.simulated_fs == 0.0 and out.gamma_at_stop > 0.5
    assert np.allclose(out.structure.cart_coords, aimd.structure.cart_coords)
    assert out.temperature_end == pytest.approx(aimd.temperature_end, rel=1e-6)
    assert np.isfinite(out.trajectory.frame_properties[0]["energy"])


def test_step_limit_when_gamma_stays_below_break(in_tmp, trained):
    aimd, doc = trained
    out = _run(_maker(max_steps=20, gamma_break=1e9, save_interval=5), aimd, doc)
    assert out.stop_reason == "max_steps" and out.n_steps == 20
    assert [p["step"] for p in out.trajectory.frame_properties] == [0, 5, 10, 15, 20]
    assert [s for s, _ in out.gamma_history] == [0, 5, 10, 15, 20]
    assert out.gamma_at_stop == pytest.approx(out.gamma_history[-1][1])
    energies = [p["energy"] for p in out.trajectory.frame_properties]
    assert np.all(np.isfinite(energies))


def test_a_crash_is_an_error_with_the_message(in_tmp, trained, monkeypatch):
    aimd, doc = trained
    monkeypatch.setenv("FAKE_LMP_MODE", "crash")
    with pytest.raises(LammpsError, match="exit status 1:\nERROR: Lost atoms"):
        _run(_maker(max_steps=20), aimd, doc)


def test_lammps_needs_both_commands(in_tmp, trained):
    aimd, doc = trained
    with pytest.raises(EngineError, match="HAML_LMP_CMD"):
        _run(LammpsMlpMdMaker(lmp_cmd=None, mlp_cmd=FAKE_MLP), aimd, doc)
    with pytest.raises(EngineError, match="HAML_MLP_CMD"):
        _run(LammpsMlpMdMaker(lmp_cmd="lmp", mlp_cmd=None), aimd, doc)


def test_skewed_cell_is_rotated_with_its_velocities():
    from ase.build import bulk

    atoms = bulk("Li", "bcc", a=3.44).repeat((2, 2, 2))
    atoms.set_cell(atoms.cell[:] + [[0, 0.4, 0.3], [0.2, 0, 0.1], [0.3, 0.2, 0]],
                   scale_atoms=True)
    rng = np.random.default_rng(0)
    atoms.set_velocities(rng.normal(size=(len(atoms), 3)) * 0.01)
    rotated = lammps_frame(atoms)
    cell = rotated.cell[:]
    assert cell[0, 1] == cell[0, 2] == cell[1, 2] == 0.0
    assert np.allclose(rotated.get_all_distances(mic=True), atoms.get_all_distances(mic=True))
    # velocities turn with the positions: projections on bonds are unchanged
    bonds, rbonds = atoms.positions - atoms.positions[0], rotated.positions - rotated.positions[0]
    assert np.allclose(np.sum(atoms.get_velocities() * bonds, axis=1),
                       np.sum(rotated.get_velocities() * rbonds, axis=1))


def test_skewed_cell_round_trips_through_lammps(in_tmp, trained):
    """A triclinic cell goes to LAMMPS rotated and comes back from the dump intact."""
    from pymatgen.core import Lattice, Structure

    aimd, doc = trained
    start = aimd.structure
    matrix = start.lattice.matrix.copy()
    matrix[1] += [0.8, 0.0, 0.0]  # tilt b towards a
    matrix[2] += [0.3, -0.4, 0.0]
    skewed = Structure(Lattice(matrix), start.species, start.frac_coords,
                       site_properties={"velocities": start.site_properties["velocities"]})
    out = LammpsMlpMdMaker.make.original(
        _maker(max_steps=4, gamma_break=1e9, save_interval=1),
        skewed, doc.potential, doc.training_set,
    )
    first = out.trajectory[0]
    assert np.allclose(first.distance_matrix, skewed.distance_matrix, atol=1e-6)
    assert np.allclose(first.lattice.abc, skewed.lattice.abc)
    assert np.allclose(first.lattice.angles, skewed.lattice.angles)
    incoming = atoms_with_velocities(skewed)
    speeds = np.linalg.norm(out.trajectory.frame_properties[0]["velocities"], axis=1)
    assert np.allclose(speeds, np.linalg.norm(incoming.get_velocities(), axis=1),
                       rtol=1e-6, atol=1e-9)


def test_hot_start_is_cooled_before_lammps_reads_it(in_tmp, trained):
    aimd, doc = trained
    hot = aimd.structure.copy()
    velocities = 2.0 * np.asarray(aimd.structure.site_properties["velocities"])
    hot.add_site_property("velocities", velocities.tolist())
    maker = _maker(max_steps=5, gamma_break=1e9, temperature=aimd.temperature_end)
    out = LammpsMlpMdMaker.make.original(maker, hot, doc.potential, doc.training_set)
    assert out.start_cooled_from == pytest.approx(4.0 * aimd.temperature_end, rel=1e-6)
    assert out.temperature_start == pytest.approx(aimd.temperature_end, rel=0.05)


def test_mlip_grades_the_candidates_and_its_selection_is_kept(in_tmp, trained):
    aimd, doc = trained
    maker = _maker(max_steps=60, gamma_break=1e9, gamma_select=1.05, max_selected=3,
                   temperature=1500.0)
    out = LammpsMlpMdMaker.make.original(
        maker, aimd.structure, doc.potential, doc.training_set,
        doc.active_set.model_dump(), doc.active_set_slots,
    )
    # MLIP builds state.als from the training job's candidate frames
    written = cfg_to_frames((in_tmp / "train.cfg").read_text())
    stored = cfg_to_frames(doc.training_set)
    assert len(written) == len(doc.active_set.candidate_frames)
    for atoms, index in zip(written, doc.active_set.candidate_frames):
        assert np.allclose(atoms.positions, stored[index].positions, atol=1e-5)
    # what MLIP saved above select:threshold, at most max_selected of it
    preselected = cfg_to_frames((in_tmp / "preselected.cfg").read_text())
    assert len(preselected) > 3
    assert out.grade_mode == "neighborhood" and out.gamma_select == 1.05
    assert out.n_selected == 3 == len(out.selected)
    # (the breaking step is saved too, above gamma_break: not kept)
    grades = sorted(a.info["MV_grade"] for a in preselected if a.info["MV_grade"] <= 1e9)
    assert sorted(p["gamma"] for p in out.selected.frame_properties) == pytest.approx(grades[-3:])
