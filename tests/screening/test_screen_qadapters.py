"""The shipped queue adapter examples load in FireWorks and write batch scripts."""

from pathlib import Path

import pytest
from fireworks.user_objects.queue_adapters.common_adapter import CommonAdapter

DOCS = Path(__file__).parents[2] / "docs"


@pytest.mark.parametrize(
    ("name", "directives"),
    [
        ("my_qadapter_slurm.yaml", ["#SBATCH --nodes=1", "#SBATCH --cpus-per-task=16",
                                    "#SBATCH --time=24:00:00", "#SBATCH --partition=compute"]),
        ("my_qadapter_pbs.yaml", ["#PBS -l nodes=1:ppn=16", "#PBS -l walltime=24:00:00",
                                  "#PBS -q workq"]),
    ],
)
def test_qadapter_examples_render(name, directives, tmp_path):
    adapter = CommonAdapter.from_file(str(DOCS / name))
    script = adapter.get_script_str(str(tmp_path))
    for line in directives:
        assert line in script
    assert "rlaunch -l /home/USER/haml/launchpad.yaml" in script
    assert "export OMP_NUM_THREADS" in script
    assert f"cd {tmp_path}" in script
    assert "$${" not in script
