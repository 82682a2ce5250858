"""Expanding screen files: the cross product, names, hashes and bad screens."""

import pytest
import yaml

from haml_flows.screening.plan import expand_candidates, spec_hash
from haml_flows.spec import SpecError


def test_dopants_concentrations_seeds_cross_product(tmp_path, screen_file):
    path = screen_file(tmp_path, dopants={"Se": None, "F": {"host": "S_4d"}},
                       concentrations=[0.25, 0.5], seeds=[1, 2, 3], include_undoped=True,
                       parameters={"site_rule": "wyckoff"})
    plan = expand_candidates(path)
    assert plan.name == "lj_screen" and plan.system == "lj_lpsc"
    assert len(plan.candidates) == (1 + 2 * 2) * 3
    names = [c.name for c in plan.candidates]
    assert len(set(names)) == len(names)
    assert "lj_lpsc_se_c0.25_s1" in names and "lj_lpsc_undoped_s3" in names
    f = next(c for c in plan.candidates if c.name == "lj_lpsc_f_c0.5_s2")
    assert (f.dopant, f.host, f.concentration, f.seed) == ("F", "S_4d", 0.5, 2)
    assert f.spec.reference.seed == 2
    assert f.spec.system.parameters == {
        "site_rule": "wyckoff", "host": "S_4d", "dopant": "F", "concentration": 0.5
    }
    undoped = next(c for c in plan.candidates if c.dopant is None)
    assert "dopant" not in undoped.spec.system.parameters
    # one hash per resolved spec, stable across expansions
    hashes = {c.spec_hash for c in plan.candidates}
    assert len(hashes) == len(plan.candidates)
    assert [c.spec_hash for c in expand_candidates(path).candidates] == [
        c.spec_hash for c in plan.candidates
    ]


def test_hash_covers_defaults_not_spelling(tmp_path, screen_file):
    """A default written out explicitly gives the same hash; a changed value does not."""
    path = screen_file(tmp_path, seeds=None, dopants=["Se"])
    first = expand_candidates(path).candidates[0]
    base = yaml.safe_load((tmp_path / "base.yaml").read_text())
    base["mlpmd"]["gamma_every"] = 1  # the default
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    assert expand_candidates(path).candidates[0].spec_hash == first.spec_hash
    base["mlpmd"]["gamma_every"] = 2
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    assert expand_candidates(path).candidates[0].spec_hash != first.spec_hash
    assert spec_hash(first.spec) == first.spec_hash


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dopants": ["Se", "Xx"]}, r"unknown dopant 'Xx'; allowed: \['F', 'O', 'Se'\]"),
        ({"dopants": []}, r"screen.dopants must be a non-empty list"),
        ({"dopants": {"F": {"host": "P_4b"}}}, r"dopants.F.host: unknown host 'P_4b'"),
        ({"concentrations": [0.25, 1.5]}, r"concentrations: 1.5 is outside \(0, 1\]"),
        ({"concentrations": []}, r"screen.concentrations must be a non-empty list"),
        ({"seeds": [1, 1]}, r"screen.seeds repeats a value"),
        ({"seeds": ["a"]}, r"screen.seeds: 'a' is not a int"),
        ({"colour": "red"}, r"unknown key screen.colour; allowed: "),
        ({"dopnts": ["Se"]}, r"unknown key screen.dopnts \(did you mean dopants\?\)"),
        ({"variants": {"a": {"dopant": "Se"}}}, r"exactly one of screen.variants or screen.dopants"),
        ({"vary": "reference.steps"}, r"screen.vary: 'reference.steps' is not a mapping"),
    ],
)
def test_bad_screens_name_the_field(tmp_path, screen_file, changes, message):
    with pytest.raises(SpecError, match=message):
        expand_candidates(screen_file(tmp_path, **changes))


def test_candidate_spec_errors_name_the_candidate(tmp_path, screen_file):
    path = screen_file(tmp_path, parameters={"supercell": [1, 1, 1]})
    base = yaml.safe_load((tmp_path / "base.yaml").read_text())
    base["mlpmd"]["gamma_break"] = 0.5
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    with pytest.raises(SpecError, match=r"candidate lj_lpsc_se_s1: mlpmd.gamma_break"):
        expand_candidates(path)
