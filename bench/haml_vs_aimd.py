"""HAML against AIMD on the same engine and system: cost per ps, speed-up, agreement.

For each system (the mini Li | Li6PS5Cl interface and a small Li | LiFSI +
DME interface, GFN1-xTB as the reference engine) two independent tasks run
concurrently in a pool of ``--jobs`` worker processes:

1. a HAML run (``--ps`` simulated ps or ``--max-cycles`` cycles, whichever
   comes first) on a private embedded server, one line per cycle
   (``[system] cycle N | ...``);
2. a pure AIMD run of ``--aimd-ps`` from the same start: the task builds the
   system and optimizes it with the run's own optimization, then runs AIMD
   with the run's engine, time step, thermostat and velocity seed. The main
   process checks afterwards that both started from the same structure
   (largest Cartesian displacement, in the agreement table).

Then, per system:

3. cost per simulated ps in CPU-hours (CPU time of each task's own process,
   so concurrent tasks do not inflate it): HAML (all stages of all cycles)
   and AIMD (the AIMD segments of the HAML run, and the pure AIMD run), the
   speed-ups, and their growth with simulated time (per-cycle cumulative
   curve, PNG in docs/figures/);
4. agreement over the window both cover (at most the first ps): overlap of
   the main partial RDFs and mean bond counts, HAML against pure AIMD.

A HAML run that fails is reported from the cycles it completed ("run end"
says in which cycle and why); a failed pure AIMD run leaves out only the
speed-up against it.

    OMP_NUM_THREADS=1 python bench/haml_vs_aimd.py [--systems lpsc dme] \
        [--ps 20] [--max-cycles 40] [--aimd-ps 1.0] [--jobs N] \
        [--set KEY=VALUE ...] [--no-write]

``--set`` overrides spec keys of every system (e.g. ``mtp.radial_frames=10``).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import chdir
from pathlib import Path

import numpy as np

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

PROGRESS = "haml_flows.progress"
ENGINES = {"xtb": "GFN1-xTB", "lj": "Lennard-Jones", "vasp": "VASP", "cp2k": "CP2K"}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def cumulative_curve(docs) -> list[dict]:
    """Per cycle: simulated ps so far, HAML and AIMD CPU-h per ps so far, speed-up.

    Continuation cycles (MLP-MD only) add their MLP-MD cost and time to HAML;
    the AIMD cost per ps comes from the AIMD segments seen so far (``None``
    until one was seen).
    """
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
        haml = _ratio(haml_cpu / 3600.0, doc.cumulative_fs / 1000.0)
        aimd = _ratio(aimd_cpu / 3600.0, aimd_fs / 1000.0)
        out.append({
            "cycle": doc.cycle, "ps": doc.cumulative_fs / 1000.0, "haml": haml,
            "aimd": aimd, "speedup": aimd / haml if aimd and haml else None,
        })
    return out


def continued_cycles(docs) -> int:
    """Cycles that only continued MLP-MD (no AIMD, no training)."""
    return sum(1 for doc in docs if getattr(doc, "continued", False))


def max_displacement(first, second) -> float:
    """Largest Cartesian displacement (A) between two structures of the same atoms.

    Minimum image in the first structure's lattice; raises ValueError when
    the atoms differ in number or species order.
    """
    if len(first) != len(second) or [s.species for s in first] != [
        s.species for s in second
    ]:
        raise ValueError("different atoms")
    delta = np.asarray(second.frac_coords) - np.asarray(first.frac_coords)
    delta -= np.round(delta)
    cart = delta @ np.asarray(first.lattice.matrix)
    return float(np.max(np.linalg.norm(cart, axis=1))) if len(cart) else 0.0


# -- worker tasks (each in its own spawned process) -----------------------------


def _setup_child(key: str) -> logging.Logger:
    """Logging and warnings of a worker: progress lines prefixed with the system."""
    from harness import quiet_warnings

    quiet_warnings()
    logging.getLogger("motep").setLevel(logging.ERROR)
    progress = logging.getLogger(PROGRESS)
    for handler in list(progress.handlers):
        progress.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(f"[{key}] %(message)s"))
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    progress.propagate = False
    return progress


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


class _FailedJobs(logging.Handler):
    """jobflow's local manager logs a failed job's traceback and then raises a
    bare "Flow did not finish running successfully"; keep the job's reason."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if " failed with exception:" in message:
            name, _, trace = message.partition(" failed with exception:")
            self.failures.append(f"{name}: {_last_line(trace)}")


