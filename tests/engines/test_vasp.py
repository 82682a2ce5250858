"""VASP AIMD segments under custodian, against a fake vasp writing VASP's formats.

The fake (``fake_vasp.py``) runs the MD the INCAR asks for on GFN1-xTB and
writes vasprun.xml, OUTCAR, OSZICAR, XDATCAR and CONTCAR; these tests check
the inputs our maker hands VASP (atomate2's mock_vasp checks, here on the
files the fake received) and that the segment reads VASP's outputs back.
"""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from ase import units
from custodian.vasp.handlers import (
    FrozenJobErrorHandler,
    IncorrectSmearingHandler,
    LargeSigmaHandler,
    MeshSymmetryErrorHandler,
    PositiveEnergyErrorHandler,
    StdErrHandler,
    VaspErrorHandler,
)
from pymatgen.io.vasp import Incar, Kpoints, Poscar, Xdatcar

import fake_vasp
import public_vasp_data as public
from engine_fakes import fake_command
from haml_flows.engines.commands import EngineError
from haml_flows.engines.frames import atoms_with_velocities
from haml_flows.engines.reference import seeded_velocities
from haml_flows.engines.training import MtpTrainMaker
from haml_flows.engines.vasp import (
    VaspAimdSegmentMaker,
    kinetic_temperature,
    read_vasp_md,
    read_vasprun_frames,
)
from haml_flows.spec import MtpSpec

FAST_CUSTODIAN = {"custodian_kwargs": {"polling_time_step": 0.2, "monitor_freq": 1}}


def _maker(**kwargs) -> VaspAimdSegmentMaker:
    kwargs.setdefault("n_steps", 4)
    return VaspAimdSegmentMaker(
        vasp_cmd=fake_command("fake_vasp.py"),
        write_input_set_kwargs={"potcar_spec": True},  # no POTCARs here
        run_vasp_kwargs=FAST_CUSTODIAN,
        **kwargs,
    )


def _run(maker, structure):
    return VaspAimdSegmentMaker.make.original(maker, structure)


@pytest.fixture
def hot_cell(li_cell):
    """The Li cell with velocities (ASE units) as an MLP-MD segment hands over."""
    cell = li_cell.copy()
    cell.add_site_property("velocities", seeded_velocities(cell, 600.0, 3).tolist())
    return cell


