"""How close an MTP fit can come to the audit's force threshold, and at what cost.

The audit passes a segment when the potential's force RMSE against the
reference engine on its own frames is at most ``audit.max_force_rmse``
(0.15 eV/A for the solid). This script asks what the fit itself can reach:
MTPs trained with the cycle's code (``haml_flows.mtp.training.train_mtp``) on
the first N frames of the fidelity ensemble's seed-1 pure GFN1-xTB AIMD,
with the settings varied one at a time, scored on

- the frames trained on (how well the model can fit at all),
- the next 200 fs of the same trajectory (what the next MLP-MD meets first),
- 100 frames spread over another seed's trajectory (an independent sample
  of the same ensemble),

with the CPU time of the fit. Training and held-out error close together
and above the threshold means the model (level, radial basis) or the fit
stops short; a training error far below the held-out error means the data
do not cover what follows.

    OMP_NUM_THREADS=1 python bench/fit_sweep.py [--system lpsc] [--train 200 800] \
        [--variants spec level=16 ...] [--jobs 2] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
#: one section per system: the liquid's heading does not contain the solid's
SECTIONS = {"lpsc": "## MTP fit against the audit threshold",
            "dme": "## Liquid: MTP fit against the audit threshold"}
AHEAD = 200
SPREAD = 100

#: fits tried (name -> train_mtp keywords on top of the spec's fit, MtpSpec);
#: every name states its force weight and rounds, so rows stay comparable when
#: the spec's defaults move ("spec" = MtpSpec's defaults as they are)
_BEFORE = {"force_weight": 0.01, "rounds": 1}
VARIANTS: dict[str, dict] = {
    "spec": {},
    # more capacity at the spec's fit (rounds, weights, caps): does the model or the fit bind?
    "level=16": {"level": 16},
    "force_weight=0.01,rounds=1": _BEFORE,
    "force_weight=0.01,rounds=1,radial_frames=100": {**_BEFORE, "radial_frames": 100},
    "force_weight=0.01,rounds=1,radial_iterations=150": {**_BEFORE, "radial_iterations": 150},
    "force_weight=0.01,rounds=3": {"force_weight": 0.01, "rounds": 3},
    "force_weight=0.01,rounds=1,linear_frames=400": {**_BEFORE, "linear_frames": 400},
    "force_weight=0.1,rounds=1": {"force_weight": 0.1, "rounds": 1},
    "force_weight=1,rounds=1": {"force_weight": 1.0, "rounds": 1},
    "force_weight=0.01,rounds=1,level=16": {**_BEFORE, "level": 16},
    "force_weight=0.01,rounds=1,level=8": {**_BEFORE, "level": 8},
    "force_weight=0.1,rounds=3": {"force_weight": 0.1, "rounds": 3},
    "force_weight=1,rounds=3": {"force_weight": 1.0, "rounds": 3},
    "force_weight=0.1,rounds=3,radial_iterations=60": {
        "force_weight": 0.1, "rounds": 3, "radial_iterations": 60},
    # a cycle's fit: warm-started from the spec's fit on all but the newest
    # WARM_NEW frames (the potential of the cycle before), as the cycle trains
    "warm,rounds=1": {"warm_rounds": 1},
    "warm,rounds=2": {"warm_rounds": 2},
    "warm,rounds=3": {"warm_rounds": 3},
    "warm,spec": {},
}
#: frames the cycle before did not have (one AIMD segment of the spec)
WARM_NEW = 100


def trajectory_frames(path: Path):
    from pymatgen.core.trajectory import Trajectory

    from haml_flows.engines.frames import trajectory_frames as frames_of

    data = pickle.loads(path.read_bytes())
    return frames_of(Trajectory.from_dict(data["trajectory"]))


def ensemble(system: str) -> list[Path]:
    found = sorted((ROOT / "bench/.cache/fidelity").glob(f"{system}_*_seed*_*fs.pkl"))
    if len(found) < 2:
        raise SystemExit(
            f"needs two seeds of the {system} reference ensemble in bench/.cache/fidelity "
            f"(python bench/fidelity.py --systems {system} --reference-only); found {len(found)}"
        )
    return found


def errors(potential: str, frames) -> tuple[float, float]:
    """Force RMSE (eV/A) and energy RMSE (meV/atom) of ``potential`` on ``frames``."""
    from haml_flows.mtp.grade import mtp_calculator

    calc = mtp_calculator(potential)
    forces, energies = [], []
    for atoms in frames:
        probe = atoms.copy()
        probe.calc = calc
        forces.append((probe.get_forces() - atoms.calc.results["forces"]).ravel())
        energies.append((probe.get_potential_energy() - atoms.calc.results["energy"])
                        / len(atoms))
    return (float(np.sqrt(np.mean(np.square(np.concatenate(forces))))),
            1000.0 * float(np.sqrt(np.mean(np.square(energies)))))


def force_spread(frames) -> float:
    forces = np.concatenate([a.calc.results["forces"].ravel() for a in frames])
    return float(np.sqrt(np.mean(forces**2)))


_PREVIOUS: dict[int, str] = {}


def previous_fit(train) -> str:
    """The spec's fit on all but the newest WARM_NEW frames (cached per size)."""
    from haml_flows.mtp.training import train_mtp
    from haml_flows.spec import MtpSpec

    n = len(train) - WARM_NEW
    if n not in _PREVIOUS:
        settings = {**MtpSpec().fit_settings(), "holdout_fraction": 0.0}
        _PREVIOUS[n] = train_mtp(list(train[:n]), **settings).potential
    return _PREVIOUS[n]


