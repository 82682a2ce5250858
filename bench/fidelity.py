"""The fidelity gate: HAML runs against a pure-AIMD ensemble from the same start.

For each system (the mini Li | Li6PS5Cl interface over ``--ps-lpsc`` ps, the
mini Li | LiFSI + DME interface over ``--ps-dme`` ps, GFN1-xTB as the
reference engine):

1. the reference ensemble: pure AIMD from the run's optimized start, one run
   per velocity seed (the spec's ``reference.seed`` replaced), cached in
   bench/.cache/fidelity/ so that reruns reuse it;
2. HAML runs with the same seeds and the spec's settings (``--set`` to try
   others), on an embedded server whose data stay in bench/.cache/fidelity/
   haml_db: a run that finished is reused by a later invocation with the same
   settings, window, seed and committed haml_flows/ tree (index
   haml_runs.json), so a gate longer than one sitting can be completed in
   several (``--fresh`` runs them all again);
3. haml_flows.analysis.fidelity: per tracked bond type the time-averaged
   count and its series, partial-RDF overlaps HAML-AIMD next to AIMD-AIMD,
   the temperatures, the closest contacts and the audited force RMSE, and
   the verdict per criterion. Also the HAML cost per ps and its speed-up
   over the ensemble's own AIMD cost.

    OMP_NUM_THREADS=1 python bench/fidelity.py [--systems lpsc dme] [--seeds 3] \
        [--haml-seeds N] [--ps-lpsc 2.0] [--ps-dme 1.0] [--jobs 2] [--set KEY=VALUE ...] \
        [--reference-only] [--no-write] [--fresh] [--code-tree TREE]

``--seeds`` sets the reference ensemble, ``--haml-seeds`` how many of its seeds
also get a HAML run: a larger ensemble makes the bond-count band less a matter
of chance, and the table shows how often pure AIMD itself passes the criteria
(each seed against the others).

Figures: docs/figures/fidelity_<system>.png; each system's gate table goes into
its "Fidelity gate: <system>" section of docs/performance.md and its verdict into
bench/gate_verdicts.json (``--no-write``: printed only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import os
import pickle
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import chdir
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from harness import GATE_CACHE as CACHE

FIGURES = ROOT / "docs/figures"
SECTION = "## Fidelity gate: "
"""Each system has its own section, headed ``SECTION + label``."""

SYSTEMS = {
    "lpsc": {
        "spec": ROOT / "workflows/li_lpsc_mini.yaml",
        "label": "Li / Li6PS5Cl (mini)",
        "bonds": ["P-S", "Li-P", "Li-S", "Li-Cl"],
        "max_force_rmse": 0.15,
    },
    "dme": {
        "spec": ROOT / "workflows/li_lifsi_dme_mini.yaml",
        "label": "Li / LiFSI + DME (mini)",
        "bonds": ["Li-O", "Li-F", "Li-N", "Li-S"],
        "max_force_rmse": 0.20,
    },
}


def _fingerprint(spec_path: Path) -> str:
    """Hash of what the reference ensemble depends on: system, reference, optimization."""
    import yaml

    data = yaml.safe_load(Path(spec_path).read_text())
    keep = {k: data.get(k) for k in ("system", "reference", "optimization")}
    keep["reference"] = {k: v for k, v in (keep["reference"] or {}).items()
                         if k not in ("seed", "steps", "max_steps", "lengthen_factor")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


RUNS_INDEX = CACHE / "haml_runs.json"
"""Finished HAML runs of the gate, by :func:`_run_key`."""


def _code_tree() -> str:
    """The committed haml_flows/ tree, or "dirty" when the package has local changes
    (runs of uncommitted code are not reused)."""
    import subprocess

    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()

    if git("status", "--porcelain", "--", "haml_flows"):
        return "dirty"
    return git("rev-parse", "HEAD:haml_flows")[:12] or "unknown"


def _run_key(key: str, spec_path: Path, overrides: dict, seed: int, fs: float,
             tree: str) -> str:
    from harness import settings_fingerprint

    return (f"{key}|{settings_fingerprint(spec_path, overrides)}|code {tree}"
            f"|seed {seed}|{fs:.0f} fs")


def _finished_runs() -> dict:
    return json.loads(RUNS_INDEX.read_text()) if RUNS_INDEX.exists() else {}


def _record_run(run_key: str, outcome: dict) -> None:
    index = _finished_runs()
    index[run_key] = {**outcome, "date": time.strftime("%Y-%m-%d %H:%M")}
    RUNS_INDEX.write_text(json.dumps(index, indent=1))


def _seeded(spec_path: Path, seed: int, overrides: dict, out: Path) -> Path:
    from harness import spec_with

    return spec_with(spec_path, {**overrides, "reference.seed": seed}, out)


def _quiet() -> None:
    from harness import quiet_warnings

    quiet_warnings()
    logging.getLogger("motep").setLevel(logging.ERROR)


# -- worker tasks ---------------------------------------------------------------


def aimd_task(key: str, spec_path: str, seed: int, fs: float, cache: str) -> dict:
    """Pure AIMD of ``fs`` from the run's optimized start, velocities seeded by ``seed``."""
    _quiet()
    from haml_flows.engines.frames import measure_cost
    from haml_flows.faults.handlers import run_segment
    from haml_flows.flows.haml import HamlMaker, aimd_maker
    from haml_flows.runner import prepare_run

    workdir = Path(cache).with_suffix(".work")
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with chdir(workdir):
            prepared = prepare_run(spec_path)
            spec = prepared.spec
            optimization = HamlMaker.from_spec(spec).optimization
            structure = (
                prepared.structure if optimization is None
                else optimization.optimize(prepared.structure)[0]
            )
            steps = int(round(fs / spec.reference.time_step))
            maker = aimd_maker(spec.reference.model_copy(update={"steps": steps}))
            print(f"[{key} AIMD seed {seed}] {steps} steps", flush=True)
            with measure_cost() as meter:
                trajectory, corrections, _, simulated = run_segment(maker, structure)
        result = {
            "trajectory": trajectory.as_dict(), "cpu_seconds": meter.cost.cpu_seconds,
            "wall_seconds": meter.cost.wall_seconds, "fs": simulated,
            "corrections": len(corrections), "time_step": spec.reference.time_step,
        }
        Path(cache).write_bytes(pickle.dumps(result))
        print(f"[{key} AIMD seed {seed}] done, {meter.cost.cpu_seconds:.0f} CPU s", flush=True)
        return {"error": None}
    except Exception:  # noqa: BLE001 - reported by the main process
        return {"error": traceback.format_exc().strip().splitlines()[-1]}


