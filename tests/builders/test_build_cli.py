"""``haml build li-lpsc`` and ``haml build li-lifsi-dme``."""

import re
import shutil
import subprocess

import pytest
from pymatgen.core import Structure
from typer.testing import CliRunner

from haml_flows.builders.electrolyte import packmol_available
from haml_flows.cli.build import build_app

runner = CliRunner()


def test_li_lpsc_se(tmp_path):
    out = tmp_path / "x.cif"
    result = runner.invoke(
        build_app,
        ["li-lpsc", "--dopant", "Se", "--concentration", "0.25", "--atoms", "112", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "composition: Li80 P4 Se1 S19 Cl4" in result.output
    assert "atoms: 108" in result.output and "mismatch: 1.24 %" in result.output
    assert len(Structure.from_file(out)) == 108


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dopant", "Se", "--concentration", "0.3"], "closest feasible concentration is 0.25"),
        (["--dopant", "Te"], "unknown dopant 'Te'"),
        (["--max-mismatch", "0.005"], "closest feasible choice"),
    ],
)
def test_li_lpsc_bad_input(args, message):
    result = runner.invoke(build_app, ["li-lpsc", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


@pytest.mark.skipif(not packmol_available(), reason="packmol not on PATH")
def test_li_lifsi_dme(tmp_path):
    out = tmp_path / "l.cif"
    result = runner.invoke(build_app, ["li-lifsi-dme", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "atoms: 190 (36 Li slab + 1 LiFSI + 9 DME)" in result.output
    shell = re.search(
        r"Li\+ \(atom 36\): 4 O at (2\.\d\d)-(2\.\d\d) A \(one of its FSI-\), FSI- N (\d+\.\d\d) A, "
        r"(\d+\.\d\d) A from the metal",
        " ".join(result.output.split()),
    )
    assert shell, result.output
    low, high, nitrogen, metal = map(float, shell.groups())
    assert 1.8 <= low <= high <= 2.6 and nitrogen < 5.0 and metal > 8.0
    assert len(Structure.from_file(out)) == 190


def _haml(*args: str) -> subprocess.CompletedProcess:
    """The installed ``haml`` command, as a user runs it."""
    return subprocess.run(
        [shutil.which("haml"), *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("atoms", ["10", "-5"])
def test_impossible_atom_count_is_one_line(atoms):
    result = _haml("build", "li-lpsc", "--atoms", atoms)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"error: atoms={atoms} is below the smallest Li(100) | LPSC(001) cell with "
        "mismatch <= 4 %, 42 atoms (26 LPSC + 16 Li(100), mismatch 1.24 %): use atoms >= 40"
    ]
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not packmol_available(), reason="packmol not on PATH")
def test_packmol_failure_says_what_was_asked_and_what_to_change():
    """It printed Packmol's raw stderr: b'STOP 173\\n'."""
    result = _haml("build", "li-lifsi-dme", "--li-supercell", "1")
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith(
        "error: packmol could not pack 1 Li+ (each with an O of its FSI- and of 3 DME "
        "within 2.2 A), 1 FSI- and 9 DME into a 1.44 x 1.44 x "
    )
    assert "Packmol was unable to put the molecules in the desired regions" in line
    assert line.endswith(
        "(exit code 173); the box is 1.44 A wide, less than a DME molecule (7.7 A): "
        "use a larger li_supercell"
    )
    assert "STOP" not in result.stdout + result.stderr


def test_without_output_it_says_that_nothing_was_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(build_app, ["li-lpsc", "--atoms", "112"])
    assert result.exit_code == 0, result.output
    assert "nothing written (give -o FILE" in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []
    out = tmp_path / "x.cif"
    result = runner.invoke(build_app, ["li-lpsc", "--atoms", "112", "-o", str(out)])
    assert f"wrote {out.resolve()}" in " ".join(result.output.split())
