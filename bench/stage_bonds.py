"""Bond counts of a gate's HAML runs split by stage: AIMD frames against MLP-MD frames.

A HAML run whose time-averaged bond count leaves the pure-AIMD seeds' range
can do so because its MLP-MD frames hold a different chemistry, or because
its trajectory (mostly AIMD) wandered elsewhere. Two tables:

1. the gate's bonds on every 10 fs of each run (as bench/fidelity.py counts
   them), separately over the frames of AIMD and of MLP-MD segments. The two
   stages do not weigh time alike: MLP-MD segments grow longer in later
   cycles, so a trend of the whole trajectory shows up as a stage difference;
2. paired by segment, which removes that: each MLP-MD segment's frames (the
   hand-over frame left out) against the same cycle's AIMD frames over the
   same length of time just before the hand-over. The mean difference over a
   run's segments, with its standard error, is the MLP-MD's own bias.

    python bench/stage_bonds.py RUN_ID [RUN_ID ...] [--system lpsc] [--port PORT]

The runs are read from the gate's cache (bench/.cache/fidelity/haml_db);
``--port``: a server already serving it. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def stage_counts(store, run_id: str, bonds: list[str], window_fs: float,
                 every_fs: float = 10.0) -> dict[str, dict[str, list[int]]]:
    """Stage -> bond -> counts, one frame per ``every_fs`` of the run's first ``window_fs``."""
    from haml_flows.analysis.agreement import sampled_frames
    from haml_flows.analysis.bonds import DEFAULT_CUTOFFS, counts_from_pairs
    from haml_flows.analysis.neighbors import frame_pairs
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


@dataclass
class PairedSegment:
    """One MLP-MD segment against the AIMD just before it, mean bond counts."""

    cycle: int
    mlpmd_fs: float
    mlpmd: dict[str, float]
    aimd: dict[str, float]
    temperatures: tuple[float, float]
    """Mean temperature (K) of the AIMD window and of the MLP-MD frames."""


def paired_segments(store, run_id: str, bonds: list[str]) -> list[PairedSegment]:
    """Every MLP-MD segment with frames past its hand-over, paired with the same
    cycle's AIMD frames over the same time (at least 10 fs) before the hand-over."""
    from haml_flows.analysis.bonds import DEFAULT_CUTOFFS, counts_from_pairs
    from haml_flows.analysis.neighbors import frame_pairs
    from haml_flows.analysis.timeline import run_timeline

    cutoffs = {b: DEFAULT_CUTOFFS[b] for b in bonds}
    reach = max(cutoffs.values()) + 1e-6
    by_stage: dict[tuple[int, str], list] = {}
    for frame in run_timeline(store, run_id):
        by_stage.setdefault((frame.cycle, frame.stage), []).append(frame)

    def means(frames) -> dict[str, float]:
        rows = [counts_from_pairs(frame_pairs(f, reach), cutoffs) for f in frames]
        return {b: float(np.mean([r[b] for r in rows])) for b in bonds}

    def temperature(frames) -> float:
        known = [f.temperature for f in frames if f.temperature is not None]
        return float(np.mean(known)) if known else float("nan")

    out = []
    for (cycle, stage), frames in sorted(by_stage.items()):
        aimd = by_stage.get((cycle, "aimd"))
        if stage != "mlpmd" or not aimd or len(frames) < 2:
            continue
        handover = frames[0].time_fs
        span = frames[-1].time_fs - handover
        before = [f for f in aimd if f.time_fs >= handover - max(span, 10.0) - 1e-9]
        out.append(PairedSegment(cycle, span, means(frames[1:]), means(before),
                                 (temperature(before), temperature(frames[1:]))))
    return out


def _paired_table(rows: dict[str, list[PairedSegment]], bonds: list[str]) -> list[str]:
    lines = ["| run | segments | MLP-MD fs | T AIMD / MLP-MD (K) | "
             + " | ".join(f"{b} MLP-MD - AIMD" for b in bonds) + " |",
             "| --- | --- | --- | --- | " + " | ".join("---" for _ in bonds) + " |"]
    for run_id, segments in rows.items():
        if not segments:
            lines.append(f"| {run_id} | 0 | | | " + " | ".join("" for _ in bonds) + " |")
            continue
        cells = []
        for b in bonds:
            d = np.array([s.mlpmd[b] - s.aimd[b] for s in segments])
            sem = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            cells.append(f"{d.mean():+.2f} ± {sem:.2f}")
        t_aimd = np.nanmean([s.temperatures[0] for s in segments])
        t_md = np.nanmean([s.temperatures[1] for s in segments])
        lines.append(f"| {run_id} | {len(segments)} | "
                     f"{sum(s.mlpmd_fs for s in segments):.0f} | {t_aimd:.0f} / {t_md:.0f} | "
                     + " | ".join(cells) + " |")
    return lines


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
        print()
        paired = {run_id: paired_segments(store, run_id, bonds) for run_id in args.run_ids}
    print("\n".join(_paired_table(paired, bonds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
