"""`haml resume RUN_ID` / `haml resume --screen NAME`: continue a run or a whole
screen after a lost worker, a crash, an outage or a move to another machine."""

from __future__ import annotations

from pathlib import Path

import typer

from haml_flows.cli._common import (
    WORKDIR,
    connect_store,
    fail,
    quiet_dependencies,
    show,
    show_progress,
    show_run,
)

# FireWorks' own default for `lpad detect_lostruns --time` (fw_config.RUN_EXPIRATION_SECS)
_FIREWORKS_LOST_AFTER = 4 * 3600


def resume_command(
    run_id: str = typer.Argument(
        None, metavar="RUN_ID", help="Run id printed by 'haml run' (or give --screen)."
    ),
    screen: str = typer.Option(
        None, "--screen", metavar="NAME",
        help="Continue every unfinished candidate of this screen instead of one run.",
    ),
    lost_after: float = typer.Option(
        _FIREWORKS_LOST_AFTER,
        "--lost-after",
        help="FireWorks runs: seconds without a ping after which a RUNNING Firework "
        "counts as lost and is rerun (FireWorks' default; use 0 when you know "
        "its worker is dead).",
    ),
    unlock: bool = typer.Option(
        False,
        "--unlock",
        help="FireWorks runs: release the workflow lock a worker killed while "
        "FireWorks updated the workflow left behind (only when no worker of the "
        "run is alive; as lpad admin unlock does).",
    ),
    no_launch: bool = typer.Option(
        False, "--no-launch",
        help="With --screen: only make the candidates' Fireworks ready again; run them "
        "with haml worker --screen NAME, rlaunch or qlaunch.",
    ),
    workdir: Path = WORKDIR,
) -> None:
    """Continue a run, or every unfinished candidate of a screen, from its last stored stage or cycle.

    FireWorks runs continue from their last completed stage, local runs from
    their last stored cycle. Exits 1 with what is left when the run or screen
    is still unfinished at the end.
    """
    if run_id is not None and screen is not None:
        fail("give a RUN_ID or --screen NAME, not both", code=2)
    if run_id is None and screen is None:
        fail("give the RUN_ID of a run, or --screen NAME to continue a screen", code=2)
    if no_launch and screen is None:
        fail("--no-launch goes with --screen NAME", code=2)
    if screen is not None:
        _resume_screen(screen, lost_after, unlock, no_launch, workdir)
        return
    from haml_flows.database.retry import DatabaseUnavailableError
    from haml_flows.database.stores import make_launchpad
    from haml_flows.queries import cycle_docs, run_doc, unknown_run_message
    from haml_flows.runner import (
        ResumeError,
        launch_run_fireworks,
        recover_fireworks,
        resume_locally,
        unfinished_reason,
    )
    from haml_flows.settings import get_settings

    settings = get_settings()
    store = connect_store(settings)
    # known: its optimization stored the run document, or its Fireworks wait
    if run_doc(store, run_id) is None and not make_launchpad(settings).fireworks.find_one(
        {"spec.haml_run_id": run_id}, {"_id": 1}
    ):
        fail(unknown_run_message(store, run_id), code=1)
    run_dir = workdir.resolve() / run_id
    show_progress(run_dir)
    try:
        with quiet_dependencies():
            launchpad = make_launchpad(settings)
            report = recover_fireworks(run_id, store, launchpad, lost_after, unlock=unlock)
            if report is not None:
                show(f"resuming {run_id} on FireWorks: {_recovered(report)}")
                launch_run_fireworks(run_id, launchpad, run_dir)
                left = unfinished_reason(store, launchpad, run_id)
            else:
                show(f"resuming {run_id} locally after cycle {len(cycle_docs(store, run_id))}")
                resume_locally(run_id, store, run_dir)
                left = None
    except ResumeError as exc:
        fail(f"cannot resume {run_id}: {exc}", code=1)
    except DatabaseUnavailableError as exc:
        fail(str(exc), code=3)
    show_run(store, run_id)
    if left:
        fail(f"{left}; a worker of this run may still hold them (haml runs, lpad get_fws "
             f"-q '{{\"spec.haml_run_id\": \"{run_id}\"}}'), or rerun with --lost-after 0",
             code=1)