def haml_task(key: str, spec_path: str, run_id: str, workdir: str) -> dict:
    """The HAML run of one seed; a failure is returned, not raised."""
    _quiet()
    from haml_vs_aimd import haml_task as run

    return run(f"{key} HAML", spec_path, run_id, workdir)


# -- main process ---------------------------------------------------------------


def reference_frames(cache: Path):
    """Frames of a cached pure-AIMD run (analysis.timeline Frames)."""
    from pymatgen.core.trajectory import Trajectory

    from haml_flows.analysis.timeline import trajectory_frames

    data = pickle.loads(cache.read_bytes())
    trajectory = Trajectory.from_dict(data["trajectory"])
    return data, list(trajectory_frames(trajectory, dt_fs=data["time_step"], stage="aimd"))


def evaluate(key: str, seeds: list[int], fs: float, caches: dict, runs: dict, store) -> dict:
    """Measures, verdicts and costs of one system: the HAML runs of ``runs``' seeds
    against the pure-AIMD ensemble of ``caches``' seeds."""
    from haml_flows.analysis.bonds import DEFAULT_CUTOFFS
    from haml_flows.analysis.cost import cost_summary
    from haml_flows.analysis.fidelity import (
        audited_force_rmse,
        gate,
        measure,
        reference_self_check,
        runs_passing,
    )
    from haml_flows.analysis.report import audit_analysis
    from haml_flows.analysis.timeline import run_timeline
    from haml_flows.queries import cycle_docs, run_doc
    from haml_flows.spec import load_spec

    system = SYSTEMS[key]
    cutoffs = {b: DEFAULT_CUTOFFS[b] for b in system["bonds"]}
    pairs = [tuple(b.split("-")) for b in system["bonds"]]
    reference, aimd_cpu, aimd_fs = [], 0.0, 0.0
    for seed in sorted(caches):
        data, frames = reference_frames(caches[seed])
        reference.append(measure(frames, cutoffs, pairs, fs))
        aimd_cpu += data["cpu_seconds"]
        aimd_fs += data["fs"]
    haml, audited, costs, ends, aimd_fs_in_runs, fs_in_runs = [], [], [], [], 0.0, 0.0
    audit_frames, cycles = [], []
    target = load_spec(system["spec"]).reference.temperature
    for seed in seeds:
        run_id = runs[seed]["run_id"]
        docs = cycle_docs(store, run_id)
        if not docs:
            ends.append(f"seed {seed}: {runs[seed].get('error') or 'no cycle'}")
            continue
        haml.append(measure(run_timeline(store, run_id), cutoffs, pairs, fs))
        audited.append(audited_force_rmse(docs))
        aimd_fs_in_runs += sum(d.aimd_fs for d in docs)
        fs_in_runs += docs[-1].cumulative_fs
        rdoc = run_doc(store, run_id)
        costs.append(cost_summary(docs, rdoc))
        audit = audit_analysis(store, docs, rdoc.spec if rdoc else {})
        audit_frames += [
            {"seed": seed, "cycle": c, "time_ps": t, "kind": k, "gamma": g, "force_rmse": e}
            for c, t, k, g, e in zip(audit.cycle, audit.time_ps, audit.kind, audit.gamma,
                                     audit.force_rmse)
        ]
        cycles += [{"seed": seed, **{k: getattr(d, k) for k in CYCLE_FIELDS}} for d in docs]
        ends.append(
            f"seed {seed}: {len(docs)} cycles, {docs[-1].cumulative_ps:.2f} ps"
            + (f", failed: {runs[seed]['error']}" if runs[seed].get("error") else "")
        )
    criteria = gate(reference, haml, audited, target_temperature=target,
                    max_force_rmse=system["max_force_rmse"]) if haml else []
    self_check = (reference_self_check(reference, target_temperature=target)
                  if len(reference) >= 3 else [])
    aimd_per_ps = aimd_cpu / 3600.0 / (aimd_fs / 1000.0)
    haml_per_ps = [c["haml_cpu_h_per_ps"] for c in costs if c["haml_cpu_h_per_ps"]]
    return {
        "key": key, "label": system["label"], "seeds": seeds, "window_fs": fs,
        "reference_seeds": sorted(caches), "self_check": self_check,
        "runs_passing": runs_passing(criteria),
        "audit_frames": audit_frames, "cycle_rows": cycles,
        "max_force_rmse": system["max_force_rmse"],
        "gamma_break": load_spec(system["spec"]).mlpmd.gamma_break,
        "criteria": criteria, "reference": reference, "haml": haml, "ends": ends,
        "matched": bool(criteria) and all(c.passed for c in criteria),
        "aimd_cpu_h_per_ps": aimd_per_ps,
        "haml_cpu_h_per_ps": float(np.mean(haml_per_ps)) if haml_per_ps else None,
        "speedup": aimd_per_ps / float(np.mean(haml_per_ps)) if haml_per_ps else None,
        "audited": audited,
        "aimd_share": aimd_fs_in_runs / fs_in_runs if fs_in_runs else None,
        "continued": [sum(d.continued for d in cycle_docs(store, runs[s]["run_id"]))
                      for s in seeds],
        "cycles": [len(cycle_docs(store, runs[s]["run_id"])) for s in seeds],
    }


