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
from haml_flows.database.retry import DatabaseUnavailableError
from haml_flows.database.stores import make_launchpad
from haml_flows.queries import cycle_docs
from haml_flows.settings import get_settings

# FireWorks' own default for `lpad detect_lostruns --time` (fw_config.RUN_EXPIRATION_SECS)
_FIREWORKS_LOST_AFTER = 4 * 3600


def resume_command(
    run_id: str = typer.Argument(..., help="Run id printed by 'haml run'."),
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
        "run is alive; as `lpad admin unlock`).",
    ),
    workdir: Path = WORKDIR,
) -> None:
    """Continue a run from its last completed stage (FireWorks) or cycle (local)."""
    from haml_flows.runner import (
        ResumeError,
        launch_run_fireworks,
        recover_fireworks,
        resume_locally,
    )

    settings = get_settings()
    store = connect_store(settings)
    show_progress()
    run_dir = workdir.resolve() / run_id
    try:
        with quiet_dependencies():
            launchpad = make_launchpad(settings)
            report = recover_fireworks(run_id, store, launchpad, lost_after, unlock=unlock)
            if report is not None:
                show(
                    f"resuming {run_id} on FireWorks: {report.cycles_done} cycles stored, "
                    f"lost Fireworks rerun: {report.lost_fireworks or 'none'}, "
                    f"fizzled rerun: {report.rerun_fireworks or 'none'}"
                )
                launch_run_fireworks(run_id, launchpad, run_dir)
            else:
                show(f"resuming {run_id} locally after cycle {len(cycle_docs(store, run_id))}")
                resume_locally(run_id, store, run_dir)
    except ResumeError as exc:
        show(f"[red]cannot resume:[/red] {exc}")
        raise typer.Exit(code=1) from None
    except DatabaseUnavailableError as exc:
        fail(str(exc), code=3)
    show_run(store, run_id)
