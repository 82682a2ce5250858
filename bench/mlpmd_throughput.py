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

    start_frame = frames[-1].copy()
    MaxwellBoltzmannDistribution(
        start_frame, temperature_K=300, rng=np.random.default_rng(0)
    )
    maker = MlpMdMaker(
        max_steps=steps, gamma_break=float("inf"), gamma_every=gamma_every
    )
    structure = structure_with_velocities(start_frame)
    training_set = frames_to_cfg(frames)
    t0 = time.perf_counter()
    doc = maker._run(structure, potential, training_set)
    wall = time.perf_counter() - t0
    n_atoms = len(start_frame)
    return {
        "steps": doc.n_steps,
        "wall": wall,
        "cpu": doc.cost.cpu_seconds,
        "gamma_seconds": doc.gamma_seconds,
        "us_per_atom_step": 1e6 * doc.cost.wall_seconds / (doc.n_steps * n_atoms),
        "steps_per_second": doc.n_steps / doc.cost.wall_seconds,
        "n_atoms": n_atoms,
        "temperature_end": doc.temperature_end,
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
        forces, graded = md_cost(level, frames)
        rows.append((level, forces, graded))
        print(f"lev {level}: {forces:.1f} / {graded:.1f} us per atom-step", flush=True)

    # the loop runs on a potential fitted to the frames (linear part), the
    # same kind a first HAML cycle produces
    potential = train_mtp(frames, level=12, radial_iterations=0).potential
    loops = {}
    for every in (1, 10):
        loops[every] = loop_throughput(potential, frames, args.steps, every)
        print(f"loop, grade every {every}: {loops[every]}", flush=True)
    force_only = rows[1][1]

    lines = [
        SECTION,
        "",
        f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} "
        f"python bench/mlpmd_throughput.py --steps {args.steps}` "
        f"({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; mini Li | "
        f"Li6PS5Cl interface, {n_atoms} atoms, GFN1-xTB frames of "
        "bench/mtp_engine.py's cache). Wall-clock figures; other jobs may share "
        "the machine, so compare rows of one run.",
        "",
        "| lev_max | forces, us/atom-step | forces + grade, us/atom-step | target |",
        "| --- | --- | --- | --- |",
    ]
    for level, forces, graded in rows:
        target = "<= 20" if level == 12 else "—"
        lines.append(f"| {level} | {forces:.1f} | {graded:.1f} | {target} |")
    lines += [
        "",
        "Whole MLP-MD loop (`MlpMdMaker`, Nose-Hoover 0.5 fs, lev_max 12):",
        "",
        "| grade every | steps | steps/s | us/atom-step | of which grade | "
        "loop overhead (us/atom-step) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for every, loop in loops.items():
        grade = 1e6 * loop["gamma_seconds"] / (loop["steps"] * n_atoms)
        overhead = loop["us_per_atom_step"] - force_only - grade
        lines.append(
            f"| {every} | {loop['steps']} | {loop['steps_per_second']:.0f} "
            f"| {loop['us_per_atom_step']:.1f} | {grade:.1f} | {overhead:.1f} |"
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