CYCLE_FIELDS = (
    "cycle", "aimd_steps", "aimd_fs", "mlpmd_steps", "mlpmd_fs", "stop_reason",
    "gamma_at_stop", "training_set_size", "force_rmse", "audit_force_rmse",
    "audit_passed", "continued", "temperature_aimd_end", "temperature_mlpmd_end",
    "cumulative_fs",
)
"""What a verdict record keeps of each cycle of each HAML run."""


def plot_audit(result: dict, path: Path) -> None:
    """Audited force error of every HAML run against γ (the switching rule's
    calibration), against the time into its MLP-MD segment and along the runs,
    one colour per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = result["audit_frames"]
    starts = {(c["seed"], c["cycle"]): c["cumulative_fs"] - c["mlpmd_fs"]
              for c in result["cycle_rows"]}
    fig, (by_gamma, by_segment, by_time) = plt.subplots(1, 3, figsize=(14, 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, seed in enumerate(result["seeds"]):
        for kind, marker in (("sample", "o"), ("selected", "^"), ("check", "x")):
            rows = [f for f in frames if f["seed"] == seed and f["kind"] == kind]
            if not rows:
                continue
            label = f"seed {seed}, " + {"sample": "sampled", "selected": "selected",
                                        "check": "in-segment checks"}[kind]
            by_gamma.plot([f["gamma"] or np.nan for f in rows], [f["force_rmse"] for f in rows],
                          marker, color=colours[i % len(colours)], ls="none", ms=5,
                          label=label, alpha=0.8)
            by_time.plot([f["time_ps"] for f in rows], [f["force_rmse"] for f in rows],
                         marker, color=colours[i % len(colours)], ls="none", ms=5, alpha=0.8)
            by_segment.plot(
                [f["time_ps"] * 1000.0 - starts[(seed, f["cycle"])] for f in rows],
                [f["force_rmse"] for f in rows],
                marker, color=colours[i % len(colours)], ls="none", ms=5, alpha=0.8)
    top = max([result["max_force_rmse"] * 1.3, *(f["force_rmse"] for f in frames)]) * 1.05
    for ax in (by_gamma, by_segment, by_time):
        ax.axhline(result["max_force_rmse"], color="tab:red", ls="--", lw=1,
                   label=f"audit threshold {result['max_force_rmse']:g} eV/Å")
        ax.set_ylim(0, top)
        ax.set_ylabel("force RMSE against GFN1-xTB (eV/Å)")
    by_gamma.set_xscale("log")
    by_gamma.axvline(result["gamma_break"], color="k", ls=":", lw=1,
                     label=f"γ_break {result['gamma_break']:g}")
    by_gamma.set_xlabel("extrapolation grade γ of the audited frame")
    by_gamma.set_title("MLP error against γ", fontsize=10)
    by_segment.set_xlabel("MLP-MD time into its segment (fs)")
    by_segment.set_xlim(0, None)
    by_segment.set_title("MLP error along a segment", fontsize=10)
    by_time.set_xlabel("simulated time (ps)")
    by_time.set_xlim(0, result["window_fs"] / 1000.0)
    by_time.set_title("MLP error along the runs", fontsize=10)
    by_gamma.legend(fontsize=6.5)
    fig.suptitle(f"{result['label']}: the MLP audited on its own MLP-MD frames", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def replot_audit(systems: list[str], overrides: dict) -> None:
    """The audit figure of each system from its newest recorded verdict with ``overrides``."""
    from harness import settings_fingerprint, verdict_for

    from haml_flows.spec import load_spec

    for key in systems:
        spec = SYSTEMS[key]["spec"]
        record = verdict_for(key, settings_fingerprint(spec, overrides))
        if record is None or not record["audit_frames"]:
            print(f"{key}: no recorded verdict with audited frames for these settings")
            continue
        path = ROOT / f"docs/figures/fidelity_{key}_audit.png"
        plot_audit({**record, "key": key, "window_fs": record["window_ps"] * 1000.0,
                    "max_force_rmse": SYSTEMS[key]["max_force_rmse"],
                    "gamma_break": float(overrides.get("mlpmd.gamma_break",
                                                      load_spec(spec).mlpmd.gamma_break))},
                   path)
        print(f"{key}: {path.relative_to(ROOT)} from the verdict of {record['date']}, "
              f"commit {record['commit']}")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bonds = list(result["reference"][0].bond_series)
    fig, axes = plt.subplots(1, len(bonds) + 1, figsize=(3.3 * (len(bonds) + 1), 3.4))
    for ax, key in zip(axes, bonds):
        for i, m in enumerate(result["reference"]):
            ax.plot(m.times_ps, m.bond_series[key], color="0.5", lw=1,
                    label="pure AIMD (seeds)" if i == 0 else None)
        for i, m in enumerate(result["haml"]):
            ax.plot(m.times_ps, m.bond_series[key], color="tab:blue", lw=1,
                    label="HAML (same seeds)" if i == 0 else None)
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
        ax.set_xlabel("simulated time (ps)")
        ax.set_ylabel(f"{key} bonds")
        ax.set_title(key, fontsize=9)
    axes[0].legend(fontsize=7)
    ax = axes[-1]
    edges = np.linspace(0, 2.0 * 300, 41)
    ax.hist(np.concatenate([m.temperatures for m in result["reference"]]), bins=edges,
            density=True, alpha=0.5, color="0.5", label="pure AIMD")
    if result["haml"]:
        ax.hist(np.concatenate([m.temperatures for m in result["haml"]]), bins=edges,
                density=True, alpha=0.5, color="tab:blue", label="HAML")
    ax.axvline(300, color="k", ls="--", lw=1, label="target 300 K")
    ax.set_xlabel("temperature (K)")
    ax.set_ylabel("probability density (1/K)")
    ax.legend(fontsize=7)
    fig.suptitle(f"{result['label']}: HAML vs pure AIMD over "
                 f"{result['window_fs'] / 1000:g} ps", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def verdict_record(result: dict, overrides: dict, code: str) -> dict:
    """What bench/gate_verdicts.json keeps of one system's gate: settings, verdict, cost."""
    import subprocess

    from harness import settings_fingerprint

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    return {
        "system": result["key"], "label": result["label"],
        "fingerprint": settings_fingerprint(SYSTEMS[result["key"]]["spec"], overrides),
        "overrides": overrides, "window_ps": result["window_fs"] / 1000.0,
        "seeds": result["seeds"], "reference_seeds": result["reference_seeds"],
        "matched": result["matched"],
        "speedup": result["speedup"], "haml_cpu_h_per_ps": result["haml_cpu_h_per_ps"],
        "aimd_cpu_h_per_ps": result["aimd_cpu_h_per_ps"],
        "aimd_share": result["aimd_share"], "cycles": result["cycles"],
        "continued": result["continued"], "audited": result["audited"],
        "criteria": [c.__dict__ for c in result["criteria"]],
        "self_check": [{"name": c.name, "passed": c.passed} for c in result["self_check"]],
        "runs_passing": result["runs_passing"],
        "audit_frames": result["audit_frames"], "cycle_rows": result["cycle_rows"],
        "date": time.strftime("%Y-%m-%d"), "commit": commit, "code": code,
    }


