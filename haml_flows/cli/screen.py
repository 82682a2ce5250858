"""``haml screen``, ``haml status`` and ``haml results``: screens on FireWorks.

Registered in the main app with

    from haml_flows.cli.screen import results_command, screen_command, status_command
    app.command("screen")(screen_command)
    app.command("status")(status_command)
    app.command("results")(results_command)
    app.command("worker")(worker_command)
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from haml_flows.screening.ranking import RANK_KEYS

console = Console()
if not console.is_terminal:
    console = Console(width=160)

RankKey = Enum("RankKey", {k: k for k in RANK_KEYS}, type=str)


def _clients():
    """Settings, JobStore, LaunchPad and pymongo database on the configured server."""
    from haml_flows.database.server import DatabaseUnavailableError, ensure_database
    from haml_flows.database.stores import connect, make_job_store
    from haml_flows.screening.launchpad import screen_launchpad
    from haml_flows.settings import HamlSettings

    settings = HamlSettings()
    try:
        ensure_database(settings)
    except DatabaseUnavailableError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from None
    return settings, make_job_store(settings), screen_launchpad(settings), connect(settings)


def _fmt(value, spec: str = ".4g") -> str:
    if value is None:
        return "–"
    return format(value, spec) if isinstance(value, float) else str(value)


def _label(dopant, concentration) -> str:
    return "undoped" if dopant is None else f"{dopant} {concentration:g}"


def screen_command(
    spec: Path = typer.Argument(..., help="Screen file (YAML, top-level key 'screen')."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Expand, validate and build; submit nothing."
    ),
) -> None:
    """Submit a screen: one HAML workflow per dopant x concentration x seed.

    Candidates already submitted (same screen, same resolved spec) are skipped,
    so submitting again after editing the screen adds only the new ones.
    """
    import logging
    import warnings

    from haml_flows.builders.screen import expand_candidates
    from haml_flows.screening.submit import prepare_candidates, submit_screen
    from haml_flows.spec import SpecError

    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    logging.getLogger("launchpad").setLevel(logging.WARNING)
    try:
        plan = expand_candidates(spec)
    except SpecError as exc:
        console.print(f"[red]invalid screen:[/red] {exc}")
        raise typer.Exit(code=2) from None
    console.print(
        f"screen {plan.name}: {len(plan.candidates)} candidates of {plan.system}"
    )
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("building candidates", total=len(plan.candidates))

        def advance(name: str) -> None:
            bar.update(task, advance=1, description=f"built {name}")

        try:
            if dry_run:
                prepared = prepare_candidates(plan, progress=advance)
            else:
                settings, store, launchpad, db = _clients()
                report = submit_screen(
                    spec, store, launchpad, db, settings.DOCS_COLLECTION, advance, plan
                )
        except (SpecError, ValueError) as exc:
            console.print(f"[red]invalid screen {spec}:[/red] {exc}")
            raise typer.Exit(code=2) from None
    if dry_run:
        table = Table(title=f"screen {plan.name} (dry run, nothing submitted)")
        for column in ("candidate", "dopant", "seed", "formula", "atoms", "spec hash"):
            table.add_column(column)
        for p in prepared:
            table.add_row(
                p.candidate.name, _label(p.doc.dopant, p.doc.concentration),
                str(p.doc.seed), p.doc.formula, str(p.doc.n_atoms), p.doc.spec_hash[:12],
            )
        console.print(table)
        return
    console.print(
        f"added {len(report.added)} workflows ({report.fireworks} Fireworks); "
        f"{len(report.present)} already submitted"
    )
    if settings.uses_embedded_server:
        launch = f"haml worker --screen {plan.name} (one per core)"
    else:
        launch = "rlaunch -l launchpad.yaml -w my_fworker.yaml rapidfire, or qlaunch"
    console.print(f"launch workers with: {launch}; follow with: haml status --screen {plan.name}")


def status_command(
    screen: str = typer.Option(None, "--screen", help="Screen name; default: all screens."),
) -> None:
    """Workflows by state, cycles and simulated ps per candidate, failures."""
    from haml_flows.screening.status import screen_names, screen_status

    settings, _, launchpad, db = _clients()
    names = [screen] if screen else screen_names(db)
    if not names:
        console.print("no screens submitted")
        return
    for name in names:
        status = screen_status(db, launchpad, name, settings.DOCS_COLLECTION)
        if not status.candidates:
            console.print(f"[red]no screen named {name!r}[/red]")
            raise typer.Exit(code=1)
        states = ", ".join(f"{k} {v}" for k, v in status.states.items())
        table = Table(title=f"screen {name}: {len(status.candidates)} candidates ({states})")
        for column in ("candidate", "dopant", "seed", "state", "cycles", "ps", "finished"):
            table.add_column(column, justify="left" if column == "candidate" else "right")
        for c in status.candidates:
            table.add_row(
                c.candidate, _label(c.dopant, c.concentration), str(c.seed), c.state,
                str(c.cycles), f"{c.simulated_ps:.3f}", "yes" if c.finished else "no",
            )
        console.print(table)
        for c in status.candidates:
            for failure in c.failures:
                console.print(f"[red]failed[/red] {c.candidate} ({c.run_id}): {failure}")


def results_command(
    screen: str = typer.Option(..., "--screen", help="Screen name."),
    rank: RankKey = typer.Option(
        "similarity", "--rank", help="Rank key, best first: " + ", ".join(
            f"{k} ({'higher' if better else 'lower'} is better)"
            for k, (_, better) in RANK_KEYS.items()
        ),
    ),
    reverse: bool = typer.Option(False, "--reverse", help="Worst first."),
    csv: Path = typer.Option(None, "--csv", help="Write the ranked table as CSV."),
    json_path: Path = typer.Option(None, "--json", help="Write the ranked table as JSON."),
) -> None:
    """Rank a screen's candidates by similarity, bond changes, cost or speed-up."""
    from haml_flows.screening.ranking import candidate_rows, export, rank_rows

    for path, suffix in ((csv, ".csv"), (json_path, ".json")):
        if path is not None and path.suffix.lower() != suffix:
            console.print(f"[red]error:[/red] {path}: the file name must end in {suffix}")
            raise typer.Exit(code=2)
    settings, _, launchpad, db = _clients()
    key = rank.value
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("analysing finished candidates", total=None)
        rows = candidate_rows(
            db, launchpad, screen, settings.DOCS_COLLECTION,
            lambda name: bar.update(task, advance=1, description=f"analysed {name}"),
        )
    if not rows:
        console.print(f"[red]no screen named {screen!r}[/red]")
        raise typer.Exit(code=1)
    rows = rank_rows(rows, key, reverse)
    table = Table(
        title=f"screen {screen} ranked by {key}",
        caption="similarity: final vs optimized structure (1 = unchanged); "
        "|Δ bonds|: summed bond-count change; cost in CPU h per simulated ps",
    )
    for column in (
        "rank", "candidate", "dopant", "seed", "state", "cycles", "ps", "similarity",
        "|Δ bonds|", "HAML CPU h/ps", "AIMD CPU h/ps", "speed-up",
    ):
        table.add_column(column, justify="left" if column == "candidate" else "right")
    for r in rows:
        table.add_row(
            _fmt(r.rank), r.candidate, _label(r.dopant, r.concentration), str(r.seed),
            r.state, str(r.cycles), f"{r.simulated_ps:.3f}", _fmt(r.similarity, ".4f"),
            _fmt(r.bond_change_total), _fmt(r.haml_cpu_h_per_ps),
            _fmt(r.aimd_cpu_h_per_ps), _fmt(r.speedup, ".3g"),
        )
    console.print(table)
    for path in (csv, json_path):
        if path is not None:
            export(rows, path, screen, key, reverse)
            console.print(f"wrote {path}")


