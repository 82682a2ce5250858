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
from rich.progress import Progress
from rich.table import Table

from haml_flows.cli import _common
from haml_flows.cli._common import clients, fail, quiet_dependencies, show
from haml_flows.screening.rank_keys import RANK_KEYS

RankKey = Enum("RankKey", {k: k for k in RANK_KEYS}, type=str)


def _fmt(value, spec: str = ".4g") -> str:
    if value is None:
        return "–"
    return format(value, spec) if isinstance(value, float) else str(value)


def _unknown_screen(db, name: str) -> str:
    """'no screen named X', with the closest submitted names."""
    import difflib

    from haml_flows.screening.status import screen_names

    names = screen_names(db)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        return f"no screen named {name!r}; did you mean {' or '.join(close)}?"
    return f"no screen named {name!r}; submitted: {', '.join(names) or 'none'}"


def _progress_bar() -> Progress:
    """A transient bar on a terminal; nothing at all in a log or a pipe."""
    return Progress(console=_common.console, transient=True,
                    disable=not _common.console.is_terminal)


def _label(dopant, concentration) -> str:
    return "undoped" if dopant is None else f"{dopant} {concentration:g}"


GUARD_LABELS = {"temperature_band": "band", "close_contact": "contact",
                "bad_forces": "forces", "overheating": "hot", "other": "other"}


def _audit_cells(audit) -> tuple[str, str, str]:
    """'max / last' audited force RMSE, 'failed of audited', guards fired by kind."""
    if audit is None:
        return "–", "–", "–"
    if audit.audited_cycles:
        rmse = f"{audit.audit_force_rmse_max:.3f}/{audit.audit_force_rmse_last:.3f}"
        failed = f"{audit.audits_failed} of {audit.audited_cycles}"
    else:
        rmse, failed = "no audit", "–"
    fired = [f"{GUARD_LABELS.get(k, k)} {n}" for k, n in audit.guards.items() if n]
    if audit.training_fallbacks:
        fired.append(f"fallback {audit.training_fallbacks}")
    return rmse, failed, ", ".join(fired) or "none"


def screen_command(
    spec: Path = typer.Argument(..., metavar="SCREEN", help="Screen file (YAML, top-level key 'screen')."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Expand, validate and build; submit nothing."
    ),
) -> None:
    """Submit a screen: a workflow per dopant, concentration, seed.

    Candidates already submitted (same screen, same resolved spec) are skipped,
    so submitting again after editing the screen adds only the new ones.
    """
    import logging

    from haml_flows.screening.plan import expand_candidates
    from haml_flows.screening.submit import prepare_candidates, submit_screen
    from haml_flows.spec import SpecError

    logging.getLogger("launchpad").setLevel(logging.WARNING)
    try:
        plan = expand_candidates(spec)
    except SpecError as exc:  # the message starts with the file's path
        fail(f"invalid screen {exc}", code=2)
    show(f"screen {plan.name}: {len(plan.candidates)} candidates of {plan.system}")
    with quiet_dependencies(), Progress(console=_common.console, transient=True) as bar:
        task = bar.add_task("building candidates", total=len(plan.candidates))

        def advance(name: str) -> None:
            bar.update(task, advance=1, description=f"built {name}")

        try:
            if dry_run:
                prepared = prepare_candidates(plan, progress=advance)
            else:
                on = clients(start=True)
                report = submit_screen(
                    spec, on.store, on.launchpad, on.db, on.settings.DOCS_COLLECTION,
                    advance, plan,
                )
        except (SpecError, ValueError) as exc:
            fail(f"invalid screen {spec}: {exc}", code=2)
    if dry_run:
        table = Table(title=f"screen {plan.name} (dry run, nothing submitted)")
        for column in ("candidate", "dopant", "seed", "formula", "atoms", "spec hash"):
            table.add_column(column)
        for p in prepared:
            table.add_row(
                p.candidate.name, _label(p.doc.dopant, p.doc.concentration),
                str(p.doc.seed), p.doc.formula, str(p.doc.n_atoms), p.doc.spec_hash[:12],
            )
        show(table)
        return
    show(
        f"added {len(report.added)} workflows ({report.fireworks} Fireworks); "
        f"{len(report.present)} already submitted"
    )
    if on.settings.uses_embedded_server:
        launch = f"haml worker --screen {plan.name} (one per core)"
    else:
        launch = "rlaunch -l launchpad.yaml -w my_fworker.yaml rapidfire, or qlaunch"
    show(f"launch workers with: {launch}; follow with: haml status --screen {plan.name}")