def table(r: dict, command: str, overrides: dict, quiet: str) -> str:
    """The gate's section of one system."""
    speed = f"{r['speedup']:.1f}x" if r["speedup"] else "n/a"
    lines = [
        SECTION + r["label"],
        "",
        f"Command: `{command}` ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; "
        f"{quiet}). Settings: the spec's" + (
            f", with {', '.join(f'`{k}={v}`' for k, v in overrides.items())}"
            if overrides else ""
        ) + ". Pure AIMD: the same optimized start and velocity seeds, GFN1-xTB, "
        "cached in bench/.cache/fidelity/.",
        "",
        f"HAML seeds {', '.join(map(str, r['seeds']))} against pure-AIMD seeds "
        f"{', '.join(map(str, r['reference_seeds']))}, window "
        f"{r['window_fs'] / 1000:g} ps: **{'MATCHED' if r['matched'] else 'NOT matched'}**; "
        f"HAML {r['haml_cpu_h_per_ps'] or float('nan'):.4f} CPU-h/ps against pure AIMD "
        f"{r['aimd_cpu_h_per_ps']:.4f} ({speed}); AIMD "
        f"{100 * (r['aimd_share'] or 0):.0f} % of the simulated time; runs: "
        f"{'; '.join(r['ends'])}.",
        "",
        "| criterion | measured | verdict |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {c.name} | {c.detail} | {'pass' if c.passed else '**fail**'} |"
        for c in r["criteria"]
    ]
    if r["self_check"]:
        n = len(r["reference_seeds"])
        lines += [
            "",
            (f"The same criteria on pure AIMD itself: each AIMD seed judged against "
             f"the other {n - 1} (`reference_self_check`). A criterion that new AIMD "
             "seeds fail cannot tell HAML from AIMD."),
            "",
            "| criterion | AIMD seeds passing | failing seeds |", "| --- | --- | --- |",
        ]
        for c in r["self_check"]:
            failing = [str(seed) for seed, ok in zip(r["reference_seeds"], c.passed)
                       if not ok]
            lines.append(f"| {c.name} | {sum(c.passed)} of {n} | "
                         f"{', '.join(failing) or '-'} |")
        if r["runs_passing"]:
            failing = [str(seed) for seed, ok in zip(r["seeds"], r["runs_passing"]) if not ok]
            lines += ["", f"HAML, judged the same way: every criterion passed on "
                      f"{sum(r['runs_passing'])} of {len(r['runs_passing'])} seeds"
                      + (f" (failing: {', '.join(failing)})." if failing else ".")]
    lines += ["", f"![{r['label']}](figures/fidelity_{r['key']}.png)", ""]
    if r["audit_frames"]:
        lines += [("Audited force error against γ, against the time into its MLP-MD "
                   "segment and along the runs: "
                   f"![audit {r['label']}](figures/fidelity_{r['key']}_audit.png)"), ""]
    lines += [
        "Per cycle (seed: AIMD steps, MLP-MD steps and why it stopped, γ there, "
        "audited force RMSE):", "",
    ]
    for seed in r["seeds"]:
        rows = [c for c in r["cycle_rows"] if c["seed"] == seed]
        lines.append(f"- seed {seed}: " + "; ".join(
            f"{c['aimd_steps']} + {c['mlpmd_steps']} ({c['stop_reason']}, "
            f"γ {c['gamma_at_stop']:.3g}, audit "
            + ("n/a" if c["audit_force_rmse"] is None else f"{c['audit_force_rmse']:.3f}")
            + ")" for c in rows))
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=["lpsc", "dme"], choices=SYSTEMS)
    parser.add_argument("--seeds", type=int, default=3,
                        help="pure-AIMD seeds 1..N in the reference ensemble")
    parser.add_argument("--haml-seeds", type=int,
                        help="HAML runs on seeds 1..N only (default: every seed)")
    parser.add_argument("--code-tree", metavar="TREE",
                        help="judge the HAML runs recorded for this haml_flows/ tree "
                        "(haml_runs.json) instead of the checked-out one; starts no run")
    parser.add_argument("--ps-lpsc", type=float, default=2.0)
    parser.add_argument("--ps-dme", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--quiet-machine", action="store_true",
                        help="say in the doc that nothing else ran")
    parser.add_argument("--reference-only", action="store_true",
                        help="build (or check) the cached pure-AIMD ensembles and stop")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--fresh", action="store_true",
                        help="run every HAML seed again instead of reusing finished runs")
    parser.add_argument("--replot-audit", action="store_true",
                        help="redraw docs/figures/fidelity_<system>_audit.png from the newest "
                        "verdict recorded for these settings (bench/gate_verdicts.json) and stop")
    args = parser.parse_args()
    _quiet()
    from harness import parse_overrides, private_database, record_verdict

    overrides = parse_overrides(args.set)
    if args.replot_audit:
        replot_audit(args.systems, overrides)
        return
    seeds = list(range(1, args.seeds + 1))
    haml_seeds = seeds[:args.haml_seeds] if args.haml_seeds else seeds
    if args.haml_seeds is not None and not 1 <= args.haml_seeds <= args.seeds:
        parser.error(f"--haml-seeds {args.haml_seeds} must be 1..--seeds ({args.seeds})")
    windows = {"lpsc": args.ps_lpsc * 1000.0, "dme": args.ps_dme * 1000.0}
    CACHE.mkdir(parents=True, exist_ok=True)
    tree = args.code_tree or _code_tree()
    finished = {} if args.fresh or tree == "dirty" else _finished_runs()
    if args.code_tree and args.fresh:
        parser.error("--code-tree judges recorded runs; --fresh would start new ones")
    with private_database("haml_fidelity_", db_dir=CACHE / "haml_db") as tmp:
        from haml_flows.database.stores import make_job_store
        from haml_flows.flows.haml import new_run_id
        from haml_flows.settings import HamlSettings

        tasks, caches, runs, haml_queue = {}, {}, {}, []
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            for key in args.systems:
                spec = SYSTEMS[key]["spec"]
                fs = windows[key]
                caches[key], runs[key] = {}, {}
                for seed in seeds:
                    seeded = _seeded(spec, seed, {}, tmp / f"{key}_aimd_{seed}.yaml")
                    cache = CACHE / f"{key}_{_fingerprint(spec)}_seed{seed}_{fs:.0f}fs.pkl"
                    caches[key][seed] = cache
                    if not cache.exists():
                        # the reference runs first: it is the longest single task
                        tasks[pool.submit(aimd_task, key, str(seeded), seed, fs, str(cache))] = (
                            key, "aimd", seed)
                    if args.reference_only or seed not in haml_seeds:
                        continue
                    total = {"stop.total_time_ps": fs / 1000.0, "stop.max_cycles": 1000}
                    haml_spec = _seeded(spec, seed, {**total, **overrides},
                                        tmp / f"{key}_haml_{seed}.yaml")
                    run_key = _run_key(key, spec, overrides, seed, fs, tree)
                    if run_key in finished:
                        runs[key][seed] = finished[run_key]
                        print(f"{key} HAML seed {seed}: reusing run "
                              f"{finished[run_key]['run_id']} ({finished[run_key]['date']})",
                              flush=True)
                        continue
                    if args.code_tree:
                        raise SystemExit(f"no {key} HAML run of seed {seed} is recorded for "
                                         f"code tree {tree} in {RUNS_INDEX}; --code-tree "
                                         "judges recorded runs only")
                    run_id = new_run_id(f"fidelity-{key}-s{seed}")
                    runs[key][seed] = {"run_id": run_id, "run_key": run_key}
                    haml_queue.append(((key, "haml", seed), (
                        haml_task, key, str(haml_spec), run_id, str(tmp / f"work_{key}_{seed}"))))
            for label, call in haml_queue:
                tasks[pool.submit(*call)] = label
            for future in as_completed(tasks):
                key, kind, seed = tasks[future]
                outcome = future.result()
                if kind == "haml":
                    runs[key][seed].update(outcome)
                    if tree != "dirty":
                        _record_run(runs[key][seed]["run_key"], outcome)
                elif outcome["error"]:
                    raise SystemExit(f"{key} AIMD seed {seed} failed: {outcome['error']}")
                print(f"{key} {kind} seed {seed} finished", flush=True)
        if args.reference_only:
            for key in args.systems:
                for seed, cache in caches[key].items():
                    data = pickle.loads(cache.read_bytes())
                    print(f"{key} seed {seed}: {data['fs']:.0f} fs of pure AIMD, "
                          f"{data['cpu_seconds']:.0f} CPU s, {cache.name}")
            return 0
        store = make_job_store(HamlSettings())
        store.connect()
        results = [evaluate(k, haml_seeds, windows[k], caches[k], runs[k], store)
                   for k in args.systems]
    # --no-write leaves docs/ alone: the figures go next to the cache
    figures = CACHE / "figures" if args.no_write else FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    print(f"figures in {figures}", flush=True)
    for r in results:
        plot(r, figures / f"fidelity_{r['key']}.png")
        if r["audit_frames"]:
            plot_audit(r, figures / f"fidelity_{r['key']}_audit.png")
        summary = {
            "matched": r["matched"], "overrides": overrides, "speedup": r["speedup"],
            "criteria": [c.__dict__ for c in r["criteria"]], "ends": r["ends"],
            "audited": r["audited"], "cycles": r["cycles"], "continued": r["continued"],
        }
        (CACHE / f"last_{r['key']}.json").write_text(json.dumps(summary, indent=1))
        if not args.no_write:
            record_verdict(verdict_record(r, overrides, tree))
    command = "OMP_NUM_THREADS=1 python bench/fidelity.py " + " ".join(sys.argv[1:])
    from perfdoc import machine_note

    quiet = machine_note(args.quiet_machine)
    from perfdoc import publish

    for r in results:
        publish(table(r, command.strip(), overrides, quiet), SECTION + r["label"],
                write=not args.no_write)
    return 0 if all(r["matched"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
