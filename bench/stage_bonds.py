"""Bond counts of a gate's HAML runs split by stage: AIMD frames against MLP-MD frames.

A HAML run whose time-averaged bond count leaves the pure-AIMD seeds' range
can do so because its MLP-MD frames hold a different chemistry, or because
its trajectory (mostly AIMD) wandered elsewhere. This counts the gate's
bonds on every 10 fs of each run (as bench/fidelity.py does), separately
over the frames of AIMD and of MLP-MD segments, next to the run's pure-AIMD
seed.

    python bench/stage_bonds.py RUN_ID [RUN_ID ...] [--system lpsc] [--port PORT]

The runs are read from the gate's cache (bench/.cache/fidelity/haml_db);
``--port``: a server already serving it. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def stage_counts(store, run_id: str, bonds: list[str], window_fs: float,
                 every_fs: float = 10.0) -> dict[str, dict[str, list[int]]]:
    """Stage -> bond -> counts, one frame per ``every_fs`` of the run's first ``window_fs``."""
    from haml_flows.analysis.bonds import DEFAULT_CUTOFFS, counts_from_pairs
    from haml_flows.analysis.neighbors import frame_pairs
    from haml_flows.analysis.agreement import sampled_frames
    from haml_flows.analysis.timeline import run_timeline

    cutoffs = {b: DEFAULT_CUTOFFS[b] for b in bonds}
    reach = max(cutoffs.values()) + 1e-6
    out: dict[str, dict[str, list[int]]] = {}
    for frame in sampled_frames(run_timeline(store, run_id), window_fs, every_fs):
        counts = counts_from_pairs(frame_pairs(frame, reach), cutoffs)
        series = out.setdefault(frame.stage, {b: [] for b in bonds})
        for bond in bonds:
            series[bond].append(counts[bond])
    return out


def main() -> int:
    from fidelity import SYSTEMS
    from harness import gate_store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_ids", nargs="+")
    parser.add_argument("--system", default="lpsc", choices=SYSTEMS)
    parser.add_argument("--window-ps", type=float, default=2.0)
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    bonds = SYSTEMS[args.system]["bonds"]
    print("| run | stage | frames | " + " | ".join(f"{b} mean" for b in bonds) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in bonds) + " |")
    with gate_store(args.port) as store:
        for run_id in args.run_ids:
            by_stage = stage_counts(store, run_id, bonds, args.window_ps * 1000.0)
            for stage, series in sorted(by_stage.items()):
                n = len(next(iter(series.values())))
                means = " | ".join(f"{np.mean(series[b]):.2f}" for b in bonds)
                print(f"| {run_id} | {stage} | {n} | {means} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
