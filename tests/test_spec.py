"""Spec validation: bad input fails before anything runs, naming the field."""

from pathlib import Path

import pytest
import yaml

from haml_flows.spec import SpecError, load_spec, parse_spec
from haml_flows.runner import prepare_run

DATA = Path(__file__).parent / "data"
WORKFLOWS = Path(__file__).parents[1] / "workflows"


def _base() -> dict:
    return yaml.safe_load((DATA / "lj_small.yaml").read_text())


def _run_specs() -> list[Path]:
    """Shipped run specs; screens (a top-level 'screen' key) have their own schema."""
    paths = [*WORKFLOWS.glob("*.yaml"), DATA / "lj_small.yaml"]
    return [p for p in paths if "screen" not in (yaml.safe_load(p.read_text()) or {})]


def test_shipped_specs_validate_and_build():
    for path in _run_specs():
        prepared = prepare_run(path)
        assert len(prepared.structure) > 0
        assert prepared.run_id.startswith(prepared.spec.name)


@pytest.mark.parametrize(
    ("section", "key", "value", "field"),
    [
        ("reference", "stepz", 10, "reference.stepz: unknown key"),
        ("reference", "steps", 0, "reference.steps"),
        ("reference", "steps", -5, "reference.steps"),
        ("mlpmd", "max_steps", 0, "mlpmd.max_steps"),
        ("mlpmd", "gamma_break", 1.0, "mlpmd.gamma_break"),
        ("mtp", "level", 7, "mtp.level"),
        ("mtp", "level", 30, "mtp.level"),
        ("mtp", "species", ["Li", "Xx"], "mtp.species"),
        ("stop", "total_time_ps", 0, "stop.total_time_ps"),
        ("mtp", "radial_frames", 0, "mtp.radial_frames"),
        ("mtp", "linear_frames", 0, "mtp.linear_frames"),
        ("mtp", "rounds", 0, "mtp.rounds"),
        ("mtp", "warm_rounds", 0, "mtp.warm_rounds"),
    ],
)
def test_bad_values_name_the_field(section, key, value, field):
    data = _base()
    data[section][key] = value
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        parse_spec(data)


def test_unknown_top_level_key():
    data = _base()
    data["cycles"] = 3
    with pytest.raises(SpecError, match="cycles: unknown key"):
        parse_spec(data)


def test_unknown_builder():
    data = _base()
    data["system"]["builder"] = "li_nothing"
    with pytest.raises(SpecError, match="system.builder"):
        parse_spec(data)


def test_species_must_cover_system(tmp_path):
    data = _base()
    data["mtp"]["species"] = ["Li", "P", "S"]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=r"mtp\.species .* \['Cl'\]"):
        prepare_run(path)


def test_cutoff_above_min_dist(tmp_path):
    data = _base()
    data["mtp"]["min_dist"] = 6.0
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="mtp.cutoff"):
        prepare_run(path)


def test_malformed_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsystem: [unclosed\n")
    with pytest.raises(SpecError, match="malformed YAML"):
        load_spec(path)


def test_overlapping_atoms_in_file(tmp_path):
    from pymatgen.core import Lattice, Structure

    Structure(Lattice.cubic(5), ["Li", "Li"], [[0, 0, 0], [0.02, 0, 0]]).to(
        filename=str(tmp_path / "x.cif")
    )
    data = _base()
    data["system"] = {"file": "x.cif"}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="atoms 0 .* and 1 .* apart"):
        prepare_run(path)
