"""A real single-node SLURM cluster and a cluster user's files, for the batch-job tests.

The cluster starts when Debian's slurm-wlm and munge are installed and stops
after the session; without them the tests skip, unless HAML_REQUIRE_SLURM=1
(CI), where they fail.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from slurm_cluster import SlurmCluster, missing_binaries  # type: ignore[import-not-found]

DOCS = Path(__file__).parents[2] / "docs"
TEMPLATE = DOCS / "my_qadapter_slurm.yaml"
#: the template's placeholder for the user's working directory
USER_DIR = "/home/USER/haml"
USER_CONFIG = "/home/USER/.haml/config.yaml"


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """munged, slurmctld and slurmd on 127.0.0.1 for the session, stopped afterwards."""
    missing = missing_binaries()
    if missing:
        message = (f"SLURM is not installed (no {', '.join(missing)}): "
                   "apt-get install slurm-wlm munge")
        if os.environ.get("HAML_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def adapt_qadapter(site: Path, partition: str, config: Path) -> dict:
    """docs/my_qadapter_slurm.yaml with the lines its comments mark adapted to this site.

    The user's directory becomes ``site``, the partition the local one, one
    core and 1 GB per job (the machine has 2 cores), and ``pre_rocket`` puts
    this interpreter's environment on PATH where the template activates a
    virtualenv (there are no environment modules here). Every key changed
    must exist in the template, so a renamed key fails here.
    """
    adapter = yaml.safe_load(TEMPLATE.read_text())
    changes = {"queue": partition, "cpus_per_task": 1, "mem": "1G",
               "logdir": str(site / "logs")}
    assert set(changes) <= set(adapter), f"{TEMPLATE} lost keys {set(changes) - set(adapter)}"
    adapter.update(changes)
    assert USER_DIR in adapter["rocket_launch"]
    adapter["rocket_launch"] = adapter["rocket_launch"].replace(USER_DIR, str(site))
    pre_rocket = []
    for line in adapter["pre_rocket"].splitlines():
        if line.startswith("module load"):
            continue
        if line.endswith("bin/activate"):
            line = f"export PATH={Path(sys.executable).parent}:$PATH"
        pre_rocket.append(line.replace(USER_CONFIG, str(config)).replace(USER_DIR, str(site)))
    assert any("PATH=" in line for line in pre_rocket), "the template activates no environment"
    assert any(str(config) in line for line in pre_rocket), "the template sets no HAML_CONFIG_FILE"
    adapter["pre_rocket"] = "\n".join(pre_rocket)
    (site / "logs").mkdir(parents=True, exist_ok=True)
    return adapter


@dataclass
class ClusterSite:
    """A cluster user's directory: the files docs/screening.md tells them to write."""

    directory: Path
    config: Path
    launchpad: Path
    fworker: Path
    qadapter: Path
    env: dict
    fworker_name: str = "slurm_worker"


@pytest.fixture
def cluster_site(slurm_cluster, haml_settings, tmp_path) -> ClusterSite:
    """~/.haml/config.yaml, launchpad.yaml, my_fworker.yaml and my_qadapter.yaml of this test.

    The database is the test's own on the session's embedded server, reached
    by URI as a cluster's MongoDB would be. Subprocesses get an environment
    without HAML_* variables except HAML_CONFIG_FILE: the batch jobs learn
    the database from that file alone, as the template's pre_rocket says.
    """
    site = tmp_path / "site"
    site.mkdir()
    config = site / "config.yaml"
    config.write_text(yaml.safe_dump(
        {"mongodb_uri": haml_settings.mongodb_uri, "database": haml_settings.DATABASE}))
    launchpad = site / "launchpad.yaml"
    launchpad.write_text(yaml.safe_dump(
        {"host": f"{haml_settings.mongodb_uri}/{haml_settings.DATABASE}", "uri_mode": True,
         "name": haml_settings.DATABASE,
         "mongoclient_kwargs": {"serverSelectionTimeoutMS": 5000}}))
    fworker = site / "my_fworker.yaml"
    fworker.write_text(yaml.safe_dump({"name": "slurm_worker", "category": "", "query": "{}"}))
    qadapter = site / "my_qadapter.yaml"
    qadapter.write_text(yaml.safe_dump(
        adapt_qadapter(site, slurm_cluster.partition, config), sort_keys=False))
    env = {k: v for k, v in slurm_cluster.env().items() if not k.startswith("HAML_")}
    env.update(HAML_CONFIG_FILE=str(config), OMP_NUM_THREADS="1")
    return ClusterSite(site, config, launchpad, fworker, qadapter, env)