def worker_command(
    launchpad_file: Path = typer.Option(
        None, "--launchpad", "-l", help="launchpad.yaml; default: the configured database."
    ),
    fworker_file: Path = typer.Option(
        None, "--fworker", "-w", help="my_fworker.yaml (name, category, query, env)."
    ),
    screen: str = typer.Option(None, "--screen", help="Run only this screen's jobs."),
    nlaunches: int = typer.Option(
        0, help="Jobs to run; 0 = until none is ready or waiting, -1 = forever."
    ),
    sleep: int = typer.Option(5, help="Seconds between polls when nothing is ready."),
    max_loops: int = typer.Option(-1, help="Quit after this many idle polls (-1 = never)."),
    timeout: int = typer.Option(None, help="Quit after this many seconds."),
) -> None:
    """Run jobs from the LaunchPad here: FireWorks' rapidfire, like `rlaunch rapidfire`.

    The same as `rlaunch -l LAUNCHPAD -w FWORKER rapidfire`, on a LaunchPad whose
    id counters stay unique when several workers use the embedded database at
    once (haml_flows.screening.launchpad). Use it in my_qadapter.yaml's
    rocket_launch on clusters that use the embedded server.
    """
    import json

    from fireworks import FWorker
    from fireworks.core.rocket_launcher import rapidfire

    from haml_flows.screening.launchpad import AtomicIdLaunchPad

    if launchpad_file is not None:
        launchpad = AtomicIdLaunchPad.from_file(str(launchpad_file))
    else:
        launchpad = _clients()[2]
    worker = FWorker.from_file(str(fworker_file)) if fworker_file else FWorker(name="haml_worker")
    if screen:
        d = worker.to_dict()
        query = json.loads(d["query"]) if isinstance(d["query"], str) else dict(d["query"])
        query["spec.haml_screen"] = screen
        worker = FWorker(name=d["name"], category=d["category"], query=query, env=d["env"])
    rapidfire(
        launchpad,
        fworker=worker,
        nlaunches=nlaunches,
        max_loops=max_loops,
        sleep_time=sleep,
        timeout=timeout,
    )
