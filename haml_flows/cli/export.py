"""``haml export``: a stored run's trajectory as one extended-XYZ file."""

from __future__ import annotations

from pathlib import Path

import typer

from haml_flows.cli._common import connect_store, fail, quiet_dependencies, show


def _check_output(path: Path, force: bool) -> None:
    """Refuse a directory, an existing file without --force and a missing folder."""
    if path.is_dir():
        fail(f"-o {path}: a directory is there; give a file name such as "
             f"{path / 'run.extxyz'}", code=2)
    if path.exists() and not force:
        fail(f"-o {path}: the file exists; pass --force to overwrite it", code=2)
    if not path.parent.is_dir():
        fail(f"-o {path}: folder {path.parent} does not exist", code=2)


def export_command(
    run_id: str = typer.Argument(..., metavar="RUN_ID", help="Run id printed by 'haml run'."),
    output: Path = typer.Option(
        None, "--output", "-o", help="File to write (default RUN_ID.extxyz)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """A run's frames as one extended-XYZ file for ase gui and OVITO.

    Every stored AIMD and MLP-MD frame with time_fs, stage, cycle, engine,
    positions, velocities (velo, A/fs) and the energy and forces its engine
    computed, where the store has them.
    """
    from haml_flows.analysis.export import STAGE_NAMES, export_run
    from haml_flows.queries import cycle_docs, run_doc, unknown_run_message

    path = output or Path(f"{run_id}.extxyz")
    _check_output(path, force)
    store = connect_store()
    if run_doc(store, run_id) is None:
        fail(unknown_run_message(store, run_id), code=1)
    if not cycle_docs(store, run_id):
        fail(f"run {run_id}: no cycle finished yet, so no frames are stored "
             "(see haml runs)", code=1)
    with quiet_dependencies():
        summary = export_run(store, run_id, path)
    stages = ", ".join(f"{STAGE_NAMES.get(stage, stage)} {count}"
                       for stage, count in summary.frames.items())
    show(f"wrote {summary.total} frames ({stages}) of run {run_id}, "
         f"{summary.first_fs:g} to {summary.last_fs:g} fs, to {path}",
         highlight=False, soft_wrap=True)
    if summary.merged:
        show(f"{summary.merged} hand-over frames stored twice (end of one segment, start "
             "of the next) were written once, the AIMD copy where there is one",
             highlight=False, soft_wrap=True)
    for note in summary.notes():
        show(f"note: {note}", highlight=False, soft_wrap=True)
