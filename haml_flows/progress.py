"""Progress of a stage while it runs: a line every few seconds on ``haml_flows.progress``.

A cycle's stages take seconds on the embedded engines and hours on VASP; a
line per finished cycle leaves a user in silence for all of it. A
:class:`StageProgress` logs ``cycle 3 AIMD: step 120/200 (60 %), T 305 K,
12 s elapsed, ~8 s left`` at most every ``HAML_PROGRESS_SECONDS`` (and
once at the end), on the same logger as the cycle lines, so the console and
the run's log file show both.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

logger = logging.getLogger("haml_flows.progress")


def _seconds(value: float) -> str:
    if value < 90:
        return f"{value:.0f} s"
    if value < 5400:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


class StageProgress:
    """Lines ``<stage>: <unit> n/N (x %), <fields>, elapsed, ~left``, rate-limited."""

    def __init__(self, stage: str, total: int | None, unit: str = "step",
                 interval: float | None = None) -> None:
        if interval is None:
            from haml_flows.settings import get_settings

            interval = get_settings().PROGRESS_SECONDS
        self.stage = stage
        self.total = total
        self.unit = unit
        self.interval = interval
        self.start = time.monotonic()
        self._last = self.start
        self.done = 0
        self.lines = 0

    def line(self, done: int, final: bool = False, **fields) -> str:
        """The progress line for ``done`` units with ``fields`` (name -> text).

        ``final``: the stage has ended (before ``total`` when a rule stopped it),
        so no estimate of what is left.
        """
        elapsed = time.monotonic() - self.start
        parts = [f"{self.unit} {done}" + (f"/{self.total}" if self.total else "")]
        if self.total:
            parts[0] += f" ({100 * done / self.total:.0f} %)"
        parts += [f"{k} {v}" for k, v in fields.items()]
        parts.append(f"{_seconds(elapsed)} elapsed")
        if self.total and 0 < done < self.total and not final:
            parts.append(f"~{_seconds(elapsed / done * (self.total - done))} left")
        return f"{self.stage}: " + ", ".join(parts)

    def update(self, done: int, force: bool = False, final: bool = False, **fields) -> None:
        """Log the line if ``interval`` has passed since the last (or ``force``/``final``)."""
        self.done = done
        now = time.monotonic()
        if force or final or now - self._last >= self.interval:
            self._last = now
            self.lines += 1
            logger.info(self.line(done, final=final, **fields))

    def due(self) -> bool:
        """Whether a line would be logged now: lets a hot loop skip building its fields."""
        return time.monotonic() - self._last >= self.interval

    def tick(self, **fields) -> None:
        """One more unit done."""
        self.update(self.done + 1, **fields)


def current_stage(default: str) -> str:
    """The running jobflow job's name (``aimd 3``, ``mlpmd 3``), else ``default``."""
    try:
        from jobflow import CURRENT_JOB

        job = CURRENT_JOB.job
    except ImportError:  # pragma: no cover - jobflow is a dependency
        job = None
    return job.name if job is not None and job.name else default


#: the folders jobflow's ``run_locally`` and FireWorks' rockets make for a job
_JOB_FOLDER_PREFIXES = ("job_", "launcher_")


def link_job_folder() -> Path | None:
    """Next to the running job's folder, a link named after the job (``aimd-3``).

    jobflow and FireWorks name a job's folder by a time stamp only; the link
    (``aimd-3 -> job_2026-...``) lets a user find a cycle's files. A rerun
    points the link at its own folder. Outside such a folder, or for a job
    that is not a cycle's stage, nothing is linked; returns the link.
    """
    import os

    import re

    name = current_stage("")
    here = Path.cwd()
    # a cycle's stage ("aimd 3", "mlpmd 12"); a bare maker name says nothing new
    if not re.fullmatch(r"[a-z-]+ \d+", name) or not here.name.startswith(
            _JOB_FOLDER_PREFIXES):
        return None
    link = here.parent / name.replace(" ", "-")
    try:
        if link.is_symlink():
            link.unlink()
        if not link.exists():
            os.symlink(here.name, link)
    except OSError:  # a read-only or shared folder: the time stamp stays the name
        return None
    return link


def count_calculations(calculator, progress: StageProgress):
    """``calculator`` with every ``calculate`` call counted as one step of ``progress``.

    MD asks for energy and forces once per step, so for a dynamics driven by a
    library (atomate2's ASE MD maker) the calculator is where the steps show.
    The instance is given a subclass of its own class; nothing else changes.
    """
    base = type(calculator)
    calls = [0]

    class Counted(base):  # type: ignore[misc, valid-type]
        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            step, calls[0] = calls[0], calls[0] + 1  # the first calculation is step 0
            atoms = args[0] if args else kwargs.get("atoms")
            fields = {}
            if atoms is not None and len(atoms) and atoms.get_velocities() is not None:
                fields["T"] = f"{atoms.get_temperature():.0f} K"
            progress.update(step, force=step == 0, **fields)

    Counted.__name__ = Counted.__qualname__ = base.__name__
    calculator.__class__ = Counted
    return calculator


class RunEstimate(logging.Filter):
    """Appends the run's place and an estimate to each cycle line of one run.

    Cycle lines carry ``haml_cycle`` and ``haml_ps`` (``extra`` of the log
    call); the estimate is this process's rate per cycle and per ps applied to
    what is left of ``max_cycles`` and ``total_time_ps``, whichever ends the
    run first.
    """

    def __init__(self, max_cycles: int, total_time_ps: float) -> None:
        super().__init__()
        self.max_cycles = max_cycles
        self.total_time_ps = total_time_ps
        self.start = time.monotonic()
        self.first: tuple[int, float] | None = None

    def note(self, cycle: int, ps: float) -> str:
        elapsed = time.monotonic() - self.start
        if self.first is None:  # a resumed run starts counting where it resumed
            self.first = (cycle - 1, 0.0) if cycle == 1 else (cycle - 1, ps * (cycle - 1) / cycle)
        cycles_here = cycle - self.first[0]
        ps_here = ps - self.first[1]
        left = []
        if cycles_here > 0:
            left.append(elapsed / cycles_here * max(self.max_cycles - cycle, 0))
        if ps_here > 0:
            left.append(elapsed / ps_here * max(self.total_time_ps - ps, 0.0))
        text = (f"run: cycle {cycle}/{self.max_cycles}, {ps:.3f}/{self.total_time_ps:g} ps, "
                f"{_seconds(elapsed)} elapsed")
        if left and min(left) > 0:
            text += f", ~{_seconds(min(left))} left"
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        cycle = getattr(record, "haml_cycle", None)
        if cycle is not None:
            record.msg = f"{record.msg} | {self.note(cycle, record.haml_ps)}"
        return True