def _recovered(report) -> str:
    return (
        f"{report.cycles_done} cycles stored, "
        f"lost Fireworks rerun: {report.lost_fireworks or 'none'}, "
        f"stale reservations released: {report.unreserved_fireworks or 'none'}, "
        f"fizzled rerun: {report.rerun_fireworks or 'none'}"
    )


def _states_left(launchpad, run_id: str) -> dict[str, int]:
    """The run's Fireworks that are not COMPLETED, counted by state."""
    from collections import Counter

    return dict(sorted(Counter(
        fw["state"] for fw in launchpad.fireworks.find(
            {"spec.haml_run_id": run_id, "state": {"$ne": "COMPLETED"}}, {"state": 1})
    ).items()))


def _by_state(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in states.items())


def _not_ready(launchpad, run_id: str) -> str | None:
    """None when a worker can take one of the run's Fireworks now; else their states."""
    states = _states_left(launchpad, run_id)
    if states.get("READY"):
        return None
    if not states:
        return "no Firework is left to run"
    return f"no Firework READY; left: {_by_state(states)}"


def _unfinished(store, launchpad, run_id: str) -> str | None:
    """None when the run has finished; else what is left, with its Fireworks by state."""
    from haml_flows.runner import unfinished_reason

    reason = unfinished_reason(store, launchpad, run_id)
    states = _states_left(launchpad, run_id) if reason else {}
    return f"{reason}; by state: {_by_state(states)}" if states else reason


def _resume_screen(
    screen: str, lost_after: float, unlock: bool, no_launch: bool, workdir: Path
) -> None:
    """Recover every unfinished candidate of ``screen``, then run them here or leave them READY."""
    from haml_flows.cli._common import clients
    from haml_flows.cli.screen import _unknown_screen
    from haml_flows.database.retry import DatabaseUnavailableError
    from haml_flows.runner import launch_fireworks, recover_fireworks
    from haml_flows.screening.status import screen_status

    on = clients()
    candidates = screen_status(
        on.db, on.launchpad, screen, on.settings.DOCS_COLLECTION).candidates
    if not candidates:
        fail(_unknown_screen(on.db, screen), code=1)
    unfinished = [c for c in candidates if not c.finished]
    if not unfinished:
        show(f"screen {screen}: all {len(candidates)} candidates finished; nothing to resume")
        return
    show(f"resuming screen {screen}: {len(unfinished)} of {len(candidates)} candidates "
         "unfinished")
    try:
        with quiet_dependencies():
            for c in unfinished:
                report = recover_fireworks(
                    c.run_id, on.store, on.launchpad, lost_after, unlock=unlock)
                show(f"{c.candidate} ({c.run_id}): "
                     + (_recovered(report) if report is not None else
                        "no Fireworks in the LaunchPad; submit the screen again "
                        "(haml screen SCREEN.yaml) to add it"), soft_wrap=True)
            if not no_launch:
                screen_dir = workdir.resolve() / screen
                show_progress(screen_dir)
                launch_fireworks({"spec.haml_screen": screen}, on.launchpad, screen_dir)
    except DatabaseUnavailableError as exc:
        fail(str(exc), code=3)
    if no_launch:
        left = {c.candidate: _not_ready(on.launchpad, c.run_id) for c in unfinished}
    else:
        left = {c.candidate: _unfinished(on.store, on.launchpad, c.run_id)
                for c in unfinished}
    left = {name: reason for name, reason in left.items() if reason}
    for name, reason in left.items():
        show(f"left: {name}: {reason}", soft_wrap=True)
    hint = ("a worker may still hold them (haml status --screen "
            f"{screen}), or rerun with --lost-after 0 once no worker of the screen is alive")
    if no_launch:
        if left:
            fail(f"screen {screen}: {len(left)} of {len(unfinished)} unfinished candidates "
                 f"have no READY Firework; {hint}", code=1)
        show(f"screen {screen}: {len(unfinished)} unfinished candidates ready; run them with "
             f"haml worker --screen {screen} (one per core), rlaunch or qlaunch")
        return
    finished = len(candidates) - len(left)
    if left:
        fail(f"screen {screen} is unfinished: {len(left)} of {len(candidates)} candidates "
             f"left (listed above); {hint}", code=1)
    show(f"screen {screen}: all {finished} candidates finished "
         f"(haml results --screen {screen})")