def one(name: str, changes: dict, train, ahead, other) -> dict:
    from haml_flows.mtp.training import train_mtp
    from haml_flows.spec import MtpSpec

    settings = {**MtpSpec().fit_settings(), "holdout_fraction": 0.0, **changes}
    previous = previous_fit(train) if name.startswith("warm,") else None
    start = time.process_time()
    fit = train_mtp(list(train), previous=previous, **settings)
    cpu = time.process_time() - start
    row = {
        "variant": name, "n_train": len(train), "cpu": cpu,
    }
    for key, frames in (("train", train[:: max(1, len(train) // 100)]), ("ahead", ahead),
                        ("other", other)):
        row[key], row[f"{key}_energy"] = errors(fit.potential, frames)
    print(row, flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="lpsc", choices=["lpsc", "dme"])
    parser.add_argument("--train", type=int, nargs="+", default=[200, 800])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--threshold", type=float, default=None,
                        help="audit threshold to compare with; default the gate's")
    parser.add_argument("--jobs", type=int, default=1,
                        help="fits run side by side (each takes a core)")
    parser.add_argument("--quiet-machine", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    from harness import quiet_fits

    quiet_fits()
    threshold = args.threshold or {"lpsc": 0.15, "dme": 0.20}[args.system]
    paths = ensemble(args.system)
    first, second = trajectory_frames(paths[0]), trajectory_frames(paths[1])
    other = [second[i] for i in np.linspace(0, len(second) - 1, SPREAD).round().astype(int)]
    for n in args.train:
        if n + AHEAD > len(first):
            raise SystemExit(f"{paths[0].name} holds {len(first)} frames: --train {n} "
                             f"needs {AHEAD} more after them")
    tasks = [(name, VARIANTS[name], first[:n], first[n:n + AHEAD], other)
             for n in args.train for name in args.variants]
    if args.jobs > 1:  # independent fits, one per process; rows keep the table's order
        # ("warm," variants each fit their starting potential in their own process)
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, initializer=quiet_fits) as pool:
            rows = list(pool.map(one, *zip(*tasks)))
    else:
        rows = [one(*task) for task in tasks]
    from perfdoc import machine_note, publish

    spread = force_spread(other)
    lines = [
        SECTIONS[args.system],
        "",
        f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python "
        f"bench/fit_sweep.py --system {args.system} --jobs {args.jobs} --train "
        f"{' '.join(map(str, args.train))} --variants {' '.join(args.variants)}` "
        f"({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, "
        f"{machine_note(args.quiet_machine)}). Frames: {paths[0].name} (trained on the "
        f"first N, scored on the next {AHEAD}) and {SPREAD} frames spread over "
        f"{paths[1].name} (RMS force {spread:.3f} eV/A). Each variant is the spec's "
        f"fit (`MtpSpec`: lev_max 12, 30 L-BFGS iterations on 20 frames, linear stages "
        f"on 100) with the settings named; \"spec\" is `MtpSpec` as it stands; \"warm,\" "
        f"variants start from the spec's fit on all but the newest {WARM_NEW} frames, "
        f"as a cycle's training starts from the cycle before (that fit's CPU time not "
        f"counted); audit threshold {threshold} eV/A.",
        "",
        "| frames | variant | force RMSE on its training frames | next 200 fs "
        "| other seed | energy RMSE, next 200 fs (meV/atom) | fit CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        mark = (lambda v: f"**{v:.3f}**" if v <= threshold else f"{v:.3f}")
        lines.append(
            f"| {r['n_train']} | {r['variant']} | {mark(r['train'])} | {mark(r['ahead'])} "
            f"| {mark(r['other'])} | {r['ahead_energy']:.1f} | {r['cpu']:.0f} |"
        )
    lines += ["", f"Bold: at or below the audit threshold ({threshold} eV/A).", ""]
    publish("\n".join(lines), SECTIONS[args.system], write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
