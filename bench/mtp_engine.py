"""MTP engine figures: accuracy, warm retraining time, MLP-MD cost per atom-step.

On GFN1-xTB AIMD frames of the mini Li | Li6PS5Cl interface at 300 K:

1. accuracy: lev_max 12 trained on the first 80 % of the frames, tested on
   the last 20 % (energy RMSE per atom, force RMSE);
2. training time: a warm-started retrain on all frames after adding the
   last segment, starting from the potential of step 1, the old way and
   the earlier ways and the current one (before / after, in the same run):
   a first linear stage and L-BFGS on all frames; no first linear stage and
   L-BFGS on RADIAL_FRAMES frames; and also linear stages on at most
   LINEAR_FRAMES frames (the current default);
3. MLP-MD cost: microseconds per atom-step for a force call alone and for
   a force call + the grade, at lev_max 8, 12 and 16 (on the AIMD frames).

    python bench/mtp_engine.py [--frames 200] [--no-write]

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

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench/.cache"
SECTION = "## MTP engine"
RADIAL_FRAMES = 20
LINEAR_FRAMES = 100


def aimd_frames(n_frames: int):
    """GFN1-xTB NVT frames of the mini interface, cached as MLIP .cfg."""
    from haml_flows.engines.frames import trajectory_frames
    from haml_flows.engines.reference import AimdSegmentMaker
    from haml_flows.mtp.frames import cfg_to_frames, frames_to_cfg
    from haml_flows.systems import li_lpsc_mini

    path = CACHE / f"li_lpsc_mini_xtb_{n_frames}.cfg"
    if path.exists():
        return cfg_to_frames(path.read_text()), None
    start = time.perf_counter()
    result = AimdSegmentMaker(n_steps=n_frames - 1).run_ase(li_lpsc_mini())
    seconds = time.perf_counter() - start
    frames = trajectory_frames(result.trajectory)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(frames_to_cfg(frames))
    return frames, seconds


def md_cost(level: int, frames, repeats: int = 3) -> tuple[float, float]:
    """us per atom-step for forces only and for forces + grade, on the AIMD frames.

    The force calls run on the real AIMD configurations (not on an MD driven
    by an untrained potential, which would collapse and inflate neighbour
    counts); the potential's linear part is fitted, its radial part is not,
    which does not change the cost. CPU time of this process (run with
    OMP_NUM_THREADS=1: one core), so other jobs on the machine do not
    inflate it.
    """
    from haml_flows.mtp.grade import ActiveSet, mtp_calculator
    from haml_flows.mtp.training import train_mtp

    potential = train_mtp(frames[:20], level=level, radial_iterations=0).potential
    active_set = ActiveSet.from_training(potential, frames[:20])
    out = []
    for with_grade in (False, True):
        calc = mtp_calculator(potential, active_set if with_grade else None)
        configurations = [f.copy() for f in frames] * repeats
        configurations[0].calc = calc
        configurations[0].get_forces()
        start = time.process_time()
        for atoms in configurations:
            atoms.calc = calc
            atoms.get_forces()
        elapsed = time.process_time() - start
        out.append(1e6 * elapsed / (len(configurations) * len(frames[0])))
    return out[0], out[1]


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

    iterations = MtpSpec().radial_iterations

    def timed(**kwargs):
        start = time.process_time()
        kwargs.setdefault("radial_iterations", iterations)
        result = train_mtp(frames, level=12, **kwargs)
        return result, time.process_time() - start

    # accuracy: train on the first 80 %, test on the last 20 %, with the
    # settings a HAML cycle uses; before and after the radial-only L-BFGS stage
    staged = {"radial_frames": RADIAL_FRAMES, "linear_frames": LINEAR_FRAMES}
    all_coefficients = ("species_coeffs", "moment_coeffs", "radial_coeffs")
    before, before_cpu = timed(
        holdout_fraction=0.2, lbfgs_coefficients=all_coefficients, **staged
    )
    print(f"cold, L-BFGS on all coefficients: {before_cpu:.1f} CPU s, "
          f"F {before.force_rmse:.3f} E {1000 * before.energy_rmse:.1f}", flush=True)
    cold, cold_cpu = timed(holdout_fraction=0.2, **staged)
    print(f"cold, L-BFGS on radial coefficients: {cold_cpu:.1f} CPU s, "
          f"F {cold.force_rmse:.3f} E {1000 * cold.energy_rmse:.1f}", flush=True)
    longer, longer_cpu = timed(holdout_fraction=0.2, radial_iterations=100, **staged)
    print(f"cold, 100 iterations: {longer_cpu:.1f} CPU s, F {longer.force_rmse:.3f}",
          flush=True)
    # the held-out frames arrive as a new AIMD segment: warm retrain on all
    # frames from the potential of the cold fit, as a HAML cycle does
    warm, warm_cpu = timed(previous=cold.potential, holdout_fraction=0.0, **staged)
    print(f"warm: {warm_cpu:.1f} CPU s, F {warm.force_rmse:.3f}", flush=True)

    costs = {level: md_cost(level, frames) for level in (8, 12, 16)}

    lines = [
        SECTION,
        "",
        f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} "
        f"python bench/mtp_engine.py --frames {args.frames}` "
        f"({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; training times in "
        "CPU seconds of one core, which other jobs on the machine do not inflate). "
        "Frames: GFN1-xTB "
        f"NVT 300 K, 1 fs, of the mini Li | Li6PS5Cl interface ({n_atoms} atoms)"
        + (f", generated in {aimd_seconds:.0f} s." if aimd_seconds else " (cached)."),
        "",
        "| figure | measured | target |",
        "| --- | --- | --- |",
        f"| force RMSE, lev_max 12, train first {n_train} / test last "
        f"{len(frames) - n_train} frames ({iterations} L-BFGS iterations on "
        f"{RADIAL_FRAMES} frames, linear stages on {LINEAR_FRAMES}) | "
        f"{cold.force_rmse:.3f} eV/A | <= 0.15 eV/A |",
        f"| energy RMSE, same | {1000 * cold.energy_rmse:.2f} meV/atom | <= 5 meV/atom |",
        f"| same, before: L-BFGS on all coefficients, not only the radial ones | "
        f"{before.force_rmse:.3f} eV/A, {1000 * before.energy_rmse:.2f} meV/atom, "
        f"{before_cpu:.1f} CPU s | — |",
        f"| same, 100 L-BFGS iterations | {longer.force_rmse:.3f} eV/A, "
        f"{1000 * longer.energy_rmse:.2f} meV/atom, {longer_cpu:.1f} CPU s | "
        "<= 0.15 eV/A |",
        f"| cold training on {n_train} frames ({iterations} iterations) | "
        f"{cold_cpu:.1f} CPU s | — |",
        f"| warm retrain on all {len(frames)} frames from the cold fit | "
        f"{warm_cpu:.1f} CPU s (training-set force RMSE {warm.force_rmse:.3f} eV/A) "
        "| <= 60 s |",
    ]
    for level, (forces, graded) in costs.items():
        target = "<= 20 us" if level == 12 else "—"
        lines.append(
            f"| lev_max {level}: forces / forces + grade, per atom-step | "
            f"{forces:.1f} / {graded:.1f} us per atom-step | {target} |"
        )
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
