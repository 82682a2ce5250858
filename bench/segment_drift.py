"""Where a HAML run's MLP-MD goes wrong: the audited error along each long segment,
the potential's own energy there, and what the AIMD after it does.

For every MLP-MD segment of at least ``--min-steps`` steps in the gate's HAML
runs (bench/fidelity.py keeps them in bench/.cache/fidelity/haml_db; the runs
are found in its index haml_runs.json): the audited force RMSE and energy
error (MLP minus reference, meV/atom) at the segment's first and last audited
frame, the change of the MLP's own potential energy over the segment, and the
lowest reference potential energy of the AIMD segment that starts from the
segment's last frame, against its first (a configuration the reference finds too high in
energy relaxes there, and the thermostat takes the heat out).

    python bench/segment_drift.py [--system lpsc] [--min-steps 200] [--port PORT]

``--port``: a server already serving the cache (e.g. while bench/fidelity.py
runs); otherwise one is started on it. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def _runs(system: str) -> list[tuple[str, str, str]]:
    """(code tree, seed, run id) of every finished gate run of ``system``."""
    from harness import GATE_CACHE

    index = json.loads((GATE_CACHE / "haml_runs.json").read_text())
    rows = []
    for key, entry in index.items():
        parts = key.split("|")
        if parts[0] == system and entry.get("run_id") and not entry.get("error"):
            rows.append((parts[2].removeprefix("code "), parts[3], entry["run_id"]))
    return sorted(rows)


def _per_atom_energies(traj) -> np.ndarray:
    n = len(traj[0])
    return np.array([p["energy"] for p in traj.frame_properties]) / n * 1000.0


def table(store, system: str, min_steps: int) -> str:
    from haml_flows.queries import cycle_docs, trajectory

    lines = [
        ("| code | seed | cycle | MLP-MD steps (fs) | stop | audit F-RMSE first -> last (eV/A) "
         "| audit energy error first -> last (meV/atom) | MLP energy change (meV/atom) "
         "| next AIMD: lowest reference energy less its first (meV/atom) |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    short: dict[str, list[float]] = {}  # the AIMD energy change after short segments
    for code, seed, run_id in _runs(system):
        docs = cycle_docs(store, run_id)
        for doc, after in zip(docs, [*docs[1:], None]):
            if doc.mlpmd_steps < min_steps and after is not None and after.aimd_job:
                ref = _per_atom_energies(trajectory(store, after.aimd_job))
                short.setdefault(code, []).append(ref[:100].min() - ref[0])
            if doc.mlpmd_steps < min_steps or doc.audit_job is None:
                continue
            audit = store.get_output(doc.audit_job)
            frames = sorted(audit.get("frames") or [], key=lambda f: f["step"])
            mlp = _per_atom_energies(trajectory(store, doc.mlpmd_job))
            relax = "no AIMD after it"
            if after is not None and after.aimd_job is not None:
                ref = _per_atom_energies(trajectory(store, after.aimd_job))
                relax = (f"{ref[:100].min() - ref[0]:+.0f} in 100 steps, {ref.min() - ref[0]:+.0f} "
                         f"in {after.aimd_steps}")
            lines.append(
                f"| {code[:7]} | {seed.removeprefix('seed ')} | {doc.cycle} | {doc.mlpmd_steps} "
                f"({doc.mlpmd_fs:.0f}) | {doc.stop_reason} | {frames[0]['force_rmse']:.3f} -> "
                f"{frames[-1]['force_rmse']:.3f} | {1000 * frames[0]['energy_error']:+.0f} -> "
                f"{1000 * frames[-1]['energy_error']:+.0f} | {mlp[-1] - mlp[0]:+.0f} | {relax} |"
            )
    for code, drops in short.items():
        lines += ["", (f"Code {code[:7]}: after the {len(drops)} segments shorter than "
                       f"{min_steps} steps, the next AIMD's lowest reference energy in its "
                       f"first 100 steps lay {-np.median(drops):.0f} meV/atom below its first "
                       f"frame's (median; range {-max(drops):.0f} to {-min(drops):.0f}).")]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="lpsc", choices=["lpsc", "dme"])
    parser.add_argument("--min-steps", type=int, default=200)
    parser.add_argument("--port", type=int, help="a server already serving the cache")
    args = parser.parse_args()
    from harness import GATE_CACHE, gate_store

    if not (GATE_CACHE / "haml_runs.json").exists():
        sys.exit(f"error: no gate runs in {GATE_CACHE} (run bench/fidelity.py first)")
    with gate_store(args.port) as store:
        print(table(store, args.system, args.min_steps))

if __name__ == "__main__":
    main()