def status_command(
    screen: str = typer.Option(None, "--screen", help="Screen name; default: all screens."),
) -> None:
    """A screen's workflows: state, cycles and ps per candidate."""
    from haml_flows.screening.status import screen_names, screen_status

    on = clients(store=False)
    names = [screen] if screen else screen_names(on.db)
    if not names:
        show("no screens submitted")
        return
    for name in names:
        status = screen_status(on.db, on.launchpad, name, on.settings.DOCS_COLLECTION)
        if not status.candidates:
            fail(_unknown_screen(on.db, name), code=1)
        states = ", ".join(f"{k} {v}" for k, v in status.states.items())
        table = Table(title=f"screen {name}: {len(status.candidates)} candidates ({states})")
        for column in ("candidate", "dopant", "seed", "state", "cycles", "ps", "finished"):
            table.add_column(column, justify="left" if column == "candidate" else "right")
        for c in status.candidates:
            table.add_row(
                c.candidate, _label(c.dopant, c.concentration), str(c.seed), c.state,
                str(c.cycles), f"{c.simulated_ps:.3f}", "yes" if c.finished else "no",
            )
        show(table)
        for c in status.candidates:
            for failure in c.failures:
                show(f"[red]failed[/red] {c.candidate} ({c.run_id}): {failure}")


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
    figures: Path = typer.Option(
        None, "--figures", metavar="DIR",
        help="Also draw the candidates side by side into DIR: similarity (Fig. 5e), bond "
        "changes (Fig. 5f), simulated time per cycle (Fig. 4a), bond series, products "
        "(PNG, products.csv/.md, series.json).",
    ),
) -> None:
    """Rank a screen's candidates: similarity, bonds, cost, speed-up, audit."""
    from haml_flows.screening.ranking import candidate_rows, export, rank_rows

    for path, suffix in ((csv, ".csv"), (json_path, ".json")):
        if path is not None and path.suffix.lower() != suffix:
            fail(f"{path}: the file name must end in {suffix}", code=2)
    if figures is not None and figures.exists() and not figures.is_dir():
        fail(f"--figures {figures}: a file is there; give a directory for the figures", code=2)
    on = clients(store=False)
    key = rank.value
    with _progress_bar() as bar:
        task = bar.add_task("analysing finished candidates", total=None)
        rows = candidate_rows(
            on.db, on.launchpad, screen, on.settings.DOCS_COLLECTION,
            lambda name: bar.update(task, advance=1, description=f"analysed {name}"),
        )
    if not rows:
        fail(_unknown_screen(on.db, screen), code=1)
    if figures is not None and not any(r.cycles for r in rows):
        fail(f"--figures: no candidate of screen {screen!r} has a stored cycle yet; "
             "nothing to draw (haml status --screen shows their progress)", code=1)
    in_screen_order = rows
    rows = rank_rows(rows, key, reverse)
    table = Table(
        title=f"screen {screen} ranked by {key}",
        collapse_padding=True,
        caption="similarity: final vs optimized structure (1 = unchanged); "
        "|Δ bonds|: summed bond-count change; cost in CPU h per simulated ps; "
        "audit F: largest / last audited MLP force RMSE against the reference (eV/Å); "
        "guards: MLP-MD guard firings (band: temperature band, contact: close contact, "
        "forces: bad forces, hot: overheating), fallback: trainings that kept the "
        "previous potential",
    )
    for column in (
        "rank", "candidate", "dopant", "seed", "state", "cycles", "ps", "similarity",
        "|Δ bonds|", "HAML\nCPU h/ps", "AIMD\nCPU h/ps", "speed-\nup",
        "audit F eV/Å\nmax/last", "audits\nfailed", "guards",
    ):
        # names and numbers whole; only the guards wrap on a narrow console
        table.add_column(column, justify="left" if column in ("candidate", "guards") else "right",
                         no_wrap=column != "guards", min_width=12 if column == "guards" else None)
    for r in rows:
        table.add_row(
            _fmt(r.rank), r.candidate, _label(r.dopant, r.concentration), str(r.seed),
            r.state, str(r.cycles), f"{r.simulated_ps:.3f}", _fmt(r.similarity, ".4f"),
            _fmt(r.bond_change_total), _fmt(r.haml_cpu_h_per_ps),
            _fmt(r.aimd_cpu_h_per_ps), _fmt(r.speedup, ".3g"), *_audit_cells(r.audit),
        )
    show(table)
    for path in (csv, json_path):
        if path is not None:
            export(rows, path, screen, key, reverse)
            show(f"wrote {path}")
    if figures is not None:
        _screen_figures(screen, in_screen_order, figures)


