"""Where a HAML cycle's time goes: AIMD, training, MLP-MD (forces, grade), orchestration.

Runs a spec (default: the main job, workflows/li_lpsc_mini.yaml) to its
``--cycles`` on a private embedded server, once as given or with
``--before KEY=VALUE ...`` spec overrides ("before") and, with ``--after
KEY=VALUE ...``, once more with those overrides ("after"), so an
improvement is measured before and after in the same invocation. ``--fireworks`` runs the variants through FireWorks (LaunchPad +
rapidfire in this process) instead of jobflow's local manager, so the
orchestration share includes FireWorks.

Stage shares are CPU seconds from the CycleDocs (robust to other jobs on
the machine); orchestration (flow building, jobflow/FireWorks bookkeeping,
database round trips) is what the run's wall time holds beyond the stages'
wall time, per cycle.

    OMP_NUM_THREADS=1 python bench/cycle_breakdown.py [SPEC] [--cycles 3] \
        [--before mtp.radial_frames=null] [--after ...] [--fireworks] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
SECTION = "## Cycle breakdown"


def stage_rows(docs) -> list[dict]:
    """CPU seconds per stage of every cycle; the MLP-MD split into its parts."""
    rows = []
    for doc in docs:
        mlpmd_cpu = doc.mlpmd_cost.cpu_seconds
        rows.append(
            {
                "cycle": doc.cycle,
                "aimd": doc.aimd_cost.cpu_seconds,
                "training": doc.training_cost.cpu_seconds,
                "mlpmd": mlpmd_cpu,
                # wall seconds of the grade; the process is single-threaded
                "gamma": min(doc.mlpmd_gamma_seconds, mlpmd_cpu),
                "frames": doc.training_set_size,
                "force_rmse": doc.force_rmse,
                "aimd_fs": doc.aimd_fs,
                "mlpmd_fs": doc.mlpmd_fs,
                "stop": doc.stop_reason,
            }
        )
    return rows


def orchestration_per_cycle(result) -> tuple[float, float]:
    """Wall seconds per cycle outside the stages, and its share of a cycle's wall."""
    from cycle_costs import outside_stages

    docs = result.docs
    optimization = result.run_doc.optimization_cost.wall_seconds
    outside = outside_stages(result.wall_seconds, docs, optimization_wall_s=optimization)
    per_cycle = outside / len(docs)
    cycle_wall = (result.wall_seconds - optimization) / len(docs)
    return per_cycle, per_cycle / cycle_wall


def variant_table(label: str, result) -> list[str]:
    rows = stage_rows(result.docs)
    per_cycle, share = orchestration_per_cycle(result)
    lines = [
        f"**{label}** ({result.n_atoms} atoms, {len(rows)} cycles, run wall "
        f"{result.wall_seconds:.0f} s). Orchestration: {per_cycle:.2f} s per cycle, "
        f"{100 * share:.1f} % of a cycle's wall time (targets <= 1 s, <= 2 %).",
        "",
        "| cycle | AIMD CPU s | training CPU s | MLP-MD forces CPU s | grade s "
        "| training frames | force RMSE eV/A | AIMD fs | MLP-MD fs | MLP-MD stop |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        total = r["aimd"] + r["training"] + r["mlpmd"]

        def pct(value: float, total: float = total) -> str:
            return f"{value:.1f} ({100 * value / total:.0f} %)"

        lines.append(
            f"| {r['cycle']} | {pct(r['aimd'])} | {pct(r['training'])} "
            f"| {pct(r['mlpmd'] - r['gamma'])} | {r['gamma']:.2f} | {r['frames']} "
            f"| {r['force_rmse']:.3f} | {r['aimd_fs']:.0f} | {r['mlpmd_fs']:.1f} "
            f"| {r['stop']} |"
        )
    lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=str(ROOT / "workflows/li_lpsc_mini.yaml"))
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--before", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--after", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--fireworks", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from harness import (
        parse_overrides,
        private_database,
        quiet_warnings,
        run_spec,
        spec_with,
    )

    quiet_warnings()
    base = {"stop.max_cycles": args.cycles, "stop.total_time_ps": 1000.0}
    before_label = "before" + (": " + ", ".join(args.before) if args.before else "")
    variants = {before_label: {**base, **parse_overrides(args.before)}}
    if args.after:
        variants["after: " + ", ".join(args.after)] = {
            **base,
            **parse_overrides(args.after),
        }
    tables: list[str] = []
    with private_database() as tmp:
        for i, (label, overrides) in enumerate(variants.items()):
            spec = spec_with(Path(args.spec), overrides, tmp / f"spec_{i}.yaml")
            result = run_spec(spec, tmp / f"work_{i}", fireworks=args.fireworks)
            table = variant_table(label, result)
            print("\n".join(table), flush=True)
            tables += table

    manager = "FireWorks (LaunchPad + rapidfire)" if args.fireworks else "jobflow run_locally"
    command = " ".join(
        ["python bench/cycle_breakdown.py", Path(args.spec).resolve().relative_to(ROOT).as_posix()]
        + [f"--cycles {args.cycles}"]
        + (["--before", *args.before] if args.before else [])
        + (["--after", *args.after] if args.after else [])
        + (["--fireworks"] if args.fireworks else [])
    )
    heading = SECTION + (" (FireWorks)" if args.fireworks else "")
    text = "\n".join(
        [
            heading,
            "",
            f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} "
            f"{command}` ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, "
            f"{manager}). Stage columns: CPU seconds and share of the cycle's "
            "CPU; grade: seconds of the MaxVol grade inside the MLP-MD (active "
            "set build excluded).",
            "",
            *tables,
        ]
    )
    if not args.no_write:
        from perfdoc import write_section

        write_section(text, heading)
    return 0


if __name__ == "__main__":
    sys.exit(main())