def test_inputs_are_the_papers_and_outputs_are_read_back(in_tmp, hot_cell, monkeypatch):
    log = in_tmp / "vasp_calls.jsonl"
    monkeypatch.setenv("FAKE_VASP_LOG", str(log))
    doc = _run(_maker(), hot_cell)

    incar = Incar.from_file("INCAR")
    paper = {
        "GGA": "Pe", "IVDW": 11, "ENCUT": 520, "ISYM": 0, "IBRION": 0, "MDALGO": 2,
        "NSW": 4, "POTIM": 1.0, "TEBEG": 300.0, "TEEND": 300.0, "ISPIN": 1,
    }
    assert {k: incar[k] for k in paper} == paper
    assert "MAGMOM" not in incar
    kpoints = Kpoints.from_file("KPOINTS")
    assert kpoints.style == Kpoints.supported_modes.Gamma
    assert [list(k) for k in kpoints.kpts] == [[1, 1, 1]]
    # the POSCAR VASP read carries the incoming velocities, in Angstrom/fs
    poscar = Poscar.from_file("POSCAR", check_for_potcar=False)
    incoming = np.asarray(hot_cell.site_properties["velocities"])
    assert np.allclose(poscar.velocities, incoming * units.fs, atol=1e-12)
    (call,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert np.allclose(call["velocities"], incoming * units.fs)

    # frames: one per ionic step, with the reference's own energies and forces
    assert doc.n_steps == 4 and len(doc.trajectory) == 4
    assert doc.simulated_fs == pytest.approx(4.0)
    assert len(Xdatcar("XDATCAR").structures) == 4
    from tblite.ase import TBLite

    first = doc.trajectory[0]
    atoms = atoms_with_velocities(first)
    atoms.calc = TBLite(method="GFN1-xTB", verbosity=0, electronic_temperature=300.0)
    props = doc.trajectory.frame_properties[0]
    assert props["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-6)
    assert np.allclose(props["forces"], atoms.get_forces(), atol=1e-6)
    assert np.allclose(props["stress"], atoms.get_stress(), atol=1e-7)
    # the start temperature is that of the incoming velocities, counted as ASE counts
    atoms.set_velocities(incoming)
    assert doc.temperature_start == pytest.approx(atoms.get_temperature(), rel=1e-6)

    # the final state is CONTCAR's, velocities back in ASE units
    contcar = Poscar.from_file("CONTCAR", check_for_potcar=False)
    assert np.allclose(
        doc.structure.site_properties["velocities"],
        np.asarray(contcar.velocities) / units.fs,
    )
    assert doc.cost.cores == 1 and doc.cost.cpu_seconds > 0
    assert doc.cost.wall_seconds > 0


def test_md_handlers_are_atomate2s(in_tmp):
    handlers = _maker().md_maker().run_vasp_kwargs["handlers"]
    assert [type(h) for h in handlers] == [
        VaspErrorHandler, MeshSymmetryErrorHandler, PositiveEnergyErrorHandler,
        FrozenJobErrorHandler, StdErrHandler, LargeSigmaHandler,
        IncorrectSmearingHandler,
    ]


def test_first_segment_draws_seeded_velocities(in_tmp, li_cell):
    a = _maker(n_steps=1).prepared_structure(li_cell)
    b = _maker(n_steps=1).prepared_structure(li_cell)
    c = _maker(n_steps=1, mb_velocity_seed=9).prepared_structure(li_cell)
    va = np.asarray(a.site_properties["velocities"])
    assert np.allclose(va, b.site_properties["velocities"])
    assert not np.allclose(va, c.site_properties["velocities"])
    assert np.allclose(va.sum(axis=0), 0.0, atol=1e-12)  # no centre-of-mass drift


def test_frames_join_the_training_set(in_tmp, hot_cell):
    doc = _run(_maker(n_steps=5), hot_cell)
    train = MtpTrainMaker(mtp=MtpSpec(level=4, radial_iterations=2, holdout_fraction=0.2))
    out = MtpTrainMaker.make.original(train, doc.trajectory)
    assert out.training_set_size == 5
    from haml_flows.mtp.frames import cfg_to_frames

    frames = cfg_to_frames(out.training_set)
    assert frames[2].get_potential_energy() == pytest.approx(
        doc.trajectory.frame_properties[2]["energy"]
    )
    assert np.allclose(frames[2].get_forces(), doc.trajectory.frame_properties[2]["forces"])


def test_custodian_corrects_an_error_and_the_segment_finishes(
    in_tmp, hot_cell, monkeypatch
):
    """VASP stops with REAL_OPTLAY; VaspErrorHandler sets LREAL = .FALSE.; rerun."""
    monkeypatch.setenv("FAKE_VASP_ERROR", "real_optlay")
    log = in_tmp / "vasp_calls.jsonl"
    monkeypatch.setenv("FAKE_VASP_LOG", str(log))
    doc = _run(_maker(incar_updates={"LREAL": "Auto"}), hot_cell)

    calls = [json.loads(line)["incar"] for line in log.read_text().splitlines()]
    assert [c["LREAL"] for c in calls] == ["Auto", False]
    custodian_log = json.loads((in_tmp / "custodian.json").read_text())
    (correction,) = custodian_log[0]["corrections"]
    assert correction["handler"]["@class"] == "VaspErrorHandler"
    assert correction["errors"] == ["real_optlay"]
    assert correction["actions"] == [
        {"dict": "INCAR", "action": {"_set": {"LREAL": False}}}
    ]
    # custodian kept the failed run's files before correcting
    with tarfile.open(next(in_tmp.glob("error.1.tar.gz"))) as tar:
        assert any(name.endswith("INCAR") for name in tar.getnames())
    assert doc.n_steps == 4 and len(doc.trajectory) == 4


def test_cpu_time_counts_every_rank(in_tmp, hot_cell, monkeypatch):
    from pymatgen.io.vasp import Outcar

    monkeypatch.setenv("FAKE_VASP_RANKS", "4")
    doc = _run(_maker(n_steps=2), hot_cell)
    stats = Outcar("OUTCAR").run_stats
    assert doc.cost.cores == 4
    assert doc.cost.cpu_seconds == pytest.approx(4 * stats["Total CPU time used (sec)"])


def test_missing_command_names_the_setting(in_tmp, hot_cell, tmp_path, monkeypatch):
    with pytest.raises(EngineError, match="HAML_VASP_CMD"):
        _run(VaspAimdSegmentMaker(vasp_cmd=None), hot_cell)
    fworker = tmp_path / "my_fworker.yaml"
    fworker.write_text("name: w\nenv:\n  lmp_cmd: lmp\n")
    from fireworks import fw_config

    monkeypatch.setattr(fw_config, "FWORKER_LOC", str(fworker))
    with pytest.raises(EngineError, match="env.vasp_cmd of my_fworker.yaml"):
        _run(VaspAimdSegmentMaker(vasp_cmd=">>vasp_cmd<<"), hot_cell)


def test_start_and_end_temperatures_count_alike(in_tmp, hot_cell):
    """The start was OSZICAR's T (3N - 3), the end ASE's (3N): 6.7 % apart at 16 atoms."""
    doc = _run(_maker(n_steps=3), hot_cell)
    n = len(hot_cell)
    kinetic = [step["kinetic"] for step in _vasprun_steps(in_tmp)]
    frame_temperatures = [p["temperature"] for p in doc.trajectory.frame_properties]
    assert frame_temperatures == pytest.approx([2 * k / (3 * n * units.kB) for k in kinetic], rel=1e-9)
    assert doc.temperature_start == frame_temperatures[0]
    contcar = Poscar.from_file("CONTCAR", check_for_potcar=False)
    from ase.data import atomic_masses

    masses = atomic_masses[[site.specie.Z for site in contcar.structure]] * units._amu
    velocities = np.asarray(contcar.velocities) * 1e5  # Angstrom/fs -> m/s
    kinetic_end = 0.5 * (masses[:, None] * velocities**2).sum() / units._e
    assert doc.temperature_end == pytest.approx(2 * kinetic_end / (3 * n * units.kB), rel=1e-6)
    # VASP's own T= of the first step counts 3N - 3: N / (N - 1) times ours
    oszicar_t = float(open("OSZICAR").read().split(" T=")[1].split()[0])
    assert oszicar_t == pytest.approx(doc.temperature_start * n / (n - 1), abs=0.6)


def _vasprun_steps(directory):
    from pymatgen.io.vasp import Vasprun

    return Vasprun(str(directory / "vasprun.xml"), parse_potcar_file=False).ionic_steps


def test_gzipped_run_folder_reads_like_a_plain_one(in_tmp, hot_cell):
    """atomate2 stores a run folder gzipped (vasprun.xml.gz, OUTCAR.gz, ...)."""
    import shutil

    from atomate2.common.files import gzip_output_folder

    _run(_maker(n_steps=3), hot_cell)
    plain = read_vasp_md(in_tmp, 1.0)
    zipped = in_tmp / "zipped"
    shutil.copytree(in_tmp, zipped, ignore=shutil.ignore_patterns("zipped"))
    gzip_output_folder(zipped, True, [])
    assert not (zipped / "vasprun.xml").exists() and (zipped / "vasprun.xml.gz").exists()
    assert {p.name for p in zipped.glob("*.gz")} >= {
        "vasprun.xml.gz", "OUTCAR.gz", "OSZICAR.gz", "CONTCAR.gz", "XDATCAR.gz",
    }
    read = read_vasp_md(zipped, 1.0)
    assert read.properties == plain.properties
    assert read.structure == plain.structure
    assert read.structure.site_properties == plain.structure.site_properties
    for key in ("n_steps", "simulated_fs", "temperature_start", "temperature_end", "cpu_seconds", "cores"):
        assert getattr(read, key) == getattr(plain, key), key


def test_fake_oszicar_counts_as_vasp_does():
    """Public run: VASP started atomate2's Si2 test at TEBEG = 300 K with 3N - 3."""
    si = public.SI_MD_FIRST_STEP
    assert fake_vasp.vasp_temperature(si["kinetic"], si["n_atoms"]) == pytest.approx(si["tebeg"], abs=0.01)
    assert kinetic_temperature(si["kinetic"], si["n_atoms"]) == pytest.approx(si["tebeg"] / 2, abs=0.01)
    lgps = public.LGPS_NVT
    assert fake_vasp.vasp_temperature(lgps["kinetic_first"], lgps["n_atoms"]) == pytest.approx(
        lgps["vasp_temperature_first"], abs=0.01
    )


@pytest.fixture(scope="module")
def public_vasprun(request):
    """Path of a public VASP MD vasprun.xml (see public_vasp_data)."""
    cache = request.config.cache.mkdir("pymatgen-test-files")
    return lambda name: public.public_vasp_file(name, cache)


@pytest.mark.parametrize("compressed", [False, True])
def test_reader_on_public_vasp_md(public_vasprun, tmp_path, compressed):
    import gzip

    lgps = public.LGPS_NVT
    path = public_vasprun(lgps["file"])
    if compressed:
        zipped = tmp_path / "vasprun.xml.gz"
        zipped.write_bytes(gzip.compress(path.read_bytes()))
        path = zipped
    structures, properties = read_vasprun_frames(path)
    assert len(structures) == lgps["steps"]
    assert structures[0].composition.formula == lgps["formula"]
    assert properties[0]["energy"] == lgps["energy_first"]
    assert properties[-1]["energy"] == lgps["energy_last"]
    temperatures = np.array([p["temperature"] for p in properties])
    assert temperatures[0] == pytest.approx(lgps["ase_temperature_first"], abs=0.01)
    assert temperatures.mean() == pytest.approx(lgps["ase_temperature_mean"], abs=0.01)
    assert temperatures[-1] == pytest.approx(
        kinetic_temperature(lgps["kinetic_last"], lgps["n_atoms"]), abs=1e-9
    )
    assert np.asarray(properties[0]["forces"]).shape == (lgps["n_atoms"], 3)
    assert len(properties[0]["stress"]) == 6


def test_reader_on_public_ml_md_without_stress(public_vasprun):
    ml = public.ML_MD
    structures, properties = read_vasprun_frames(public_vasprun(ml["file"]))
    assert len(structures) == ml["steps"]
    assert structures[0].composition.formula == ml["formula"]
    assert properties[0]["energy"] == ml["energy_first"]
    assert properties[-1]["energy"] == ml["energy_last"]
    assert properties[0]["temperature"] == pytest.approx(ml["ase_temperature_first"], abs=0.01)
    assert all(p["stress"] is None for p in properties)
