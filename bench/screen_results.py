"""``haml results`` over 200 finished candidates of 50 cycles each.

The 200-candidate screen of bench/screen_submit.py is submitted to a private
embedded server; then every candidate gets the documents a finished run
leaves behind, made through the package's schemas and written through the
JobStore: a RunDoc (108-atom structure), 50 CycleDocs and a RunSummaryDoc
whose final structure is the start displaced by a per-candidate amount
(10,000 CycleDocs in all). Timed:

- the first ranking, which computes and stores similarity and bond changes
  of the 200 finished runs;
- later rankings, which read those back (what ``haml results`` does on a
  screen that has been ranked once);
- the whole ``haml results`` command in a fresh process, interpreter start
  and imports included.

    python bench/screen_results.py [--seeds 50] [--cycles 50] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import numpy as np

from perfdoc import machine_note, publish
from screen_submit import ROOT, private_server, server_cpu_seconds, submit, write_screen

HEADING = "## Screen results"


def _cycle_docs(run_id: str, n: int, rng) -> list:
    from haml_flows.schemas import CycleDoc, StageCost

    docs, total = [], 0.0
    mlpmd_cpu = rng.uniform(0.5, 3.0)
    for cycle in range(1, n + 1):
        mlpmd_steps = int(rng.integers(50, 2000))
        total += 20.0 + 0.5 * mlpmd_steps
        aimd = rng.uniform(800, 1200)
        docs.append(CycleDoc(
            run_id=run_id, cycle=cycle, aimd_steps=20, aimd_fs=20.0,
            mlpmd_steps=mlpmd_steps, mlpmd_fs=0.5 * mlpmd_steps,
            gamma_at_stop=float(rng.uniform(10, 12)), gamma_max=float(rng.uniform(10, 14)),
            stop_reason="gamma_break", training_set_size=21 * cycle,
            energy_rmse=float(rng.uniform(0.001, 0.01)), force_rmse=float(rng.uniform(0.1, 0.3)),
            aimd_cost=StageCost(wall_seconds=aimd, cpu_seconds=2 * aimd),
            training_cost=StageCost(wall_seconds=60.0, cpu_seconds=120.0),
            mlpmd_cost=StageCost(wall_seconds=mlpmd_cpu * mlpmd_steps / 100,
                                 cpu_seconds=mlpmd_cpu * mlpmd_steps / 50),
            mlpmd_gamma_seconds=0.5, cumulative_fs=total,
            temperature_aimd_start=300.0, temperature_aimd_end=301.0,
            temperature_mlpmd_start=301.0, temperature_mlpmd_end=299.0,
            aimd_job=str(uuid.uuid4()), training_job=str(uuid.uuid4()),
            mlpmd_job=str(uuid.uuid4()),
        ))
    return docs


def _job_doc(output, name: str) -> dict:
    return {"uuid": str(uuid.uuid4()), "index": 1, "output": output, "name": name,
            "metadata": {}, "hosts": []}


def store_finished_runs(settings, plan, n_cycles: int) -> int:
    """Write RunDoc, CycleDocs and RunSummaryDoc of every candidate; return docs written."""
    from pymatgen.core import Structure

    from haml_flows.database.stores import make_job_store
    from haml_flows.schemas import RunDoc, RunSummaryDoc, StageCost
    from haml_flows.screening.submit import run_id_for
    from haml_flows.systems import build_system

    store = make_job_store(settings)
    store.connect()
    rng = np.random.default_rng(7)
    structures: dict[str, Structure] = {}
    batch, written = [], 0
    for candidate in plan.candidates:
        key = candidate.spec.system.model_dump_json()
        if key not in structures:
            structures[key] = build_system(candidate.spec.system)
        start = structures[key]
        run_id = run_id_for(candidate)
        moved = start.cart_coords + rng.normal(0, rng.uniform(0.02, 0.4), (len(start), 3))
        final = Structure(start.lattice, start.species, moved, coords_are_cartesian=True)
        cycles = _cycle_docs(run_id, n_cycles, rng)
        batch.append(_job_doc(RunDoc(
            run_id=run_id, name=candidate.name, spec=candidate.spec.model_dump(mode="json"),
            formula=start.composition.reduced_formula, n_atoms=len(start),
            initial_structure=start, structure=start,
            optimization_cost=StageCost(wall_seconds=10.0, cpu_seconds=20.0),
        ), "start run"))
        batch += [_job_doc(doc, f"record {doc.cycle}") for doc in cycles]
        batch.append(_job_doc(RunSummaryDoc(
            run_id=run_id, cycles=n_cycles, simulated_fs=cycles[-1].cumulative_fs,
            stop_reason="max_cycles", structure=final,
        ), f"haml cycle {n_cycles + 1}"))
        if len(batch) >= 2000:
            store.update(batch, key=["uuid", "index"])
            written += len(batch)
            batch = []
    store.update(batch, key=["uuid", "index"])
    return written + len(batch)


def rank_once(settings) -> tuple[float, float, int]:
    """Wall and CPU seconds of candidate_rows + rank_rows; number of rows."""
    from haml_flows.database.stores import connect
    from haml_flows.database.stores import make_launchpad
    from haml_flows.screening.ranking import candidate_rows, rank_rows

    db, launchpad = connect(settings), make_launchpad(settings)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    rows = rank_rows(candidate_rows(db, launchpad, "bench_screen", settings.DOCS_COLLECTION),
                     "similarity")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    assert all(r.rank is not None for r in rows)
    return wall, cpu, len(rows)


def profile_command(command: list[str], env: dict, directory: Path) -> None:
    """The command once under cProfile and once with ``-X importtime``."""
    directory.mkdir(parents=True, exist_ok=True)
    stats = directory / "results.prof"
    profiled = [command[0], "-m", "cProfile", "-o", str(stats), *command[1:]]
    subprocess.run(profiled, env=env, check=True, capture_output=True)
    timed = [command[0], "-X", "importtime", *command[1:]]
    done = subprocess.run(timed, env=env, check=True, capture_output=True, text=True)
    (directory / "importtime.txt").write_text(done.stderr)
    print(f"profile written to {stats} and {directory / 'importtime.txt'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50, help="Seeds per composition.")
    parser.add_argument("--cycles", type=int, default=50, help="Cycles per candidate.")
    parser.add_argument("--no-write", action="store_true", help="Only print.")
    parser.add_argument("--quiet-machine", action="store_true",
                        help="say in the doc that nothing else ran")
    parser.add_argument("--profile", type=Path, default=None,
                        help="also run the command under cProfile and -X importtime; "
                             "write both into this directory")
    args = parser.parse_args()

    with private_server("screen_results") as (settings, tmp):
        from haml_flows.screening.plan import expand_candidates
        from haml_flows.database.stores import make_launchpad

        make_launchpad(settings).reset("", require_password=False)
        path = write_screen(tmp, args.seeds)
        submit(settings, path)
        t0 = time.perf_counter()
        written = store_finished_runs(settings, expand_candidates(path), args.cycles)
        print(f"stored {written} documents in {time.perf_counter() - t0:.1f} s")

        server0 = server_cpu_seconds(settings)
        cold_wall, cold_cpu, n = rank_once(settings)
        cold_server = server_cpu_seconds(settings) - server0
        warm = []
        for _ in range(3):
            server0 = server_cpu_seconds(settings)
            wall, cpu, _ = rank_once(settings)
            warm.append((wall, cpu, server_cpu_seconds(settings) - server0))
        warm_wall, warm_cpu, warm_server = (min(w[i] for w in warm) for i in range(3))

        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = tmp / "ranked.csv"
        command = [sys.executable, "-m", "haml_flows.cli.main", "results", "--screen",
                   "bench_screen", "--rank", "similarity", "--csv", str(out)]
        wall0 = time.perf_counter()
        before = os.times()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        after = os.times()
        process_wall = time.perf_counter() - wall0
        process_cpu = (after.children_user - before.children_user
                       + after.children_system - before.children_system)
        assert done.returncode == 0, done.stdout + done.stderr
        import_cmd = [sys.executable, "-c", "import haml_flows.cli.main"]
        wall0, before = time.perf_counter(), os.times()
        subprocess.run(import_cmd, env=env, check=True)
        after = os.times()
        import_wall = time.perf_counter() - wall0
        import_cpu = (after.children_user - before.children_user
                      + after.children_system - before.children_system)
        rows = sum(1 for _ in out.open()) - 1
        if args.profile is not None:
            profile_command(command, env, args.profile)
    assert rows == n
    text = f"""{HEADING}

