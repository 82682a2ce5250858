"""Time the main job and the share of each stage of a cycle.

Runs workflows/li_lpsc_mini.yaml (or the spec given) on the embedded engines
against a private embedded server, then writes the wall time and the
per-stage table into docs/performance.md (section "Main job").

    python bench/main_job.py [SPEC] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
SECTION = "## Main job"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=str(ROOT / "workflows/li_lpsc_mini.yaml"))
    parser.add_argument("--no-write", action="store_true", help="Only print.")
    args = parser.parse_args()

    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    tmp = Path(tempfile.mkdtemp(prefix="haml_bench_"))
    os.environ.update(
        HAML_CONFIG_FILE=str(tmp / "none.yaml"),
        HAML_DB_DIR=str(tmp / "db"),
        HAML_DB_PORT=str(_free_port()),
        HAML_DATABASE="bench",
    )
    os.environ.pop("HAML_MONGODB_URI", None)

    from haml_flows.database.server import EmbeddedServer, ensure_database
    from haml_flows.database.stores import make_job_store
    from haml_flows.queries import cycle_docs, run_doc
    from haml_flows.runner import prepare_run, run_prepared_locally
    from haml_flows.settings import HamlSettings

    settings = HamlSettings()
    ensure_database(settings)
    try:
        store = make_job_store(settings)
        start = time.perf_counter()
        run = prepare_run(args.spec)
        run_prepared_locally(run, store, tmp / "work")
        wall = time.perf_counter() - start
        store.connect()
        docs = cycle_docs(store, run.run_id)
        optimization = run_doc(store, run.run_id).optimization_cost.wall_seconds
    finally:
        EmbeddedServer(settings).stop()

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
            f"{len(run.structure)} atoms, {os.cpu_count()} cores, "
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
    print(text)
    if not args.no_write:
        from perfdoc import write_section

        write_section(text, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
