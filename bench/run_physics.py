"""A stored run's physics per segment: temperatures at its ends and its closest contacts.

For each cycle's AIMD and MLP-MD segment of run RUN_ID (the store of
HamlSettings, the embedded server started if it is not running): the
temperature of its first and last frame, the largest excursion from the
target, and its closest contact per element pair, next to the closest the
pure-AIMD reference ensemble of bench/fidelity.py ever came (its cache,
when there is one for the system). Printed as a Markdown table; nothing is
written.

    python bench/run_physics.py RUN_ID [--reference-glob 'lpsc_*_seed*fs.pkl']
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench/.cache/fidelity"


def reference_minima(pattern: str) -> tuple[dict, int]:
    """Closest distance per element pair over every cached pure-AIMD frame."""
    from pymatgen.core.trajectory import Trajectory

    from haml_flows.distances import pair_minimum_distances

    minima, n_frames = {}, 0
    for path in sorted(CACHE.glob(pattern)):
        trajectory = Trajectory.from_dict(pickle.loads(path.read_bytes())["trajectory"])
        structures = [trajectory[i] for i in range(len(trajectory))]
        n_frames += len(structures)
        for key, d in pair_minimum_distances(structures).items():
            minima[key] = min(minima.get(key, np.inf), d)
    return minima, n_frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_id")
    parser.add_argument("--reference-glob", default="lpsc_*_seed*fs.pkl")
    args = parser.parse_args()
    from pymatgen.core import Element

    from haml_flows.analysis.timeline import run_timeline
    from haml_flows.database.server import ensure_database
    from haml_flows.database.stores import make_job_store
    from haml_flows.distances import pair_minimum_distances
    from haml_flows.queries import cycle_docs, run_doc
    from haml_flows.settings import HamlSettings

    settings = HamlSettings()
    ensure_database(settings)
    store = make_job_store(settings)
    store.connect()
    docs = cycle_docs(store, args.run_id)
    if not docs:
        raise SystemExit(f"no CycleDocs for run {args.run_id!r} in the store at "
                         f"{settings.DB_HOST}:{settings.DB_PORT}")
    target = run_doc(store, args.run_id).spec["mlpmd"]["temperature"]
    reference, n_ref = reference_minima(args.reference_glob)
    segments: dict[tuple[int, str], list] = {}
    for frame in run_timeline(store, args.run_id):
        segments.setdefault((frame.cycle, frame.stage), []).append(frame)

    def name(key):
        return "-".join(Element.from_Z(z).symbol for z in key)

    print(f"run {args.run_id}, target {target} K; reference: {n_ref} pure-AIMD frames "
          f"({args.reference_glob})\n")
    print("| cycle | stage | frames | T first, K | T last, K | largest |T - target|, K "
          "| closest pair, A | pairs closer than pure AIMD ever came |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (cycle, stage), frames in segments.items():
        temps = [f.temperature for f in frames if f.temperature is not None]
        minima = pair_minimum_distances(f.to_atoms() for f in frames)
        key, d = min(minima.items(), key=lambda kv: kv[1])
        closer = [f"{name(k)} {v:.2f} (AIMD {reference[k]:.2f})"
                  for k, v in sorted(minima.items()) if k in reference and v < reference[k]]
        excursion = max(abs(t - target) for t in temps) if temps else float("nan")
        print(f"| {cycle} | {stage} | {len(frames)} | {temps[0]:.0f} | {temps[-1]:.0f} "
              f"| {excursion:.0f} | {name(key)} {d:.2f} | {'; '.join(closer) or 'none'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