Command: `python bench/screen_results.py --seeds {args.seeds} --cycles {args.cycles}` (2 cores,
{machine_note(args.quiet_machine)}; {date.today().isoformat()}). {n} finished candidates x {args.cycles} CycleDocs ({n * args.cycles}
CycleDocs, {written} job documents in all) made through the package's schemas and
written through the JobStore on a fresh embedded server; 108-atom structures.

| figure | wall | CPU (this process / server) | target |
| --- | --- | --- | --- |
| ranking, first time (computes and stores similarity and bond changes of {n} runs) | {cold_wall:.2f} s | {cold_cpu:.2f} s / {cold_server:.2f} s | — |
| ranking, afterwards (reads the stored results; best of 3) | {warm_wall:.2f} s | {warm_cpu:.2f} s / {warm_server:.2f} s | <= 2 s |
| `haml results --rank similarity --csv` in a new process, all included | {process_wall:.2f} s | {process_cpu:.2f} s (process) | — |
| of which interpreter start and imports (`import haml_flows.cli.main`) | {import_wall:.2f} s | {import_cpu:.2f} s | — |

The first ranking sums each run's CycleDocs in the server (one $group by run
id, on the `output.doc_type` + `output.run_id` index) and computes the
structural columns (about {1000 * (cold_cpu - warm_cpu) / n:.0f} ms CPU per run: two
fingerprints and two bond counts); both are kept per finished run in
`haml_screen_results`, so later rankings read {n} small documents. Of the
whole command in a new process ({process_wall:.2f} s), {import_wall:.2f} s are interpreter
start and the command line's own imports (typer and rich only); the rest is the
command's imports (pymongo and FireWorks' LaunchPad; a ranked screen needs
neither maggma nor pymatgen, which load only to rank a newly finished run),
its queries and the printed table. Target for the whole command: at most 2 s,
{"met" if process_wall <= 2.0 else f"missed by {process_wall - 2.0:.1f} s"}. `--profile DIR` writes the command's cProfile
and `-X importtime` output.
"""
    publish(text, HEADING, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
