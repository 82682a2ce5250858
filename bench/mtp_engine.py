"""MTP engine figures: accuracy and warm retraining time.

On GFN1-xTB AIMD frames of the mini Li | Li6PS5Cl interface at 300 K
(relaxed first, as a HAML run does before its first AIMD segment):

1. accuracy: lev_max 12 trained on the first 80 % of the frames, tested on
   the last 20 % (energy RMSE per atom, force RMSE), with a HAML cycle's
   training settings and with longer fits (more L-BFGS iterations, more
   rounds); before (L-BFGS on all coefficients) and on the frames of an MD
   started from the unrelaxed interface, for comparison;
2. training time: a warm-started retrain on all frames after adding the
   last segment, starting from the cycle-settings potential of step 1.

The cost of force calls and of the grade is bench/mlpmd_throughput.py's.

    OMP_NUM_THREADS=1 python bench/mtp_engine.py [--frames 200] [--no-write]

The AIMD frames are cached in bench/.cache/ (delete it to regenerate).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench/.cache"
SECTION = "## MTP engine"


RELAX_FMAX = 0.05
RELAX_STEPS = 300


def aimd_frames(n_frames: int, *, relaxed: bool = True):
    """GFN1-xTB NVT frames of the mini interface, cached as MLIP .cfg.

    ``relaxed``: the interface is first relaxed (fixed cell, fmax RELAX_FMAX,
    at most RELAX_STEPS steps) as a HAML run optimizes before its first
    AIMD segment, so the frames sample 300 K around the relaxed interface.
    Without it the MD starts from the built interface, which releases about
    176 meV/atom in the first 200 fs: the frames are a quench, not 300 K.
    Returns the frames and the seconds it took to make them (None if cached).
    """
    from haml_flows.engines.frames import trajectory_frames
    from haml_flows.engines.reference import AimdSegmentMaker, GeometryOptimization
    from haml_flows.mtp.frames import cfg_to_frames, frames_to_cfg
    from haml_flows.spec import OptimizationSpec
    from haml_flows.systems import li_lpsc_mini

    name = "relaxed_" if relaxed else ""
    path = CACHE / f"li_lpsc_mini_xtb_{name}{n_frames}.cfg"
    if path.exists():
        return cfg_to_frames(path.read_text()), None
    start = time.perf_counter()
    structure = li_lpsc_mini()
    if relaxed:
        optimizer = GeometryOptimization(
            settings=OptimizationSpec(fmax=RELAX_FMAX, steps=RELAX_STEPS)
        )
        structure, _ = optimizer.optimize(structure)
    result = AimdSegmentMaker(n_steps=n_frames - 1).run_ase(structure)
    seconds = time.perf_counter() - start
    frames = trajectory_frames(result.trajectory)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(frames_to_cfg(frames))
    return frames, seconds


def doubled(atoms):
    """``atoms`` repeated twice along a, with its energy doubled and forces repeated.

    Exact for a periodic pair potential; here only for timing training on
    frames of twice the atoms (GFN1-xTB at the Gamma point does not make the
    supercell energy exactly twice the cell's).
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    results = atoms.calc.results
    big = atoms.repeat((2, 1, 1))
    keep = {"energy": 2 * results["energy"], "forces": np.tile(results["forces"], (2, 1))}
    if "stress" in results:
        keep["stress"] = results["stress"]
    big.calc = SinglePointCalculator(big, **keep)
    return big


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    logging.getLogger("motep").setLevel(logging.ERROR)

    from haml_flows.mtp.training import train_mtp

    frames, aimd_seconds = aimd_frames(args.frames)
    n_atoms = len(frames[0])
    n_train = int(0.8 * len(frames))
    print(f"{len(frames)} frames x {n_atoms} atoms", flush=True)

    from haml_flows.spec import MtpSpec

    # a HAML cycle's training settings, the defaults of every fit below
    cycle = MtpSpec()
    iterations, radial_frames_default = cycle.radial_iterations, cycle.radial_frames
    linear_frames = cycle.linear_frames

    def timed(on=frames, **kwargs):
        start = time.process_time()
        settings = {
            "radial_iterations": iterations, "rounds": cycle.rounds,
            "radial_frames": radial_frames_default, "linear_frames": linear_frames,
        }
        result = train_mtp(on, level=12, **(settings | kwargs))
        return result, time.process_time() - start

    # accuracy: train on the first 80 %, test on the last 20 %: the settings
    # a HAML cycle uses, then longer fits (more iterations, more rounds)
    fits = {}
    few = radial_frames_default
    sweep = [(iterations, 1, few), (100, 1, few)]
    sweep += [(its, 2, few) for its in (40, 50, 60)]
    sweep += [(50, 3, few), (50, 2, 2 * few)]
    for its, rounds, radial_frames in sweep:
        result, cpu = fits[its, rounds, radial_frames] = timed(
            holdout_fraction=0.2, radial_iterations=its, rounds=rounds,
            radial_frames=radial_frames,
        )
        print(f"cold, {its} iterations x {rounds} rounds on {radial_frames} frames: "
              f"{cpu:.1f} CPU s, F {result.force_rmse:.3f} "
              f"E {1000 * result.energy_rmse:.2f}", flush=True)
    cold, cold_cpu = fits[iterations, 1, few]
    # before: L-BFGS on all coefficients, not only the radial ones
    all_coefficients = ("species_coeffs", "moment_coeffs", "radial_coeffs")
    before, before_cpu = timed(holdout_fraction=0.2, lbfgs_coefficients=all_coefficients)
    print(f"cold, L-BFGS on all coefficients: {before_cpu:.1f} CPU s, "
          f"F {before.force_rmse:.3f} E {1000 * before.energy_rmse:.1f}", flush=True)
    # the frames of an MD started from the built, unrelaxed interface
    quench_frames, _ = aimd_frames(args.frames, relaxed=False)
    quench, _ = timed(on=quench_frames, holdout_fraction=0.2)
    energies = [f.calc.results["energy"] for f in quench_frames]
    quench_drop = 1000 * (energies[0] - energies[-1]) / n_atoms
    print(f"unrelaxed start: F {quench.force_rmse:.3f} E {1000 * quench.energy_rmse:.1f}",
          flush=True)
    # the held-out frames arrive as a new AIMD segment: warm retrain on all
    # frames from the potential of the cold fit, as a HAML cycle does
    warm, warm_cpu = timed(previous=cold.potential, holdout_fraction=0.0)
    print(f"warm: {warm_cpu:.1f} CPU s, F {warm.force_rmse:.3f}", flush=True)
    # the same retrain on frames of twice the atoms (above the ~60 of the target)
    big_frames = [doubled(f) for f in frames]
    _, warm_big_cpu = timed(
        on=big_frames, previous=cold.potential, holdout_fraction=0.0
    )
    print(f"warm, {len(big_frames[0])}-atom frames: {warm_big_cpu:.1f} CPU s", flush=True)

    lines = [
        SECTION,
        "",
        f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} "
        f"python bench/mtp_engine.py --frames {args.frames}` "
        f"({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; training times in "
        "CPU seconds of one core, which other jobs on the machine do not inflate). "
        "Frames: GFN1-xTB "
        f"NVT 300 K, 1 fs, of the mini Li | Li6PS5Cl interface ({n_atoms} atoms), "
        f"relaxed first (fmax {RELAX_FMAX} eV/A) as a HAML run optimizes before "
        "its first AIMD segment"
        + (f", generated in {aimd_seconds:.0f} s." if aimd_seconds else " (cached)."),
        "",
        f"Accuracy: lev_max 12, trained on the first {n_train} frames, tested on "
        f"the last {len(frames) - n_train}; linear stages on {linear_frames} frames "
        "(`mtp.radial_iterations`, `mtp.rounds`, `mtp.radial_frames`); targets: "
        "force RMSE <= 0.15 eV/A, energy RMSE <= 5 meV/atom.",
        "",
        "| L-BFGS iterations x rounds, on frames | force RMSE, eV/A "
        "| energy RMSE, meV/atom | training, CPU s |",
        "| --- | --- | --- | --- |",
    ]
    for (its, rounds, radial_frames), (result, cpu) in fits.items():
        default = (its, rounds, radial_frames) == (iterations, 1, few)
        note = " (a HAML cycle's default)" if default else ""
        lines.append(
            f"| {its} x {rounds}, {radial_frames}{note} | {result.force_rmse:.3f} "
            f"| {1000 * result.energy_rmse:.2f} | {cpu:.1f} |"
        )
    lines += [
        "",
        "| figure | measured | target |",
        "| --- | --- | --- |",
        f"| before: L-BFGS on all coefficients, not only the radial ones "
        f"({iterations} x 1) | {before.force_rmse:.3f} eV/A, "
        f"{1000 * before.energy_rmse:.2f} meV/atom, {before_cpu:.1f} CPU s | — |",
        f"| {iterations} x 1 on frames of an MD started from the built, unrelaxed "
        f"interface (a quench: {quench_drop:.0f} meV/atom released over the frames) | "
        f"{quench.force_rmse:.3f} eV/A, {1000 * quench.energy_rmse:.2f} meV/atom | — |",
        f"| warm retrain on all {len(frames)} frames from the cold fit "
        f"({iterations} x 1) | {warm_cpu:.1f} CPU s (training-set force RMSE "
        f"{warm.force_rmse:.3f} eV/A) | <= 60 s |",
        f"| same, on the {len(frames)} frames doubled along a ({len(big_frames[0])} "
        f"atoms each; for timing) | {warm_big_cpu:.1f} CPU s | <= 60 s (~60 atoms) |",
    ]
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        sys.path.insert(0, str(ROOT / "bench"))
        from perfdoc import write_section

        write_section(text, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