def haml_task(key: str, spec_path: str, run_id: str, workdir: str) -> dict:
    """Run the spec as run ``run_id``; a failure is returned, not raised."""
    progress = _setup_child(key)
    from haml_flows.database.stores import make_job_store
    from haml_flows.runner import prepare_run, run_prepared_locally
    from haml_flows.settings import HamlSettings

    jobs_log = logging.getLogger("jobflow.managers.local")
    failed = _FailedJobs()
    jobs_log.addHandler(failed)
    jobs_log.setLevel(logging.INFO)
    jobs_log.propagate = False
    start = time.perf_counter()
    error = None
    try:
        run = prepare_run(spec_path, run_id=run_id)
        run_prepared_locally(run, make_job_store(HamlSettings()), Path(workdir))
    except Exception:  # noqa: BLE001 - the benchmark reports it
        error = failed.failures[-1] if failed.failures else _last_line(
            traceback.format_exc()
        )
        progress.error("HAML run failed: %s", error)
    return {"run_id": run_id, "error": error, "wall_seconds": time.perf_counter() - start}


def aimd_task(key: str, spec_path: str, ps: float, workdir: str) -> dict:
    """Build and optimize the system as the HAML run does, then pure AIMD of ``ps``.

    Returns the start structure, the frames, the CPU cost of the AIMD and the
    simulated fs; or the error (with the start structure when it got that far).
    """
    progress = _setup_child(key)
    from haml_flows.analysis.timeline import trajectory_frames
    from haml_flows.engines.frames import measure_cost
    from haml_flows.flows.haml import HamlMaker, aimd_maker
    from haml_flows.runner import prepare_run

    out = {"error": None, "structure": None}
    # atomate2's relax and MD write files (final_atoms_object.xyz) into the cwd
    Path(workdir).mkdir(parents=True, exist_ok=True)
    with chdir(workdir):
        try:
            prepared = prepare_run(spec_path)
            spec = prepared.spec
            optimization = HamlMaker.from_spec(spec).optimization
            structure = (
                prepared.structure
                if optimization is None
                else optimization.optimize(prepared.structure)[0]
            )
            out["structure"] = structure
            ref = spec.reference
            steps = int(round(ps * 1000.0 / ref.time_step))
            maker = aimd_maker(ref.model_copy(update={"steps": steps}))
            progress.info("pure AIMD: start, %d steps of %g fs (%g ps)", steps,
                          ref.time_step, steps * ref.time_step / 1000.0)
            with measure_cost() as meter:
                result = maker.run_ase(structure)
            out["frames"] = list(
                trajectory_frames(result.trajectory, dt_fs=ref.time_step, stage="aimd")
            )
            out["cost"] = meter.cost.model_dump()
            out["fs"] = steps * ref.time_step
            progress.info("pure AIMD: done, %d steps, %.1f CPU s (%.1f s wall)", steps,
                          meter.cost.cpu_seconds, meter.cost.wall_seconds)
        except Exception:  # noqa: BLE001 - the benchmark reports it
            out["error"] = _last_line(traceback.format_exc())
            progress.error("pure AIMD failed: %s", out["error"])
    return out


# -- main process ---------------------------------------------------------------


def run_end(task: dict, docs, summary) -> str:
    """The run's stop reason, or in which cycle it failed and why."""
    if task.get("error"):
        return f"failed in cycle {len(docs) + 1}: {task['error']}"
    return summary.stop_reason if summary is not None else "no summary"


