"""Refit one HAML training set with other MTP settings and see what it can hold.

Takes the training set a gate run's training job stored in a cycle
(bench/fidelity.py keeps the runs in bench/.cache/fidelity/haml_db), fits it
again from scratch on every frame (nothing held out) with each ``--variants``
entry, and prints the fit's own energy and force RMSE on three groups of its
frames: the MLP-MD frames the audit relabelled (``origin`` 'audit'), the
first 400 AIMD frames and the newest 200 AIMD frames. A potential that cannot
fit its own frames cannot be trusted along its MLP-MD either.

    OMP_NUM_THREADS=1 python bench/refit.py RUN_ID CYCLE [--variants level=12 level=16,rounds=3] \
        [--port PORT]

A variant is comma-separated ``MtpSpec`` fields over the spec's (``all`` for
``linear_frames`` or ``radial_frames`` means every frame); ``--port``: a server
already serving the cache, else one is started on it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _variant(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if not value:
            sys.exit(f"error: variant item {item!r}: use KEY=VALUE")
        out[key] = None if value in ("all", "none") else (
            float(value) if "." in value else int(value))
    return out


def refit(store, run_id: str, cycle: int, variants: list[str]) -> list[str]:
    import numpy as np

    from haml_flows.mtp.frames import cfg_to_frames
    from haml_flows.mtp.grade import load_potential
    from haml_flows.mtp.training import _errors, train_mtp
    from haml_flows.queries import cycle_docs
    from haml_flows.spec import MtpSpec

    docs = {d.cycle: d for d in cycle_docs(store, run_id)}
    if cycle not in docs or docs[cycle].training_job is None:
        sys.exit(f"error: run {run_id} has no training in cycle {cycle}")
    output = store.get_output(docs[cycle].training_job, load=True)
    frames = cfg_to_frames(output["training_set"])
    audited = [f for f in frames if f.info.get("origin") == "audit"]
    aimd = [f for f in frames if f.info.get("origin") != "audit"]
    groups = {"audited MLP-MD": audited, "first 400 AIMD": aimd[:400],
              "newest 200 AIMD": aimd[-200:]}
    rows = [(f"Training set of {run_id}, cycle {cycle}: {len(frames)} frames, "
             f"{len(audited)} of them audited MLP-MD frames."), "",
            ("| fit | " + " | ".join(f"{k}: E (meV/atom), F (eV/A)" for k in groups)
             + " | fit CPU s |"), "| --- |" + " --- |" * (len(groups) + 1)]

    def row(name: str, potential: str, seconds: float | None) -> str:
        data = load_potential(potential)
        cells = []
        for group in groups.values():
            e, f = _errors(data, group) if group else (np.nan, np.nan)
            cells.append(f"{1000 * e:.1f}, {f:.3f}")
        return f"| {name} | " + " | ".join(cells) + f" | {'' if seconds is None else f'{seconds:.0f}'} |"

    rows.append(row("the run's own (warm-started, capped)", output["potential"], None))
    print(rows[-1], flush=True)
    for text in variants:
        settings = {**MtpSpec().fit_settings(), **_variant(text), "holdout_fraction": 0.0}
        start = time.process_time()
        result = train_mtp(frames, **settings)
        rows.append(row(f"from scratch, {text}", result.potential, time.process_time() - start))
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_id")
    parser.add_argument("cycle", type=int)
    parser.add_argument("--variants", nargs="+", default=["level=12"])
    parser.add_argument("--port", type=int, help="a server already serving the cache")
    args = parser.parse_args()
    from harness import gate_store

    with gate_store(args.port) as store:
        print("\n".join(refit(store, args.run_id, args.cycle, args.variants)))

if __name__ == "__main__":
    main()
