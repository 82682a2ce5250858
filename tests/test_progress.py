"""Progress of long work: stage lines, the calculator counter, the run estimate, the log file."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from haml_flows.progress import RunEstimate, StageProgress, count_calculations

DATA = Path(__file__).parent / "data"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def caplog():
    """The progress logger's lines, whatever an earlier command set on it
    (the command line turns its propagation off)."""
    logger = logging.getLogger("haml_flows.progress")
    lines = _Lines()
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    lines.at_level = lambda *a, **k: contextlib.nullcontext()
    yield lines
    logger.removeHandler(lines)
    logger.setLevel(level)


def test_stage_lines_give_place_fields_elapsed_and_what_is_left(caplog):
    progress = StageProgress("mlpmd 3", 200, interval=0)
    with caplog.at_level(logging.INFO, logger="haml_flows.progress"):
        progress.update(50, γ="2.1", T="301 K")
        progress.update(120, final=True, stop="gamma_break")
    first, last = caplog.messages
    assert first.startswith("mlpmd 3: step 50/200 (25 %), γ 2.1, T 301 K, ")
    assert "elapsed" in first and first.endswith("left")
    assert last.startswith("mlpmd 3: step 120/200 (60 %), stop gamma_break")
    assert "left" not in last  # a stage that ended has nothing left


def test_lines_are_rate_limited(caplog):
    progress = StageProgress("aimd 1", 1000, interval=3600)
    with caplog.at_level(logging.INFO, logger="haml_flows.progress"):
        for step in range(1000):
            progress.update(step, force=step == 0)
        progress.update(1000, final=True)
    assert [m.split(":")[1].split("(")[0].strip() for m in caplog.messages] == [
        "step 0/1000", "step 1000/1000"]


def test_counted_calculator_reports_md_steps_and_stays_the_same_calculator(caplog):
    from ase import units
    from ase.build import bulk
    from ase.calculators.lj import LennardJones
    from ase.md.verlet import VelocityVerlet

    atoms = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)
    atoms.set_velocities(np.random.default_rng(0).normal(0, 0.002, (len(atoms), 3)))
    plain = LennardJones(sigma=3.4, epsilon=0.0104, rc=8.0)
    progress = StageProgress("aimd 2", 10, interval=0)
    calc = count_calculations(LennardJones(sigma=3.4, epsilon=0.0104, rc=8.0), progress)
    assert isinstance(calc, LennardJones) and type(calc).__name__ == "LennardJones"
    atoms.calc = calc
    with caplog.at_level(logging.INFO, logger="haml_flows.progress"):
        VelocityVerlet(atoms, 2 * units.fs).run(10)
    steps = [int(m.split("step ")[1].split("/")[0]) for m in caplog.messages]
    assert steps == list(range(11)) and " K" in caplog.messages[0]
    reference = atoms.copy()
    reference.calc = plain
    assert np.allclose(reference.get_forces(), atoms.get_forces())


def test_run_estimate_appends_place_and_time_left():
    estimate = RunEstimate(max_cycles=10, total_time_ps=1.0)
    record = logging.LogRecord("haml_flows.progress", logging.INFO, __file__, 0,
                               "cycle 2 | ...", None, None)
    record.haml_cycle, record.haml_ps = 2, 0.1
    estimate.first = (0, 0.0)
    estimate.start -= 20.0  # 20 s for 2 cycles and 0.1 ps
    assert estimate.filter(record)
    note = record.msg.split(" | ", 2)[-1]
    # 10 s a cycle for 8 more cycles (80 s), 200 s per ps for 0.9 ps (180 s): the cycles end it
    assert note.startswith("run: cycle 2/10, 0.100/1 ps, 20 s elapsed, ~")
    assert note.endswith("left") and ("80 s" in note or "1.3 min" in note)


def test_haml_run_keeps_a_timestamped_log_of_every_stage_in_its_folder(
    haml_settings, monkeypatch, tmp_path
):
    from haml_flows.cli.main import app

    monkeypatch.setenv("HAML_DATABASE", haml_settings.DATABASE)
    monkeypatch.setenv("HAML_PROGRESS_SECONDS", "0.01")
    result = CliRunner().invoke(app, ["run", str(DATA / "lj_small.yaml"), "--workdir",
                                      str(tmp_path)])
    assert result.exit_code == 0, result.output
    run_id = result.output.split("run ", 1)[1].split(":", 1)[0]
    log = (tmp_path / run_id / "haml.log").read_text().splitlines()
    assert all(line[:4].isdigit() and line[10] == " " for line in log)  # timestamped
    text = "\n".join(log)
    for stage in ("aimd 1: step 0/8", "training 1: stage", "mlpmd 1: step 0/",
                  "cycle 1 | AIMD", "run: cycle 1/2", "aimd 2: step 8/8 (100 %)"):
        assert stage in text, stage
    assert "γ " in text and " K" in text
    # each stage's folder is found by its name
    for name in ("aimd-1", "training-1", "mlpmd-1", "aimd-2", "mlpmd-2"):
        link = tmp_path / run_id / name
        assert link.is_symlink() and link.resolve().name.startswith("job_"), name
        assert link.resolve().parent == (tmp_path / run_id).resolve()
    # not on a terminal, the console lines are timestamped too
    assert any(line[:4].isdigit() and "mlpmd 1: step" in line
               for line in result.output.splitlines())


@pytest.fixture(autouse=True)
def _no_leftover_handlers():
    yield
    logger = logging.getLogger("haml_flows.progress")
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler):
            logger.removeHandler(handler)
            handler.close()
    for f in list(logger.filters):
        logger.removeFilter(f)
