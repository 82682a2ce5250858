"""bench/harness.py: a second script on the same kept database is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))


def test_a_second_script_on_the_same_database_directory_is_refused(tmp_path):
    from harness import _sole_user

    db_dir = tmp_path / "haml_db"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
         "from harness import _sole_user\n"
         "with _sole_user(Path(sys.argv[2])):\n"
         "    print('held', flush=True); time.sleep(60)",
         str(BENCH), str(db_dir)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit, match=rf"{db_dir} is in use by pid {holder.pid}"), \
                _sole_user(db_dir):
            pass
    finally:
        holder.kill()
        holder.wait()
    with _sole_user(db_dir):  # free again once the first has ended
        pass
    with _sole_user(None):  # a temporary database is nobody else's
        pass
