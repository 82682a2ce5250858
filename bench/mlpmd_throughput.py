"""MLP-MD throughput: the force call, the extrapolation grade and the whole loop.

On GFN1-xTB frames of the mini Li | Li6PS5Cl interface (the cache of
bench/mtp_engine.py), CPU time of one core (run with OMP_NUM_THREADS=1):

1. per atom-step at lev_max 8, 12 and 16, on the real AIMD configurations
   (bench/grade_cost.py): motep's own calculator; before (motep's kernel
   behind vesin's neighbour list, and with the linear-parameter grade this
   project used to compute); the full grade the naive way (motep's train
   mode); ours, forces alone and forces + the grade over all parameters;
2. the whole MLP-MD loop of a HAML cycle (``MlpMdMaker``: Nose-Hoover
   integrator, force call, grade, collapse guard, frame saving) at lev_max
   12, with the grade every step, every 10 steps, and once per segment
   (the force-only reference of the same run).

    OMP_NUM_THREADS=1 python bench/mlpmd_throughput.py [--steps 400] [--quiet-machine] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
SECTION = "## MLP-MD throughput"


def loop_throughput(potential: str, frames, steps: int, gamma_every: int) -> dict:
    """Run the production MLP-MD loop for ``steps`` steps; time its parts.

    The active set is the training job's (chosen once per training, outside
    the loop); the start frame is the last AIMD frame with fresh 300 K
    velocities; gamma_break is infinite so that the loop runs to the end or
    to the collapse guard.
    """
    import numpy as np
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from haml_flows.engines.frames import structure_with_velocities
    from haml_flows.engines.mlpmd import MlpMdMaker
    from haml_flows.engines.training import active_set_record
    from haml_flows.mtp.frames import frames_to_cfg
    from haml_flows.spec import MlpMdSpec, MtpSpec

    start_frame = frames[-1].copy()
    MaxwellBoltzmannDistribution(
        start_frame, temperature_K=300, rng=np.random.default_rng(0)
    )
    maker = MlpMdMaker(
        mlpmd=MlpMdSpec(max_steps=steps, gamma_break=float("inf"), gamma_every=gamma_every)
    )
    structure = structure_with_velocities(start_frame)
    training_set = frames_to_cfg(frames)
    active_set, slots = active_set_record(potential, frames, MtpSpec())
    doc = maker._run(structure, potential, training_set, active_set.model_dump(), slots)
    n_atoms = len(start_frame)
    # CPU seconds of the steps alone: the set is rebuilt from its slots once per segment
    loop_cpu = doc.cost.cpu_seconds - doc.active_set_cost.cpu_seconds
    return {
        "steps": doc.n_steps,
        "loop_cpu": loop_cpu,
        "active_set_cpu": doc.active_set_cost.cpu_seconds,
        "choose_cpu": active_set.cost.cpu_seconds,
        "us_per_atom_step": 1e6 * loop_cpu / (max(doc.n_steps, 1) * n_atoms),
        "steps_per_second": doc.n_steps / loop_cpu,
        "temperature_end": doc.temperature_end,
        "stop_reason": doc.stop_reason,
        "gamma_seconds": doc.gamma_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--quiet-machine", action="store_true",
                        help="say in the doc that nothing else ran on the machine")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from harness import quiet_fits

    quiet_fits()

    from grade_cost import md_cost
    from perfdoc import machine_note
    from mtp_engine import aimd_frames

    from haml_flows.mtp.training import train_mtp
    from haml_flows.spec import MtpSpec

    frames, _ = aimd_frames(args.frames)
    n_atoms = len(frames[0])
    costs = {}
    for level in (8, 12, 16):
        costs[level] = md_cost(level, frames)
        print(f"lev {level}: {costs[level]}", flush=True)

    # the loop runs on a potential fitted to all frames with a HAML cycle's
    # training settings
    potential = train_mtp(frames, **{**MtpSpec().fit_settings(), "holdout_fraction": 0.0}).potential
    loops = {}
    for every in (1, 10, args.steps + 1):
        loops[every] = loop_throughput(potential, frames, args.steps, every)
        print(f"loop, grade every {every}: {loops[every]}", flush=True)
    force_only = loops[args.steps + 1]

    lines = [
        SECTION,
        "",
        f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} "
        f"python bench/mlpmd_throughput.py --steps {args.steps}"
        f"{' --quiet-machine' if args.quiet_machine else ''}` "
        f"({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, "
        f"{machine_note(args.quiet_machine)}; mini Li | "
        f"Li6PS5Cl interface, {n_atoms} atoms, GFN1-xTB frames of "
        "bench/mtp_engine.py's cache). CPU time of one core (OMP_NUM_THREADS=1).",
        "",
        "Force calls on the AIMD frames, us per atom-step. Before: motep's compiled "
        "kernel behind vesin's neighbour list, and that plus the grade this project "
        "computed until issue 16 (moment and species coefficients only; it disagreed "
        "with MLIP's MV_grade). Full grade: the derivatives of every site energy with "
        "respect to all parameters (radial coefficients included), as MLIP's "
        "calc-grade and LAMMPS' select use them; naively from motep's train mode, "
        "or from our kernel inside the force call.",
        "",
        "| lev_max | parameters | motep's calculator, forces | before: forces "
        "| before: forces + linear grade | full grade via motep's train mode "
        "| ours: forces | ours: forces + full grade | full grade / forces | target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for level, c in costs.items():
        ratio = c["forces_grade"] / c["forces"]
        target = "<= 30 us and <= 2x" if level == 12 else "—"
        lines.append(
            f"| {level} | {int(c['n_params'])} | {c['motep']:.1f} | {c['before_forces']:.1f} "
            f"| {c['before_linear_grade']:.1f} | {c['motep_train_grade']:.0f} "
            f"| {c['forces']:.1f} | **{c['forces_grade']:.1f}** | {ratio:.2f}x | {target} |"
        )
    lines += [
        "",
        "Whole MLP-MD loop (`MlpMdMaker`, Nose-Hoover 0.5 fs, lev_max 12; the grade "
        "once per segment is the force-only reference of the same run):",
        "",
        "| grade | steps | steps per CPU-s | us/atom-step | against force-only "
        "| grade products, wall s | active set from its slots, CPU s | end temperature, K "
        "| stop | target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    labels = {1: "every step", 10: "every 10 steps", args.steps + 1: "once (force-only)"}
    targets = {1: "<= 2x, <= 30 us", 10: "<= 1.2x", args.steps + 1: "—"}
    for every, loop in loops.items():
        ratio = loop["us_per_atom_step"] / force_only["us_per_atom_step"]
        lines.append(
            f"| {labels[every]} | {loop['steps']} | {loop['steps_per_second']:.0f} "
            f"| {loop['us_per_atom_step']:.1f} | {ratio:.2f}x | {loop['gamma_seconds']:.2f} "
            f"| {loop['active_set_cpu']:.2f} | {loop['temperature_end']:.0f} "
            f"| {loop['stop_reason']} | {targets[every]} |"
        )
    lines += [
        "",
        f"Choosing the active set (MLIP's MaxVol over the {len(frames)} training "
        f"frames' {len(frames) * n_atoms} neighbourhoods, in the training job): "
        f"{loops[1]['choose_cpu']:.2f} CPU s.",
        "",
    ]
    text = "\n".join(lines)
    from perfdoc import publish

    publish(text, SECTION, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
