"""`haml resume RUN_ID`: continue a run after a lost worker, a crash or an outage."""

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
    run_id: str = typer.Argument(..., metavar="RUN_ID", help="Run id printed by 'haml run'."),
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
    workdir: Path = WORKDIR,
) -> None:
    """Continue a run from its last stored stage or cycle.

    FireWorks runs continue from their last completed stage, local runs from
    their last stored cycle.
    """
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
                show(
                    f"resuming {run_id} on FireWorks: {report.cycles_done} cycles stored, "
                    f"lost Fireworks rerun: {report.lost_fireworks or 'none'}, "
                    f"stale reservations released: {report.unreserved_fireworks or 'none'}, "
                    f"fizzled rerun: {report.rerun_fireworks or 'none'}"
                )
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
