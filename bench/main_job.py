"""Time the main job and the share of each stage of a cycle.

Runs workflows/li_lpsc_mini.yaml (or the spec given) on the embedded engines
against a private embedded server, then writes the wall time and the
per-stage table into docs/performance.md (section "Main job").

    python bench/main_job.py [SPEC] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
SECTION = "## Main job"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=str(ROOT / "workflows/li_lpsc_mini.yaml"))
    parser.add_argument("--no-write", action="store_true", help="Only print.")
    args = parser.parse_args()

    from harness import private_database, quiet_warnings, run_spec

    quiet_warnings()
    with private_database() as tmp:
        result = run_spec(Path(args.spec), tmp / "work")
    docs, wall = result.docs, result.wall_seconds
    optimization = result.run_doc.optimization_cost.wall_seconds

    stage_total = sum(
        d.aimd_cost.wall_seconds + d.training_cost.wall_seconds + d.mlpmd_cost.wall_seconds
        for d in docs
    )
    orchestration = wall - optimization - stage_total
    rows = []
    for d in docs:
        stages = {
            "AIMD": d.aimd_cost.wall_seconds,
            "training": d.training_cost.wall_seconds,
            "MLP-MD": d.mlpmd_cost.wall_seconds,
        }
        total = sum(stages.values())
        shares = " | ".join(
            f"{v:.1f} s ({100 * v / total:.0f} %)" for v in stages.values()
        )
        rows.append(
            f"| {d.cycle} | {shares} | {d.aimd_fs:.0f} | {d.mlpmd_fs:.1f} "
            f"| {d.stop_reason} | {d.cumulative_ps:.3f} |"
        )
    text = "\n".join(
        [
            SECTION,
            "",
            f"Command: `python bench/main_job.py` ({Path(args.spec).name}, "
            f"{result.n_atoms} atoms, {os.cpu_count()} cores, "
            f"{time.strftime('%Y-%m-%d')}).",
            "",
            f"Wall time of the whole run: **{wall:.0f} s** for {len(docs)} cycles "
            f"(geometry optimization {optimization:.1f} s); target <= 600 s.",
            f"Outside the three stages (flow building, jobflow, database round "
            f"trips, structure setup): {orchestration:.1f} s in all, "
            f"{orchestration / max(len(docs), 1):.1f} s per cycle.",
            "",
            "| cycle | AIMD | training | MLP-MD | AIMD fs | MLP-MD fs | MLP-MD stop "
            "| total ps |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
    from perfdoc import publish

    publish(text, SECTION, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
