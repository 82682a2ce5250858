"""Bad specs are refused before anything is submitted, naming field and allowed values.

Each case goes through ``haml run SPEC --fireworks`` against a LaunchPad and a
job store that already hold a workflow and documents; after the refusal both
are counted again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fault_helpers import DATA  # type: ignore[import-not-found]
from jobflow import Flow, job
from pymatgen.core import Lattice, Structure
from typer.testing import CliRunner

from haml_flows.cli.main import app
from haml_flows.database.stores import connect, make_launchpad


@job
def _placeholder(x: int) -> int:
    return x


def _cif(directory: Path, species: list[str], coords: list[list[float]]) -> str:
    path = directory / "system.cif"
    Structure(Lattice.cubic(6), species, coords).to(filename=str(path))
    return path.name


CASES = {
    "malformed YAML": (None, "malformed YAML"),
    "unknown key": (
        {"reference": {"stepz": 10}},
        "reference.stepz: unknown key; allowed: ['engine', 'lengthen_factor', 'max_steps', 'seed',",
    ),
    "zero AIMD steps": ({"reference": {"steps": 0}}, "reference.steps: Input should be greater than 0"),
    "negative time step": (
        {"reference": {"time_step": -1.0}}, "reference.time_step: Input should be greater than 0"
    ),
    "zero total time": (
        {"stop": {"total_time_ps": 0}}, "stop.total_time_ps: Input should be greater than 0"
    ),
    "zero MLP-MD steps": (
        {"mlpmd": {"max_steps": 0}}, "mlpmd.max_steps: Input should be greater than 0"
    ),
    "gamma_break <= 1": (
        {"mlpmd": {"gamma_break": 1.0}}, "mlpmd.gamma_break: Input should be greater than 1"
    ),
    "gamma_select not below gamma_break": (
        {"mlpmd": {"gamma_select": 3.0}},
        "mlpmd: gamma_select (3) must be below gamma_break (3): frames are selected "
        "between the two",
    ),
    "unknown grade mode": (
        {"mtp": {"grade_mode": "atoms"}},
        "mtp.grade_mode: Input should be 'neighborhood' or 'configuration'",
    ),
    "odd lev_max": ({"mtp": {"level": 7}}, "mtp.level: level must be even and in 2..28"),
    "lev_max out of range": ({"mtp": {"level": 30}}, "level must be even and in 2..28, got 30"),
    "cutoff not above min_dist": (
        {"mtp": {"min_dist": 6.0}}, "mtp.cutoff (5.0) must be above mtp.min_dist (6.0)"
    ),
    "cutoff below the shortest distance": (
        {"mtp": {"cutoff": 1.0}}, "mtp.cutoff (1.0) must be above the shortest interatomic distance"
    ),
    "unknown element": (
        {"mtp": {"species": ["Li", "Xx"]}}, "mtp.species: unknown elements ['Xx']"
    ),
    "species the MTP does not cover": (
        {"mtp": {"species": ["Li", "P", "S"]}},
        "mtp.species ['Li', 'P', 'S'] does not cover the system's elements ['Cl']",
    ),
    "overlapping atoms": (
        {"system": "overlap"}, "system: atoms 0 (Li) and 1 (Li) are 0.12 A apart (minimum 0.5 A)"
    ),
    "element the reference engine cannot describe": (
        {"system": "uranium", "reference": {"engine": "xtb"}},
        "reference.engine 'xtb' (GFN1-xTB) cannot describe ['U']; allowed: elements H to Rn",
    ),
}


def _write_case(directory: Path, changes: dict | None) -> Path:
    path = directory / "spec.yaml"
    if changes is None:
        path.write_text("name: broken\nsystem: [unclosed\n")
        return path
    data = yaml.safe_load((DATA / "lj_small.yaml").read_text())
    for section, values in changes.items():
        if section == "system":
            if values == "overlap":
                cif = _cif(directory, ["Li", "Li"], [[0, 0, 0], [0.02, 0, 0]])
            else:
                cif = _cif(directory, ["Li", "U"], [[0, 0, 0], [0.45, 0, 0]])
            data["system"] = {"file": cif}
        else:
            data[section].update(values)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def busy_database(haml_settings, monkeypatch):
    """A LaunchPad with one workflow and a job store with documents, for counting."""
    from jobflow.managers.fireworks import flow_to_workflow

    from haml_flows.database.stores import make_job_store

    monkeypatch.setenv("HAML_DATABASE", haml_settings.DATABASE)
    launchpad = make_launchpad(haml_settings)
    launchpad.reset("", require_password=False)
    launchpad.add_wf(flow_to_workflow(Flow([_placeholder(1)]), store=make_job_store(haml_settings)))
    database = connect(haml_settings)
    database[haml_settings.DOCS_COLLECTION].insert_many(
        [{"uuid": f"existing-{i}", "index": 1, "output": i} for i in range(3)]
    )
    return haml_settings, launchpad, database


def _counts(settings, launchpad, database) -> int:
    return (
        launchpad.fireworks.count_documents({})
        + launchpad.workflows.count_documents({})
        + database[settings.DOCS_COLLECTION].count_documents({})
    )


@pytest.mark.parametrize("case", list(CASES))
def test_bad_spec_refused_before_submission(case, busy_database, tmp_path, fault_ledger):
    settings, launchpad, database = busy_database
    changes, message = CASES[case]
    spec = _write_case(tmp_path, changes)
    before = _counts(settings, launchpad, database)

    result = CliRunner().invoke(app, ["run", str(spec), "--fireworks", "--workdir", str(tmp_path)])

    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert output.startswith("error: invalid spec")
    assert message in output
    after = _counts(settings, launchpad, database)
    assert after == before
    assert not (tmp_path / "lj_small").exists()
    fault_ledger.record(
        f"bad input: {case}",
        injected=f"`haml run --fireworks` on a spec with {case}",
        recovered=True,
        documents_lost=before - after,
        outcome="refused before submission (exit 2), message names the field and "
        "what is allowed; LaunchPad and store unchanged",
    )
