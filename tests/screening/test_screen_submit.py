"""Submitting screens to the LaunchPad: metadata, indexes, idempotence, bad specs."""

import pytest
from typer.testing import CliRunner

from haml_flows.cli.main import app
from haml_flows.screening.collections import CANDIDATES
from haml_flows.screening.submit import submit_screen
from haml_flows.spec import SpecError

runner = CliRunner()


def _submit(path, clients):
    settings, store, launchpad, db = clients
    return submit_screen(path, store, launchpad, db, settings.DOCS_COLLECTION)


def test_submission_tags_workflows_and_creates_indexes(tmp_path, screen_file, clients):
    _, _, launchpad, db = clients
    report = _submit(screen_file(tmp_path), clients)
    assert sorted(report.added) == [
        "lj_lpsc_o_s1", "lj_lpsc_o_s2", "lj_lpsc_se_s1", "lj_lpsc_se_s2"
    ]
    assert report.present == [] and report.fireworks == 8  # start run + cycle 1 each

    workflows = list(launchpad.workflows.find({"metadata.screen": "lj_screen"}))
    assert len(workflows) == 4
    meta = {w["metadata"]["candidate"]: w["metadata"] for w in workflows}
    se2 = meta["lj_lpsc_se_s2"]
    assert (se2["system"], se2["dopant"], se2["host"], se2["concentration"], se2["seed"]) == (
        "lj_lpsc", "Se", "S_4d", 0.25, 2
    )
    assert len(se2["spec_hash"]) == 64 and se2["run_id"] == f"lj_lpsc_se_s2-{se2['spec_hash'][:8]}"

    # every Firework carries run id and screen, so workers and status can select them
    fws = list(launchpad.fireworks.find({"spec.haml_screen": "lj_screen"}))
    assert len(fws) == 8 and {f["state"] for f in fws} == {"READY", "WAITING"}
    assert {f["spec"]["haml_run_id"] for f in fws} == {m["run_id"] for m in meta.values()}

    doc = db[CANDIDATES].find_one({"run_id": se2["run_id"]})
    assert doc["submitted"] is True and len(doc["fw_ids"]) == 2
    assert doc["formula"] == "Li24P4SeS19Cl4" and doc["n_atoms"] == 52
    assert doc["spec"]["reference"]["seed"] == 2

    indexed = {
        name: [tuple(k) for k in info["key"]]
        for name, info in launchpad.workflows.index_information().items()
    }
    assert [("metadata.screen", 1), ("state", 1)] in indexed.values()
    assert [("metadata.spec_hash", 1)] in indexed.values()
    keys = [info["key"] for info in db[CANDIDATES].index_information().values()]
    assert [("screen", 1), ("spec_hash", 1)] in [[tuple(k) for k in key] for key in keys]


def test_resubmitting_adds_nothing_and_extending_adds_only_new(tmp_path, screen_file, clients):
    _, _, launchpad, db = clients
    path = screen_file(tmp_path)
    _submit(path, clients)
    again = _submit(path, clients)
    assert again.added == [] and again.total == 4
    assert launchpad.workflows.count_documents({}) == 4
    assert launchpad.fireworks.count_documents({}) == 8

    # one more seed: four old candidates present, two new ones added
    path = screen_file(tmp_path, seeds=[1, 2, 3])
    extended = _submit(path, clients)
    assert sorted(extended.added) == ["lj_lpsc_o_s3", "lj_lpsc_se_s3"]
    assert len(extended.present) == 4
    assert launchpad.workflows.count_documents({"metadata.screen": "lj_screen"}) == 6
    assert db[CANDIDATES].count_documents({"screen": "lj_screen"}) == 6


def test_stale_claim_is_retried(tmp_path, screen_file, clients):
    """A claim left by a submission that died before adding its workflow is redone."""
    _, _, launchpad, db = clients
    path = screen_file(tmp_path, dopants=["Se"], seeds=[1])
    _submit(path, clients)
    launchpad.reset("", require_password=False)
    db[CANDIDATES].update_many({}, {"$set": {"submitted": False}})
    report = _submit(path, clients)
    assert report.added == ["lj_lpsc_se"]
    assert launchpad.workflows.count_documents({}) == 1


def test_unrepresentable_concentration_fails_before_anything_is_submitted(
    tmp_path, screen_file, clients
):
    _, _, launchpad, db = clients
    # 0.3 of the 4 S_4d sites is not a whole number; Se 0.25 (first) builds fine
    path = screen_file(tmp_path, concentrations=[0.25, 0.3])
    with pytest.raises(SpecError, match=r"concentration 0.3 of S_4d cannot be represented"):
        _submit(path, clients)
    assert launchpad.workflows.count_documents({}) == 0
    assert launchpad.fireworks.count_documents({}) == 0
    assert db[CANDIDATES].count_documents({}) == 0


@pytest.fixture
def cli_env(monkeypatch, clients):
    settings = clients[0]
    monkeypatch.setenv("HAML_DATABASE", settings.DATABASE)
    return clients


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dopants": ["Se", "Xx"]}, "unknown dopant 'Xx'"),
        ({"dopants": []}, "screen.dopants must be a non-empty list"),
        ({"parameters": {"site_rule": "nearest"}}, "unknown site rule 'nearest'"),
    ],
)
def test_cli_bad_screen_submits_nothing(tmp_path, screen_file, cli_env, changes, message):
    _, _, launchpad, db = cli_env
    result = runner.invoke(app, ["screen", str(screen_file(tmp_path, **changes))])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert launchpad.fireworks.count_documents({}) == 0
    assert db[CANDIDATES].count_documents({}) == 0


def test_cli_submits_then_reports_present(tmp_path, screen_file, cli_env):
    path = screen_file(tmp_path)
    first = runner.invoke(app, ["screen", str(path)])
    assert first.exit_code == 0, first.output
    assert "added 4 workflows (8 Fireworks); 0 already submitted" in first.output
    second = runner.invoke(app, ["screen", str(path)])
    assert "added 0 workflows (0 Fireworks); 4 already submitted" in second.output

    status = runner.invoke(app, ["status", "--screen", "lj_screen"])
    assert status.exit_code == 0, status.output
    assert "4 candidates (READY 4)" in status.output
    assert "lj_lpsc_se_s2" in status.output


def test_cli_dry_run_submits_nothing(tmp_path, screen_file, cli_env):
    _, _, launchpad, _ = cli_env
    result = runner.invoke(app, ["screen", str(screen_file(tmp_path)), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Li24P4SeS19Cl4" in result.output and "nothing submitted" in result.output
    assert launchpad.fireworks.count_documents({}) == 0


def test_cli_unknown_rank_key_is_refused(cli_env):
    result = runner.invoke(app, ["results", "--screen", "x", "--rank", "colour"])
    assert result.exit_code == 2
    assert "colour" in result.output and "similarity" in result.output


def test_first_submission_initializes_an_empty_launchpad(tmp_path, screen_file, haml_settings, job_store):
    """A new database needs no `lpad reset` before the first screen."""
    from haml_flows.database.stores import connect
    from haml_flows.database.stores import make_launchpad

    launchpad, db = make_launchpad(haml_settings), connect(haml_settings)
    assert launchpad.fw_id_assigner.count_documents({}) == 0
    path = screen_file(tmp_path, dopants=["Se"], seeds=[1])
    report = submit_screen(path, job_store, launchpad, db, haml_settings.DOCS_COLLECTION)
    assert report.added == ["lj_lpsc_se"]
    assert sorted(f["fw_id"] for f in launchpad.fireworks.find({}, {"fw_id": 1})) == [1, 2]
    db.client.close()
