"""How long the command line takes to answer: ``haml --help`` and ``haml -h`` of a command.

Each command runs in a fresh interpreter (what a user waits for: start-up,
imports, the answer), ``--repeat`` times; the table gives the median and the
largest wall time. Target (issue "A researcher's first hour"): ``--help`` in
at most 1 s.

    python bench/cli_startup.py [--repeat 7] [--quiet-machine] [--no-write]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date

from perfdoc import machine_note, publish

HEADING = "## Command-line start-up"
COMMANDS = [["--help"], ["--version"], ["run", "-h"], ["results", "-h"], ["build", "li-lpsc", "-h"]]


def timed(args: list[str], repeat: int) -> list[float]:
    haml = shutil.which("haml")
    command = [haml, *args] if haml else [sys.executable, "-m", "haml_flows.cli.main", *args]
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
    return walls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quiet-machine", action="store_true",
                        help="say in the doc that nothing else ran")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for command in COMMANDS:
        walls = timed(command, args.repeat)
        rows.append(f"| `haml {' '.join(command)}` | {statistics.median(walls):.2f} s | "
                    f"{max(walls):.2f} s |")
    text = "\n".join([
        HEADING, "",
        f"`python bench/cli_startup.py --repeat {args.repeat}` ({date.today()}, "
        f"{machine_note(args.quiet_machine)}): each command in a fresh interpreter, "
        f"{args.repeat} times. Target: `haml --help` within 1 s. The command modules "
        "import typer and rich only; the database, engines and analysis load inside the "
        "command that needs them.", "",
        "| command | median wall | largest |", "| --- | --- | --- |", *rows, "",
    ])
    publish(text, HEADING, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
