"""Real VASP MD outputs from public test data, and the numbers taken from them.

The files are not in this repository. Debian's ``pymatgen-test-files``
package (pymatgen 2022.11.7's test files) carries two VASP MD vasprun.xml;
:func:`public_vasp_file` takes them from an installed package or downloads
the package with ``apt-get download`` (as CI can) and extracts only those.
pymatgen's PyPI sdist (782.6 kB for 2026.10.24) carries no test files.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

DEBIAN_PACKAGE = "pymatgen-test-files"
PACKAGE_DIR = "usr/share/doc/pymatgen-test-files/examples/test_files"

LGPS_NVT = {
    "file": "vasprun.bad_random_seed.xml",
    "source": "Debian pymatgen-test-files 2022.11.7-3 (materialsproject/pymatgen "
    "test_files/vasprun.bad_random_seed.xml)",
    "formula": "Li20 Ge2 P4 S24",
    "n_atoms": 50,
    "tebeg": 800.0,
    "potim": 2.0,
    "steps": 264,  # of NSW = 300
    "energy_first": -225.88307402,  # e_fr_energy, eV
    "energy_last": -219.56290804,
    "kinetic_first": 5.06563916,  # eV
    "kinetic_last": 4.50583488,
    "vasp_temperature_first": 799.79,  # 2 E_kin / ((3N - 3) k_B): VASP's count, ~TEBEG
    "ase_temperature_first": 783.79,  # 2 E_kin / (3N k_B)
    "ase_temperature_mean": 780.16,  # over the 264 steps; VASP's count: 796.08
}
"""Li10GeP2S12, NVT (MDALGO = 2) at 800 K, 2 fs."""

ML_MD = {
    "file": "vasprun.xml.ml_md",
    "source": "Debian pymatgen-test-files 2022.11.7-3 (materialsproject/pymatgen "
    "test_files/vasprun.xml.ml_md)",
    "formula": "H32 C32 O16",
    "n_atoms": 80,
    "tebeg": 300.0,
    "steps": 20,
    "energy_first": -525.07195568,
    "energy_last": -522.64962657,
    "kinetic_first": 3.17809233,
    "ase_temperature_first": 307.34,
}
"""VASP's machine-learned force field MD (ML_LMLFF, ISIF = 0: no stress written)."""

SI_MD_FIRST_STEP = {
    "source": "materialsproject/atomate2 tests/test_data/vasp/Si_molecular_dynamics/"
    "molecular_dynamics/outputs/vasprun.xml",
    "n_atoms": 2,
    "tebeg": 300.0,
    "kinetic": 0.03877824,  # eV, first ionic step; VASP drew the velocities at TEBEG
    "energy": -11.47054172,
}
"""atomate2's Si2 MDMaker test run (VASP 5.4.4, NSW 3, POTIM 2): at N = 2, VASP's
start at TEBEG holds 2 E_kin / ((3N - 3) k_B) = 300.0 K, not the 150.0 K of 3N."""


def public_vasp_file(name: str, cache: Path) -> Path:
    """The public file ``name``: installed, cached, or extracted from the Debian package."""
    installed = Path("/") / PACKAGE_DIR / name
    if installed.exists():
        return installed
    target = cache / name
    if target.exists():
        return target
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        pytest.skip(f"needs apt-get to fetch Debian's {DEBIAN_PACKAGE}")
    subprocess.run(
        ["apt-get", "download", "-q", DEBIAN_PACKAGE], cwd=cache, check=True,
        capture_output=True, timeout=900,
    )
    deb = next(cache.glob(f"{DEBIAN_PACKAGE}_*.deb"))
    wanted = {f"./{PACKAGE_DIR}/{f}" for f in (LGPS_NVT["file"], ML_MD["file"])}
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as tar_stream:
        with tarfile.open(fileobj=tar_stream.stdout, mode="r|") as archive:
            for member in archive:
                if member.name in wanted:
                    (cache / Path(member.name).name).write_bytes(archive.extractfile(member).read())
    deb.unlink()
    return target
