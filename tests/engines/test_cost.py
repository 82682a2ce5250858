"""Stage cost counts the CPU of child processes (an external mlp, say)."""

import subprocess
import sys

from haml_flows.engines.frames import measure_cost


def test_child_process_cpu_is_counted():
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    with measure_cost() as meter:
        subprocess.run([sys.executable, "-c", busy], check=True)
    assert meter.cost.cpu_seconds >= 0.45
    assert meter.cost.wall_seconds >= 0.45