def _fmt(value: float | None, spec: str = ".3f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def _cell(text: str) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def system_result(key: str, haml: dict, aimd: dict, store) -> dict:
    """Costs, curve, start-structure check and agreement of one system."""
    from haml_flows.analysis.agreement import agreement, window_profile
    from haml_flows.analysis.cost import cost_summary
    from haml_flows.analysis.timeline import run_timeline, segments
    from haml_flows.queries import cycle_docs, run_doc, run_summary

    system = SYSTEMS[key]
    run_id = haml["run_id"]
    docs = cycle_docs(store, run_id)
    rdoc = run_doc(store, run_id)
    summary = cost_summary(docs, rdoc)
    pure_per_ps = None
    if not aimd.get("error"):
        pure_per_ps = _ratio(aimd["cost"]["cpu_seconds"] / 3600.0, aimd["fs"] / 1000.0)
    haml_per_ps = summary["haml_cpu_h_per_ps"]
    result = {
        "key": key,
        "system": system,
        "run_id": run_id,
        "n_atoms": rdoc.n_atoms if rdoc is not None else None,
        "summary": summary,
        "continued": continued_cycles(docs),
        "run_end": run_end(haml, docs, run_summary(store, run_id)),
        "curve": cumulative_curve(docs),
        "pure_per_ps": pure_per_ps,
        "pure_speedup": pure_per_ps / haml_per_ps if pure_per_ps and haml_per_ps else None,
        "aimd": aimd,
        "displacement": None,
        "window": None,
        "agreement": None,
        "note": "",
    }
    if rdoc is not None and aimd.get("structure") is not None:
        try:
            result["displacement"] = max_displacement(rdoc.structure, aimd["structure"])
        except ValueError as exc:
            result["note"] = f"start structures: {exc}"
    if docs and not aimd.get("error"):
        window = min(1000.0, aimd["fs"], summary["total_ps"] * 1000.0)
        # continuation cycles have no AIMD segment
        segs = [s for s in segments(store, run_id, docs) if s.job_uuid]
        try:
            haml_profile = window_profile(
                run_timeline(store, run_id, segment_list=segs), system["pairs"], window
            )
            aimd_profile = window_profile(iter(aimd["frames"]), system["pairs"], window)
            result["window"] = window
            result["agreement"] = agreement(haml_profile, aimd_profile)
        except (ValueError, KeyError) as exc:
            result["note"] = f"agreement: {exc}"
    return result


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def xy(curve, key):
        points = [(c["ps"], c[key]) for c in curve if c[key] is not None]
        return [p for p, _ in points], [v for _, v in points]

    fig, (cost_ax, speed_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for label, curve in curves.items():
        line = cost_ax.plot(*xy(curve, "haml"), marker="o", ms=3,
                            label=f"HAML, {label}")[0]
        cost_ax.plot(*xy(curve, "aimd"), ls="--", color=line.get_color(),
                     label=f"AIMD, {label}")
        speed_ax.plot(*xy(curve, "speedup"), marker="o", ms=3, label=label)
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


def verdict_cell(verdict: dict | None) -> str:
    """The fidelity gate's verdict for the run's settings (bench/gate_verdicts.json)."""
    if verdict is None:
        return "**not gated** for these settings: no figure to trust"
    failed = [c["name"] for c in verdict["criteria"] if not c["passed"]]
    where = (f"{verdict['window_ps']:g} ps x {len(verdict['seeds'])} seeds, "
             f"{verdict['date']}, {verdict['commit']}")
    if verdict["matched"]:
        return f"matched ({where})"
    return f"**NOT matched** ({where}; fails: {', '.join(failed)})"


def cost_row(r: dict) -> str:
    s = r["summary"]
    cpu = s["cpu_s"]
    aimd = r["aimd"]
    if aimd.get("error"):
        pure = f"failed: {aimd['error']}"
    else:
        pure = f"{_fmt(r['pure_per_ps'])} ({aimd['fs'] / 1000:g} ps)"
    share = _fmt(_ratio(100 * cpu["training"], cpu["haml"]), ".0f", " %")
    return (
        f"| {r['system']['label']} | {r['n_atoms'] or 'n/a'} | {s['cycles']} "
        f"| {r['continued']} | {_cell(r['run_end'])} "
        f"| {s['total_ps']:.3f} ({s['aimd_ps']:.3f} + {s['mlpmd_ps']:.3f}) "
        f"| {_fmt(s['haml_cpu_h_per_ps'])} | {_fmt(s['aimd_cpu_h_per_ps'])} "
        f"| {_cell(pure)} | {_fmt(s['speedup'], '.2f', 'x')} "
        f"| {_fmt(r['pure_speedup'], '.2f', 'x')} | {_cell(verdict_cell(r['verdict']))} "
        f"| {share} |"
    )


def agreement_row(r: dict) -> str:
    disp = _fmt(r["displacement"], ".2g")
    agree = r["agreement"]
    if agree is None:
        why = r["note"] or (
            "pure AIMD failed" if r["aimd"].get("error") else "no completed cycle"
        )
        return f"| {r['system']['label']} | {disp} | n/a | n/a | {_cell(why)} | n/a |"
    rdf = ", ".join(f"{k} {v:.2f}" for k, v in agree["rdf_similarity"].items())
    bonds = ", ".join(f"{k} {a:.1f} / {b:.1f}" for k, (a, b) in agree["bonds"].items())
    return (
        f"| {r['system']['label']} | {disp} | {r['window']:.0f} | {agree['frames'][0]} / "
        f"{agree['frames'][1]} | {rdf} | {bonds} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--ps", type=float, default=20.0)
    parser.add_argument("--max-cycles", type=int, default=40)
    parser.add_argument("--aimd-ps", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: the number of cores)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="overrides")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.aimd_ps <= 0:
        parser.error("--aimd-ps must be positive")

    from harness import (
        parse_overrides,
        private_database,
        quiet_warnings,
        settings_fingerprint,
        spec_with,
        verdict_for,
    )

    from haml_flows.database.stores import make_job_store
    from haml_flows.flows.haml import new_run_id
    from haml_flows.runner import prepare_run
    from haml_flows.settings import HamlSettings
    from haml_flows.spec import SpecError

    quiet_warnings()
    overrides = {
        "stop.total_time_ps": args.ps,
        "stop.max_cycles": args.max_cycles,
        **parse_overrides(args.overrides),
    }
    results = {}
    with private_database() as tmp:
        specs, engines = {}, set()
        for key in args.systems:
            spec_path = spec_with(SYSTEMS[key]["spec"], overrides, tmp / f"{key}.yaml")
            # a spec the run would reject (bad --set) is a bad argument: fail now
            try:
                spec = prepare_run(spec_path).spec
            except SpecError as exc:
                parser.error(f"{key}: {exc}")
            specs[key] = (spec_path, new_run_id(spec.name))
            engines.add(ENGINES.get(spec.reference.engine, spec.reference.engine))
        # spawn: workers start clean (no inherited database client) and inherit
        # the HAML_* environment of the private database
        context = multiprocessing.get_context("spawn")
        outcomes: dict[str, dict] = {key: {} for key in args.systems}
        store = make_job_store(HamlSettings())
        store.connect()
        with ProcessPoolExecutor(
            max_workers=args.jobs, mp_context=context, max_tasks_per_child=1
        ) as pool:
            # the (longer) HAML runs first, then the pure AIMD runs
            futures = {}
            for key in args.systems:
                spec_path, run_id = specs[key]
                print(f"== {SYSTEMS[key]['label']}: HAML run {run_id}; pure AIMD "
                      f"{args.aimd_ps:g} ps", flush=True)
                futures[pool.submit(haml_task, key, str(spec_path), run_id,
                                    str(tmp / f"work_{key}"))] = (key, "haml")
            for key in args.systems:
                futures[pool.submit(aimd_task, key, str(specs[key][0]), args.aimd_ps,
                                    str(tmp / f"aimd_{key}"))] = (key, "aimd")
            for future in as_completed(futures):
                key, kind = futures[future]
                try:
                    outcome = future.result()
                except Exception as exc:  # noqa: BLE001 - a worker died
                    outcome = {"error": f"worker process: {type(exc).__name__}: {exc}"}
                    if kind == "haml":
                        outcome["run_id"] = specs[key][1]
                outcomes[key][kind] = outcome
                if len(outcomes[key]) == 2:
                    result = system_result(key, outcomes[key]["haml"],
                                           outcomes[key]["aimd"], store)
                    result["verdict"] = verdict_for(key, settings_fingerprint(
                        SYSTEMS[key]["spec"], parse_overrides(args.overrides)))
                    results[key] = result
                    print(f"== {SYSTEMS[key]['label']}: run end {result['run_end']}; "
                          f"start structures differ by at most "
                          f"{_fmt(result['displacement'], '.2g')} A; speed-up "
                          f"{_fmt(result['summary']['speedup'], '.2f', 'x')} "
                          f"(AIMD in the run), "
                          f"{_fmt(result['pure_speedup'], '.2f', 'x')} (pure AIMD); "
                          f"fidelity gate: {verdict_cell(result['verdict'])}",
                          flush=True)

    rows = [results[key] for key in args.systems]
    figure = FIGURES / "haml_vs_aimd.png"
    curves = {r["system"]["label"]: r["curve"] for r in rows if r["curve"]}
    if not args.no_write:
        plot(curves, figure)
    command = (
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python "
        f"bench/haml_vs_aimd.py --systems {' '.join(args.systems)} --ps {args.ps:g} "
        f"--max-cycles {args.max_cycles} --aimd-ps {args.aimd_ps:g} --jobs {args.jobs}"
        + (f" --set {' '.join(args.overrides)}" if args.overrides else "")
    )
    lines = [
        SECTION,
        "",
        f"Command: `{command}` ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; "
        f"{' / '.join(sorted(engines))} reference engine; the HAML run and the pure "
        "AIMD run of each system are separate tasks in a pool of worker processes; "
        "CPU time of each "
        "task's own process, so other jobs on the machine do not inflate it). "
        "Targets: speed-up >= 30x (solid), >= 15x (liquid).",
        "",
        "| system | atoms | cycles | continued cycles | run end "
        "| HAML ps (AIMD + MLP-MD) | HAML CPU-h/ps "
        "| AIMD CPU-h/ps, in the HAML run | AIMD CPU-h/ps, pure run "
        "| speed-up (vs AIMD in the run) | speed-up vs pure run "
        "| fidelity gate, same settings | training share of HAML CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(cost_row(r) for r in rows),
        "",
        "Continued cycles ran MLP-MD only (the previous segment ended at max_steps); "
        "a failed run is reported from the cycles it completed. A speed-up counts "
        "only where the fidelity gate (bench/fidelity.py) matched the same settings; "
        "its verdicts are kept in bench/gate_verdicts.json.",
        "",
        f"Cumulative cost per ps and speed-up per cycle: "
        f"![HAML vs AIMD](figures/{figure.name})",
        "",
        "Agreement with pure AIMD from the same start (the pure AIMD task builds "
        "and optimizes the system itself; start displacement = largest distance "
        "between an atom in its start structure and in the HAML run's optimized "
        "structure; time-averaged over the window; RDF overlap 1 = identical):",
        "",
        "| system | start displacement A | window fs | frames HAML / AIMD "
        "| RDF overlap per pair | mean bonds HAML / AIMD |",
        "| --- | --- | --- | --- | --- | --- |",
        *(agreement_row(r) for r in rows),
        "",
    ]
    text = "\n".join(lines)
    from perfdoc import publish

    publish(text, SECTION, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
