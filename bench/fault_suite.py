"""Run the fault-injection suite and put its table into docs/reliability.md.

    python bench/fault_suite.py [--no-write] [-- extra pytest arguments]

Runs ``python -m pytest tests/faults`` with ``HAML_FAULT_TABLE`` set, so the
suite's ledger (one row per injected fault: recovered or not, documents lost)
is written to a file, and replaces the section "Fault-injection results" of
docs/reliability.md with that table, the command and the pytest summary.
Exits with pytest's exit status.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
RELIABILITY_DOC = ROOT / "docs/reliability.md"
SECTION = "## Fault-injection results"
COMMAND = "python bench/fault_suite.py"


def run_suite(extra: list[str]) -> tuple[int, str, str, float]:
    """Run the suite; return exit status, table, pytest summary line, wall seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        table_file = Path(tmp) / "faults.md"
        env = dict(os.environ, HAML_FAULT_TABLE=str(table_file))
        command = [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider", *extra]
        start = time.monotonic()
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.monotonic() - start
        sys.stdout.write(result.stdout[-4000:])
        sys.stderr.write(result.stderr[-2000:])
        table = table_file.read_text() if table_file.exists() else "(no rows recorded)\n"
    summaries = re.findall(r"^=*\s*(\d+ (?:passed|failed).*?)\s*=*$", result.stdout, re.M)
    return result.returncode, table, summaries[-1] if summaries else "no summary", wall


def section(table: str, summary: str, wall: float) -> str:
    """The Markdown section written into docs/reliability.md."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{SECTION}\n\n"
        f"Measured with `{COMMAND}` (runs `python -m pytest tests/faults` with "
        f"`HAML_FAULT_TABLE` set) on {stamp}: pytest reported {summary}; wall time "
        f"{wall:.0f} s on a 2-core machine shared with other test runs (wall time "
        "only, not a performance figure).\n\n"
        f"{table}\n"
    )


def main() -> int:
    """Run the suite and, unless --no-write, refresh the documentation section."""
    from perfdoc import write_section  # type: ignore[import-not-found]

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    code, table, summary, wall = run_suite(extra)
    text = section(table, summary, wall)
    print(text)
    if not args.no_write:
        write_section(text, SECTION, path=RELIABILITY_DOC)
        print(f"wrote {RELIABILITY_DOC.relative_to(ROOT)}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
