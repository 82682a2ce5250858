"""HAML against AIMD on the same engine and system: cost per ps, speed-up, agreement.

For each system (the mini Li | Li6PS5Cl interface and a small Li | LiFSI +
DME interface, GFN1-xTB as the reference engine):

1. a HAML run (``--ps`` simulated ps or ``--max-cycles`` cycles, whichever
   comes first) on a private embedded server, one line per cycle;
2. a pure AIMD run of ``--aimd-ps`` from the same start (the HAML run's
   optimized structure, the same thermostat and velocity seed);
3. cost per simulated ps in CPU-hours: HAML (all stages of all cycles) and
   AIMD (the AIMD segments of the HAML run, and the pure AIMD run), the
   speed-up, and its growth with simulated time (per-cycle cumulative
   curve, PNG in docs/figures/);
4. agreement over the window both cover (at most the first ps): overlap of
   the main partial RDFs and mean bond counts, HAML against pure AIMD.

    OMP_NUM_THREADS=1 python bench/haml_vs_aimd.py [--systems lpsc dme] \
        [--ps 20] [--max-cycles 40] [--aimd-ps 1.0] [--set KEY=VALUE ...] [--no-write]

``--set`` overrides spec keys of every system (e.g. ``mtp.radial_frames=10``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
SECTION = "## HAML vs AIMD"
FIGURES = ROOT / "docs/figures"

SYSTEMS = {
    "lpsc": {
        "spec": ROOT / "workflows/li_lpsc_mini.yaml",
        "label": "Li / Li6PS5Cl (mini)",
        "pairs": [("Li", "S"), ("P", "S"), ("Li", "Li"), ("Li", "Cl")],
    },
    "dme": {
        "spec": ROOT / "workflows/li_lifsi_dme_mini.yaml",
        "label": "Li / LiFSI + DME (mini)",
        "pairs": [("Li", "O"), ("C", "O"), ("S", "O"), ("Li", "Li")],
    },
}


def cumulative_curve(docs) -> list[dict]:
    """Per cycle: simulated ps so far, HAML and AIMD CPU-h per ps so far, speed-up."""
    out = []
    haml_cpu = aimd_cpu = aimd_fs = 0.0
    for doc in docs:
        aimd_cpu += doc.aimd_cost.cpu_seconds
        aimd_fs += doc.aimd_fs
        haml_cpu += (
            doc.aimd_cost.cpu_seconds
            + doc.training_cost.cpu_seconds
            + doc.mlpmd_cost.cpu_seconds
        )
        ps = doc.cumulative_fs / 1000.0
        haml = haml_cpu / 3600.0 / ps
        aimd = aimd_cpu / 3600.0 / (aimd_fs / 1000.0)
        out.append({"cycle": doc.cycle, "ps": ps, "haml": haml, "aimd": aimd,
                    "speedup": aimd / haml})
    return out


def pure_aimd(run, spec, ps: float):
    """AIMD of ``ps`` from the HAML run's optimized structure; frames and cost."""
    from haml_flows.analysis.timeline import trajectory_frames
    from haml_flows.engines.frames import measure_cost
    from haml_flows.engines.reference import aimd_maker_for, nose_hoover_kwargs

    ref = spec.reference
    steps = int(round(ps * 1000.0 / ref.time_step))
    maker = aimd_maker_for(
        ref.engine,
        n_steps=steps,
        time_step=ref.time_step,
        temperature=ref.temperature,
        ase_md_kwargs=nose_hoover_kwargs(ref.thermostat_time),
        mb_velocity_seed=ref.seed,
    )
    with measure_cost() as meter:
        result = maker.run_ase(run.run_doc.structure)
    frames = list(trajectory_frames(result.trajectory, dt_fs=ref.time_step, stage="aimd"))
    return frames, meter.cost, steps * ref.time_step


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cost_ax, speed_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for label, curve in curves.items():
        ps = [c["ps"] for c in curve]
        line = cost_ax.plot(ps, [c["haml"] for c in curve], marker="o", ms=3,
                            label=f"HAML, {label}")[0]
        cost_ax.plot(ps, [c["aimd"] for c in curve], ls="--", color=line.get_color(),
                     label=f"AIMD, {label}")
        speed_ax.plot(ps, [c["speedup"] for c in curve], marker="o", ms=3, label=label)
    cost_ax.set_xlabel("simulated time (ps)")
    cost_ax.set_ylabel("CPU-h per simulated ps (cumulative)")
    cost_ax.set_yscale("log")
    cost_ax.legend(fontsize=7)
    speed_ax.axhline(1.0, color="k", lw=0.6)
    speed_ax.set_xlabel("simulated time (ps)")
    speed_ax.set_ylabel("speed-up (AIMD / HAML cost per ps)")
    speed_ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--ps", type=float, default=20.0)
    parser.add_argument("--max-cycles", type=int, default=40)
    parser.add_argument("--aimd-ps", type=float, default=1.0)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="overrides")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from harness import (
        parse_overrides,
        private_database,
        quiet_warnings,
        run_spec,
        spec_with,
    )

    from haml_flows.analysis.agreement import agreement, window_profile
    from haml_flows.analysis.cost import cost_summary
    from haml_flows.analysis.timeline import run_timeline
    from haml_flows.spec import load_spec

    quiet_warnings()
    logging.getLogger("motep").setLevel(logging.ERROR)
    progress = logging.getLogger("haml_flows.progress")
    progress.addHandler(logging.StreamHandler(sys.stdout))
    progress.setLevel(logging.INFO)
    overrides = {
        "stop.total_time_ps": args.ps,
        "stop.max_cycles": args.max_cycles,
        **parse_overrides(args.overrides),
    }
    rows, curves, accuracy = [], {}, []
    with private_database() as tmp:
        for key in args.systems:
            system = SYSTEMS[key]
            spec_path = spec_with(system["spec"], overrides, tmp / f"{key}.yaml")
            spec = load_spec(spec_path)
            print(f"== {system['label']}: HAML", flush=True)
            run = run_spec(spec_path, tmp / f"work_{key}")
            summary = cost_summary(run.docs, run.run_doc)
            curves[system["label"]] = cumulative_curve(run.docs)
            print(f"== {system['label']}: pure AIMD, {args.aimd_ps} ps", flush=True)
            aimd_frames, aimd_cost, aimd_fs = pure_aimd(run, spec, args.aimd_ps)
            pure_per_ps = aimd_cost.cpu_seconds / 3600.0 / (aimd_fs / 1000.0)
            window = min(1000.0, aimd_fs, summary["total_ps"] * 1000.0)
            haml_profile = window_profile(
                run_timeline(run.store, run.run_id), system["pairs"], window
            )
            aimd_profile = window_profile(iter(aimd_frames), system["pairs"], window)
            agree = agreement(haml_profile, aimd_profile)
            rows.append((system, run, summary, pure_per_ps, aimd_fs))
            accuracy.append((system, window, agree))
            print(summary, agree, flush=True)

    figure = FIGURES / "haml_vs_aimd.png"
    plot(curves, figure)
    command = (
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python "
        f"bench/haml_vs_aimd.py --systems {' '.join(args.systems)} --ps {args.ps:g} "
        f"--max-cycles {args.max_cycles} --aimd-ps {args.aimd_ps:g}"
        + (f" --set {' '.join(args.overrides)}" if args.overrides else "")
    )
    lines = [
        SECTION,
        "",
        f"Command: `{command}` ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; "
        "GFN1-xTB reference engine; CPU time, so other jobs on the machine do not "
        "inflate it). Targets: speed-up >= 30x (solid), >= 15x (liquid).",
        "",
        "| system | atoms | cycles | HAML ps (AIMD + MLP-MD) | HAML CPU-h/ps "
        "| AIMD CPU-h/ps, in the HAML run | AIMD CPU-h/ps, pure run | speed-up "
        "| training share of HAML CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for system, run, s, pure_per_ps, aimd_fs in rows:
        cpu = s["cpu_s"]
        lines.append(
            f"| {system['label']} | {run.n_atoms} | {s['cycles']} "
            f"| {s['total_ps']:.3f} ({s['aimd_ps']:.3f} + {s['mlpmd_ps']:.3f}) "
            f"| {s['haml_cpu_h_per_ps']:.3f} | {s['aimd_cpu_h_per_ps']:.3f} "
            f"| {pure_per_ps:.3f} ({aimd_fs / 1000:.2f} ps) | {s['speedup']:.2f}x "
            f"| {100 * cpu['training'] / cpu['haml']:.0f} % |"
        )
    lines += [
        "",
        f"Cumulative cost per ps and speed-up per cycle: "
        f"![HAML vs AIMD](figures/{figure.name})",
        "",
        "Agreement with pure AIMD from the same start (time-averaged over the "
        "window; RDF overlap 1 = identical):",
        "",
        "| system | window fs | frames HAML / AIMD | RDF overlap per pair | "
        "mean bonds HAML / AIMD |",
        "| --- | --- | --- | --- | --- |",
    ]
    for system, window, agree in accuracy:
        rdf = ", ".join(f"{k} {v:.2f}" for k, v in agree["rdf_similarity"].items())
        bonds = ", ".join(f"{k} {a:.1f} / {b:.1f}" for k, (a, b) in agree["bonds"].items())
        lines.append(
            f"| {system['label']} | {window:.0f} | {agree['frames'][0]} / "
            f"{agree['frames'][1]} | {rdf} | {bonds} |"
        )
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        from perfdoc import write_section

        write_section(text, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
