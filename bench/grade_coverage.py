"""How much AIMD a potential needs before the grade lets its MLP-MD run.

γ_break is meaningful only if the active set spans what the dynamics
visits next. This script asks it of the reference dynamics itself: train
an MTP with a HAML cycle's settings on the first N frames of a pure
GFN1-xTB AIMD run of the mini Li | Li6PS5Cl interface (the fidelity
ensemble's seed-1 trajectory, bench/.cache/fidelity/, or bench/mtp_engine.py's
cache), choose its active set as the training job does (MLIP's MaxVol over
all parameters, neighbourhood mode), and grade the frames that follow: the
time until the AIMD's own continuation passes γ = 2 (selection) and
γ = 10 (the solid's γ_break), the grades 10, 50 and 100 fs on, the force
RMSE on the next 100 frames, and the parameter blocks no training
neighbourhood fills.

    OMP_NUM_THREADS=1 python bench/grade_coverage.py [--train 50 100 200 400 800] \
        [--trajectory PATH] [--no-write]
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
SECTION = "## Grade coverage against AIMD length"
AHEAD = 100


def load_frames(path: Path | None):
    from pymatgen.core.trajectory import Trajectory

    from haml_flows.engines.frames import trajectory_frames

    if path is None:
        found = sorted((ROOT / "bench/.cache/fidelity").glob("lpsc_*_seed1_*fs.pkl"))
        if not found:
            from mtp_engine import aimd_frames

            return aimd_frames(200)[0], "bench/mtp_engine.py's 200-frame cache"
        path = max(found, key=lambda p: p.stat().st_size)
    data = pickle.loads(path.read_bytes())
    return trajectory_frames(Trajectory.from_dict(data["trajectory"])), str(path.relative_to(ROOT))


def first_above(grades: np.ndarray, threshold: float) -> int | None:
    hits = np.flatnonzero(grades > threshold)
    return int(hits[0]) + 1 if hits.size else None


def _block(name: str) -> str:
    return name.split(" [")[0] if name.startswith("radial") else name.rsplit(" ", 1)[0]


def pair_ranges(frames, cutoff: float) -> dict[str, tuple[float, float]]:
    """Shortest and longest distance (within ``cutoff``) of each ordered species pair."""
    from ase.neighborlist import neighbor_list

    ranges: dict[str, tuple[float, float]] = {}
    for atoms in frames:
        i, j, d = neighbor_list("ijd", atoms, cutoff)
        symbols = np.array(atoms.get_chemical_symbols())
        for key, dist in zip(np.char.add(np.char.add(symbols[i], "-"), symbols[j]), d):
            lo, hi = ranges.get(key, (np.inf, 0.0))
            ranges[key] = (min(lo, dist), max(hi, dist))
    return ranges


def what_breaks(active, atoms, ranges: dict, cutoff: float) -> str:
    """The atom with the largest grade, the parameter block that makes it, and its
    neighbours at distances the training frames never showed for their pair."""
    from ase.neighborlist import neighbor_list

    from haml_flows.mtp.engine import KernelMTPEngine
    from haml_flows.mtp.grade import parameter_names

    engine = KernelMTPEngine(active.data)
    engine.want_rows = True
    engine.calculate(atoms)
    rows = engine.kernel.full_rows(engine.local_rows, engine.itypes)
    coefficients = rows @ active.inverse
    atom, slot = np.unravel_index(np.abs(coefficients).argmax(), coefficients.shape)
    names = parameter_names(active.data)
    parts: dict[str, float] = {}
    for j, value in enumerate(rows[atom] * active.inverse[:, slot]):
        parts[_block(names[j])] = parts.get(_block(names[j]), 0.0) + value
    block = max(parts, key=lambda k: abs(parts[k]))
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    symbols = atoms.get_chemical_symbols()
    outside = []
    for jj, dist in zip(j[i == atom], d[i == atom]):
        key = f"{symbols[atom]}-{symbols[jj]}"
        lo, hi = ranges.get(key, (np.inf, 0.0))
        if dist < lo - 0.02 or dist > hi + 0.02:
            seen = f"{lo:.2f}-{hi:.2f}" if np.isfinite(lo) else "never"
            outside.append(f"{key} {dist:.2f} A (trained {seen})")
    return (f"{symbols[atom]} {atom}: {block} ({abs(parts[block]) / abs(coefficients[atom, slot]):.0%}"
            f" of the grade); " + ("; ".join(outside) if outside else "no pair outside its range"))


def one(frames, n_train: int) -> dict:
    from haml_flows.mtp.grade import candidate_active_set
    from haml_flows.mtp.training import train_mtp
    from haml_flows.spec import MtpSpec

    spec = MtpSpec()
    train, ahead = frames[:n_train], frames[n_train:n_train + AHEAD]
    start = time.process_time()
    fit = train_mtp(train + ahead, **{
        **spec.fit_settings(), "holdout_fraction": len(ahead) / (len(train) + len(ahead))})
    cpu = time.process_time() - start
    active, _ = candidate_active_set(fit.potential, train, mode=spec.grade_mode,
                                     max_frames=spec.active_set_frames)
    grades = np.asarray(active.grade_frames(ahead))
    blocks = active.uncovered_blocks()
    first = first_above(grades, 10.0)
    cause = (what_breaks(active, ahead[first - 1], pair_ranges(train, spec.cutoff), spec.cutoff)
             if first else "")
    row = {
        "n_train": n_train, "held_out": fit.force_rmse, "train_cpu": cpu,
        "fs_to_2": first_above(grades, 2.0), "fs_to_10": first_above(grades, 10.0),
        "g10": grades[9] if len(grades) > 9 else float("nan"),
        "g50": grades[49] if len(grades) > 49 else float("nan"),
        "g100": grades[99] if len(grades) > 99 else float("nan"),
        "uncovered": len(active.uncovered),
        "blocks": ", ".join(f"{k} {v}" for k, v in sorted(blocks.items(), key=lambda kv: -kv[1])[:4]),
        "n_params": active.n_params,
        "cause": cause,
    }
    print(row, flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, nargs="+", default=[50, 100, 200, 400, 800])
    parser.add_argument("--trajectory", type=Path, default=None)
    parser.add_argument("--quiet-machine", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from harness import quiet_fits

    quiet_fits()
    frames, source = load_frames(args.trajectory)
    sizes = [n for n in args.train if n + AHEAD <= len(frames)]
    if not sizes:
        raise SystemExit(f"{source} holds {len(frames)} frames: --train sizes need "
                         f"{AHEAD} more frames after them")
    rows = [one(frames, n) for n in sizes]
    from perfdoc import machine_note

    quiet = machine_note(args.quiet_machine)

    def fs(value):
        return f"> {AHEAD}" if value is None else str(value)

    lines = [
        SECTION,
        "",
        f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python "
        f"bench/grade_coverage.py --train {' '.join(map(str, sizes))}` "
        f"({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, {quiet}). Frames: "
        f"{source} (GFN1-xTB NVT 300 K, 1 fs, mini Li | Li6PS5Cl, "
        f"{len(frames[0])} atoms). The spec's fit (lev_max 12, {rows[0]['n_params']} "
        "parameters) on the first N frames; the active set chosen as the training "
        "job does; then the grade of the AIMD's own next frames.",
        "",
        "| AIMD frames trained on | fs until grade > 2 | fs until grade > 10 "
        "| grade 10 fs on | 50 fs on | 100 fs on | force RMSE on the next 100 fs, eV/A "
        "| parameters no row fills (largest blocks) | training, CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['n_train']} | {fs(r['fs_to_2'])} | **{fs(r['fs_to_10'])}** | {r['g10']:.1f} "
        f"| {r['g50']:.1f} | {r['g100']:.1f} | {r['held_out']:.3f} "
        f"| {r['uncovered']} ({r['blocks']}) | {r['train_cpu']:.0f} |"
        for r in rows
    ]
    lines += ["", "The first frame graded above 10: the atom with the largest grade, the "
              "parameter block whose terms make most of it, and that atom's neighbours "
              "at distances no training frame showed for their pair:", ""]
    lines += [f"- {r['n_train']} frames: {r['cause'] or 'no frame above 10'}" for r in rows]
    lines.append("")
    text = "\n".join(lines)
    from perfdoc import publish

    publish(text, SECTION, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
