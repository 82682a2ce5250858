"""CP2K AIMD segments: input checks, and one real run of a few steps on a tiny cell.

Needs Debian's cp2k (``apt-get install cp2k``: the ``cp2k.psmp`` executable
and its data files in /usr/share/cp2k); CI installs it when it is missing.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from ase import units
from pymatgen.core import Lattice, Structure
from pymatgen.io.cp2k.inputs import Cp2kInput

from haml_flows.engines.cp2k import (
    AU_VELOCITY,
    Cp2kAimdSegmentMaker,
    Cp2kInputError,
    read_cp2k_md,
)
from haml_flows.engines.reference import seeded_velocities
from haml_flows.systems import li_lpsc_mini

DATA_DIR = "/usr/share/cp2k"
CP2K = shutil.which("cp2k.psmp") or shutil.which("cp2k")
needs_cp2k = pytest.mark.skipif(
    CP2K is None, reason="cp2k not installed (apt-get install cp2k)"
)


@needs_cp2k
def test_inputs_pbe_gth_d3_nose_hoover_and_velocities(in_tmp):
    structure = li_lpsc_mini(li_layers=1)
    structure.add_site_property(
        "velocities", seeded_velocities(structure, 300.0, 1).tolist()
    )
    maker = Cp2kAimdSegmentMaker(n_steps=7, time_step=1.0, temperature=350.0,
                                 thermostat_time=30.0, data_dir=DATA_DIR)
    maker.write_inputs(structure)
    text = (in_tmp / "cp2k.inp").read_text()
    inp = Cp2kInput.from_str(text)
    dft = inp["FORCE_EVAL"]["DFT"]
    assert "PBE" in dft["XC"]["XC_FUNCTIONAL"].subsections
    pair = dft["XC"]["VDW_POTENTIAL"]["PAIR_POTENTIAL"]
    assert pair["TYPE"].values[0] == "DFTD3"
    assert pair["REFERENCE_FUNCTIONAL"].values[0] == "PBE"
    assert "KPOINTS" not in dft.subsections  # Gamma point only
    md = inp["MOTION"]["MD"]
    assert md["ENSEMBLE"].values[0] == "NVT" and md["STEPS"].values[0] == 7
    assert md["TEMPERATURE"].values[0] == 350.0
    assert md["THERMOSTAT"]["TYPE"].values[0] == "NOSE"
    assert md["THERMOSTAT"]["NOSE"]["TIMECON"].values[0] == 30.0
    # every element has a MOLOPT basis and a GTH-PBE potential from CP2K's files
    lines = [line.split() for line in text.splitlines()]
    bases = [w[1] for w in lines if w[:1] == ["BASIS_SET"]]
    potentials = [w[1] for w in lines if w[:1] == ["POTENTIAL"]]
    assert bases == ["DZVP-MOLOPT-SR-GTH"] * 4
    assert len(potentials) == 4 and all(p.startswith("GTH-PBE-q") for p in potentials)
    for element in ("Li", "P", "S", "Cl"):
        assert f"ELEMENT {element}" in text
    # velocities in bohr per atomic time unit, in site order
    block = text.split("&VELOCITY")[1].split("&END VELOCITY")[0].split()
    written = np.array(block, dtype=float).reshape(-1, 3) * AU_VELOCITY
    assert np.allclose(written, structure.site_properties["velocities"], rtol=1e-12)


@needs_cp2k
def test_missing_data_names_the_setting(in_tmp, tmp_path):
    with pytest.raises(Cp2kInputError, match="HAML_CP2K_DATA_DIR"):
        Cp2kAimdSegmentMaker(data_dir=str(tmp_path)).write_inputs(li_lpsc_mini(li_layers=1))
    maker = Cp2kAimdSegmentMaker(data_dir=DATA_DIR, basis="NO-SUCH-BASIS")
    with pytest.raises(Cp2kInputError, match="no basis NO-SUCH-BASIS for Cl in /usr/share/cp2k"):
        maker.write_inputs(li_lpsc_mini(li_layers=1))


@needs_cp2k
@pytest.mark.slow
def test_real_cp2k_segment_on_a_tiny_cell(in_tmp):
    """Two MD steps of bcc Li (2 atoms, SZV basis, low cutoff) in real CP2K."""
    cell = Structure(Lattice.cubic(3.44), ["Li", "Li"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    velocities = np.array([[2e-3, -1e-3, 5e-4], [-2e-3, 1e-3, -5e-4]])  # ASE units
    cell.add_site_property("velocities", velocities.tolist())
    maker = Cp2kAimdSegmentMaker(
        n_steps=2, time_step=1.0, basis="SZV-MOLOPT-SR-GTH", cutoff=150,
        cp2k_cmd=CP2K, data_dir=DATA_DIR,
        run_cp2k_kwargs={"custodian_kwargs": {"polling_time_step": 1}},
    )
    doc = Cp2kAimdSegmentMaker.make.original(maker, cell)

    assert doc.n_steps == 2 and len(doc.trajectory) == 3
    assert doc.simulated_fs == pytest.approx(2.0)
    props = doc.trajectory.frame_properties
    # CP2K started from our velocities (its unit constants differ from ASE's by 4e-6)
    assert np.allclose(props[0]["velocities"], velocities, rtol=1e-5, atol=1e-12)
    forces = np.asarray(props[1]["forces"])
    assert forces.shape == (2, 3) and np.all(np.isfinite(forces))
    # near-equilibrium bcc: small forces (the low cutoff leaves a grid error)
    assert 0 < np.abs(forces).max() < 0.5
    # Li GTH-PBE-q3 holds three electrons: a few hundred eV per atom, bound
    assert -250.0 < props[0]["energy"] / 2 < -150.0
    assert doc.structure.site_properties["velocities"] == props[-1]["velocities"]
    assert doc.cost.wall_seconds > 0 and doc.cost.cpu_seconds > 0
    again = read_cp2k_md(in_tmp, 1.0)
    assert again.n_steps == 2
    # positions move by v dt between steps (1 fs)
    frac = doc.trajectory[1].frac_coords - doc.trajectory[0].frac_coords
    step = (frac - np.round(frac)) @ cell.lattice.matrix
    assert np.allclose(step, velocities * units.fs, rtol=0.05, atol=2e-5)
