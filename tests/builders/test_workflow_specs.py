"""The shipped interface specs and the dopant screen validate and build."""

from pathlib import Path

import pytest
import yaml

from haml_flows.builders.electrolyte import packmol_available
from haml_flows.screening.plan import expand_screen
from haml_flows.runner import prepare_run
from haml_flows.spec import parse_spec

WORKFLOWS = Path(__file__).parents[2] / "workflows"
SPECS = {
    "li_lpsc.yaml": (10, None),
    "li_lpsc_se.yaml": (10, "Se"),
    "li_lpsc_f.yaml": (10, "F"),
    "li_lpsc_o.yaml": (10, "O"),
    "li_lifsi_dme.yaml": (20, None),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_builds(name):
    if "lifsi" in name and not packmol_available():
        pytest.skip("packmol not on PATH")
    gamma_break, dopant = SPECS[name]
    prepared = prepare_run(WORKFLOWS / name)
    assert prepared.spec.mlpmd.gamma_break == gamma_break
    if dopant:
        assert prepared.structure.composition[dopant] >= 1
    assert len(prepared.structure) > 100


def test_dopant_screen_expands_to_valid_specs(tmp_path):
    specs = expand_screen(WORKFLOWS / "lpsc_dopant_screen.yaml")
    # the pristine interface and the paper's three dopants
    assert sorted(specs) == ["li_lpsc_f", "li_lpsc_o", "li_lpsc_se", "li_lpsc_undoped"]
    for name, data in specs.items():
        spec = parse_spec(data)
        assert spec.mlpmd.gamma_break == 10
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        dopant = data["system"]["parameters"].get("dopant")
        composition = prepare_run(path).structure.composition
        if dopant is None:
            assert name == "li_lpsc_undoped"
            assert not {"Se", "F", "O"} & {e.symbol for e in composition}
        else:
            assert composition[dopant] == 1


def test_screen_rejects_unknown_keys(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("screen: {name: x, base: b.yaml, vary: system.parameters, variants: {}, extra: 1}\n")
    with pytest.raises(ValueError, match=r"unknown key screen.extra; allowed: "):
        expand_screen(path)
