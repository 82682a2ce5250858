"""MLP-MD throughput: microseconds per atom-step and MD steps per second.

On GFN1-xTB frames of the mini Li | Li6PS5Cl interface (the cache of
bench/mtp_engine.py):

1. a force call alone and a force call + the MaxVol grade, per atom-step,
   at lev_max 8, 12 and 16, on the real AIMD configurations;
2. the whole MLP-MD loop of a HAML cycle (``MlpMdMaker``: Nose-Hoover
   integrator, force call, grade, frame saving) in steps per second and
   per atom-step, with the grade every step and every 10 steps; the part
   of a step spent outside the force call and the grade is the Python
   overhead of the loop.

    OMP_NUM_THREADS=1 python bench/mlpmd_throughput.py [--steps 400] [--no-write]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
SECTION = "## MLP-MD throughput"


def loop_throughput(potential: str, frames, steps: int, gamma_every: int) -> dict:
    """Run the production MLP-MD loop for ``steps`` steps; time its parts."""
    import numpy as np
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from haml_flows.engines.frames import structure_with_velocities
    from haml_flows.engines.mlpmd import MlpMdMaker
    from haml_flows.mtp.frames import frames_to_cfg
    from haml_flows.spec import MlpMdSpec

    start_frame = frames[-1].copy()
    MaxwellBoltzmannDistribution(
        start_frame, temperature_K=300, rng=np.random.default_rng(0)
    )
    maker = MlpMdMaker(mlpmd=MlpMdSpec(max_steps=steps, gamma_break=float("inf"), gamma_every=gamma_every))
    structure = structure_with_velocities(start_frame)
    training_set = frames_to_cfg(frames)
    doc = maker._run(structure, potential, training_set)
    n_atoms = len(start_frame)
    # CPU seconds of the steps alone: the active set is built once per segment
    loop_cpu = doc.cost.cpu_seconds - doc.active_set_cost.cpu_seconds
    return {
        "steps": doc.n_steps,
        "loop_cpu": loop_cpu,
        "active_set_cpu": doc.active_set_cost.cpu_seconds,
        "us_per_atom_step": 1e6 * loop_cpu / (doc.n_steps * n_atoms),
        "steps_per_second": doc.n_steps / loop_cpu,
        "temperature_end": doc.temperature_end,
        "stop_reason": doc.stop_reason,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)
    logging.getLogger("motep").setLevel(logging.ERROR)

    from mtp_engine import aimd_frames, md_cost

    from haml_flows.mtp.training import train_mtp

    frames, _ = aimd_frames(args.frames)
    n_atoms = len(frames[0])
    rows = []
    for level in (8, 12, 16):
        stock, forces, graded = md_cost(level, frames)
        rows.append((level, stock, forces, graded))
        print(f"lev {level}: motep {stock:.1f}, ours {forces:.1f} / {graded:.1f} "
              "us per atom-step", flush=True)

    # the loop runs on a potential fitted to all frames with a HAML cycle's
    # training settings; its end temperature and stop reason are reported
    from haml_flows.spec import MtpSpec

    spec = MtpSpec()
    potential = train_mtp(
        frames, level=12, holdout_fraction=0.0,
        radial_iterations=spec.radial_iterations, radial_frames=spec.radial_frames,
        linear_frames=spec.linear_frames,
    ).potential
    # per segment, before its first step, the collapse guard finds the
    # shortest distance of each species pair over the training frames
    from haml_flows.distances import pair_minimum_distances

    start = time.process_time()
    pair_minimum_distances(frames)
    guard_setup = time.process_time() - start
    loops = {}
    for every in (1, 10):
        loops[every] = loop_throughput(potential, frames, args.steps, every)
        print(f"loop, grade every {every}: {loops[every]}", flush=True)
    call_cost = {every: rows[1][2] if every > 1 else rows[1][3] for every in loops}

    lines = [
        SECTION,
        "",
        f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} "
        f"python bench/mlpmd_throughput.py --steps {args.steps}` "
        f"({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; mini Li | "
        f"Li6PS5Cl interface, {n_atoms} atoms, GFN1-xTB frames of "
        "bench/mtp_engine.py's cache). CPU time of one core (OMP_NUM_THREADS=1), "
        "so other jobs on the machine do not inflate it.",
        "",
        "Force calls on the AIMD frames (1 fs apart, so the neighbour list is "
        "rebuilt at least as often as in MLP-MD's 0.5 fs steps); before: motep's "
        "own calculator (ASE neighbour list and state check), after: ours "
        "(`GammaCalculator`: motep's compiled engine with vesin's neighbour "
        "search and an exact state check).",
        "",
        "| lev_max | before: motep's calculator, forces, us/atom-step "
        "| forces, us/atom-step | forces + grade, us/atom-step | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    for level, stock, forces, graded in rows:
        target = "<= 20" if level == 12 else "—"
        lines.append(
            f"| {level} | {stock:.1f} | {forces:.1f} | {graded:.1f} | {target} |"
        )
    lines += [
        "",
        "Whole MLP-MD loop (`MlpMdMaker`, Nose-Hoover 0.5 fs, lev_max 12):",
        "",
        "| grade every | steps | steps per CPU-s | us/atom-step | loop overhead "
        "beyond force (+ grade) calls, us/atom-step | of which per-segment guard "
        "set-up, us/atom-step | active set build, CPU s | end temperature, K "
        "| stop |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for every, loop in loops.items():
        overhead = loop["us_per_atom_step"] - call_cost[every]
        setup = 1e6 * guard_setup / (loop["steps"] * n_atoms)
        lines.append(
            f"| {every} | {loop['steps']} | {loop['steps_per_second']:.0f} "
            f"| {loop['us_per_atom_step']:.1f} | {overhead:.1f} | {setup:.1f} "
            f"| {loop['active_set_cpu']:.2f} | {loop['temperature_end']:.0f} "
            f"| {loop['stop_reason']} |"
        )
    lines += [
        "",
        f"Per-segment set-up outside the steps: the active set (column above) and "
        f"the collapse guard's pair minima over the {len(frames)} training frames, "
        f"{guard_setup:.2f} CPU s; both are paid once per segment, so their share per "
        "atom-step shrinks as segments get longer.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        from perfdoc import write_section

        write_section(text, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