def _screen_figures(screen: str, rows, out: Path) -> None:
    """Stream every candidate with cycles once and draw them side by side into ``out``."""
    from haml_flows.analysis.screen_figures import analyze_screen, write_screen_figures

    store = _common.connect_store()
    with quiet_dependencies(), _progress_bar() as bar:
        task = bar.add_task("reading trajectories", total=len(rows))
        analysis = analyze_screen(
            store, screen, rows,
            progress=lambda name: bar.update(task, advance=1, description=f"read {name}"),
        )
        written = write_screen_figures(analysis, out)
    for left in analysis.left_out:
        show(f"not drawn: {left['candidate']} ({left['state']}): {left['reason']}")
    unfinished = [s.label for s in analysis.candidates if not s.finished]
    if unfinished:
        show(f"unfinished, drawn at their last stored frame (hatched): {', '.join(unfinished)}")
    show(f"wrote {len(analysis.candidates)} candidates' figures to {out}: "
         + ", ".join(written.values()))


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
    """Run LaunchPad jobs here, as rlaunch rapidfire does.

    The same as rlaunch -l LAUNCHPAD -w FWORKER rapidfire, on a LaunchPad whose
    id counters stay unique when several workers use the embedded database at
    once (haml_flows.database.launchpad). Use it in my_qadapter.yaml's
    rocket_launch on clusters that use the embedded server.
    """
    import json

    from fireworks import FWorker
    from fireworks.core.rocket_launcher import rapidfire

    from haml_flows.database.launchpad import AtomicIdLaunchPad
    from haml_flows.engines.commands import fworker_file_env

    if launchpad_file is not None:
        launchpad = AtomicIdLaunchPad.from_file(str(launchpad_file))
    else:
        launchpad = clients(start=True).launchpad
    if fworker_file:
        worker = FWorker.from_file(str(fworker_file))
    else:  # engine commands from FireWorks' default worker file, as rlaunch reads them
        worker = FWorker(name="haml_worker", env=fworker_file_env())
    if screen:
        d = worker.to_dict()
        query = json.loads(d["query"]) if isinstance(d["query"], str) else dict(d["query"])
        query["spec.haml_screen"] = screen
        worker = FWorker(name=d["name"], category=d["category"], query=query, env=d["env"])
    from haml_flows.database.retry import DatabaseUnavailableError

    log = _common.show_progress(Path.cwd())
    show(f"worker {worker.name}: stage and cycle lines here and in {log}")
    try:
        rapidfire(
            launchpad,
            fworker=worker,
            nlaunches=nlaunches,
            max_loops=max_loops,
            sleep_time=sleep,
            timeout=timeout,
        )
    except DatabaseUnavailableError as exc:
        again = (f"haml resume --screen {screen}" if screen
                 else "haml resume --screen NAME (haml status lists the screens)")
        fail(f"{exc} The screen continues with: {again}", code=3)
