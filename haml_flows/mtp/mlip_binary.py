"""MTP training, grading and selection through MLIP's ``mlp`` executable.

When an ``mlp`` command is configured (``HAML_MLP_CMD``, the ``MLP_CMD`` key
of the config file, or ``mlp_cmd`` in the ``env`` of ``my_fworker.yaml``),
the HAML cycle trains with ``mlp train`` and grades with ``mlp calc-grade`` /
``mlp select-add`` instead of motep. Each call runs in a fresh temporary
directory holding MLIP's files::

    <mlp_cmd> train init.mtp train.cfg --trained-pot-name=pot.mtp [weights, --max-iter]
    <mlp_cmd> calc-grade pot.mtp train.cfg in.cfg out.cfg --als-filename=state.als
    <mlp_cmd> select-add pot.mtp train.cfg preselected.cfg diff.cfg

``mlp_cmd`` may hold a launcher (``"mpirun -n 4 mlp"``); it is split with
:func:`shlex.split`. The value ``">>mlp_cmd<<"`` (FireWorks' env_chk syntax)
is looked up in the ``env`` of the FireWorker file at run time.

MLIP identifies species by type index only, so the atomic numbers travel in
the potential's ``potential_tag`` and in the ``.cfg`` ``Feature species``
line, and every file read back is mapped with the potential's species.
Held-out errors are computed here with motep, as for the motep engine, so
the two engines' numbers are comparable.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ase import Atoms

from haml_flows.mtp.frames import GRADE_FEATURE, cfg_to_frames, frames_to_cfg
from haml_flows.mtp.grade import load_potential, potential_text
from haml_flows.mtp.training import TrainingResult, _errors, prepare_training

FWORKER_PLACEHOLDER = ">>mlp_cmd<<"
"""``mlp_cmd`` value meaning: read ``env.mlp_cmd`` of the FireWorker file."""

TAIL_LINES = 20
"""Lines of the executable's stderr (or stdout) quoted in error messages."""


class MlpError(RuntimeError):
    """The ``mlp`` executable failed or produced no usable output."""


def fworker_mlp_cmd(fworker_file: str | Path | None = None) -> str | None:
    """``env.mlp_cmd`` of the FireWorker file (FireWorks' ``FWORKER_LOC`` by default)."""
    from haml_flows.engines.choice import fworker_env

    return fworker_env("mlp_cmd", fworker_file)


def resolve_mlp_cmd(value: str | None, fworker_file: str | Path | None = None) -> str | None:
    """The command to run, or ``None`` for motep.

    ``None`` or blank means motep; ``">>mlp_cmd<<"`` is replaced by the
    FireWorker's ``env.mlp_cmd`` (missing or empty there: motep, as the
    comment in ``my_fworker.yaml`` promises); anything else is the command.
    """
    if value is None or not value.strip():
        return None
    if value.strip() == FWORKER_PLACEHOLDER:
        return fworker_mlp_cmd(fworker_file)
    return value.strip()


def configured_mlp_cmd() -> str | None:
    """``HamlSettings().MLP_CMD`` resolved (``None``: use motep)."""
    from haml_flows.settings import HamlSettings

    return resolve_mlp_cmd(HamlSettings().MLP_CMD)


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_mlp(mlp_cmd: str, args: Sequence[str], cwd: Path, timeout: float | None = None) -> str:
    """Run ``<mlp_cmd> args`` in ``cwd``; return stdout, raise MlpError on failure."""
    command = [*shlex.split(mlp_cmd), *args]
    if not command:
        msg = "mlp_cmd is empty"
        raise MlpError(msg)
    shown = _shown(mlp_cmd, args)
    try:
        proc = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        msg = f"`{shown}` could not start: {exc}"
        raise MlpError(msg) from exc
    except subprocess.TimeoutExpired as exc:
        msg = f"`{shown}` did not finish within {timeout} s"
        raise MlpError(msg) from exc
    if proc.returncode != 0:
        # MLIP writes many of its errors to stdout, so fall back to it
        tail = _tail(proc.stderr) or _tail(proc.stdout) or "(no output)"
        msg = f"`{shown}` failed with exit status {proc.returncode}:\n{tail}"
        raise MlpError(msg)
    return proc.stdout


def _shown(mlp_cmd: str, args: Sequence[str]) -> str:
    return shlex.join([*shlex.split(mlp_cmd), *args])


def _run_on_files(
    mlp_cmd: str,
    args: Sequence[str],
    inputs: dict[str, str],
    output: str,
    timeout: float | None,
) -> str:
    """Write ``inputs`` into a scratch directory, run mlp there, return ``output``."""
    with tempfile.TemporaryDirectory(prefix="haml_mlp_") as tmp:
        work = Path(tmp)
        for name, text in inputs.items():
            (work / name).write_text(text)
        run_mlp(mlp_cmd, args, work, timeout=timeout)
        return _read_output(work / output, args, mlp_cmd)


def _read_output(path: Path, args: Sequence[str], mlp_cmd: str) -> str:
    if not path.exists():
        msg = f"`{_shown(mlp_cmd, args)}` exited with status 0 but wrote no {path.name}"
        raise MlpError(msg)
    return path.read_text()


def _species_of(potential: str, species: Sequence[int] | None) -> list[int]:
    data = load_potential(potential, species)
    return [int(s) for s in data.species]


def train_with_mlp(
    frames: list[Atoms],
    *,
    mlp_cmd: str,
    previous: str | None = None,
    level: int = 12,
    species: Sequence[int] | None = None,
    cutoff: float = 5.0,
    min_dist: float | None = None,
    holdout_fraction: float = 0.2,
    energy_weight: float = 1.0,
    force_weight: float = 0.01,
    stress_weight: float = 0.001,
    max_iter: int | None = None,
    seed: int = 0,
    stride: int = 1,
    extra_args: Sequence[str] = (),
    timeout: float | None = None,
) -> TrainingResult:
    """Fit an MTP with ``mlp train`` and score it with motep on the held-out tail.

    Same frame handling as :func:`haml_flows.mtp.training.train_mtp` (stride,
    deduplication, the last ``holdout_fraction`` held out, min_dist below the
    shortest distance, warm start from ``previous``). ``init.mtp`` is
    ``previous`` or an untrained potential of ``level``; only the training
    frames go to ``train.cfg``. ``max_iter`` is passed as ``--max-iter``
    (``None``: MLIP's default); ``seed`` is accepted for parity with motep but
    MLIP's own initialisation of an untrained potential is not seeded.
    """
    del seed  # mlp train has no seed option
    start = time.perf_counter()
    split = prepare_training(
        frames, previous=previous, level=level, species=species, cutoff=cutoff,
        min_dist=min_dist, holdout_fraction=holdout_fraction, stride=stride,
    )
    species, train, test, data = split.species, split.train, split.test, split.data
    n_frames, n_test = len(train) + len(test), len(test)

    args = ["train", "init.mtp", "train.cfg", "--trained-pot-name=pot.mtp"]
    args += [
        f"--energy-weight={energy_weight!r}",
        f"--force-weight={force_weight!r}",
        f"--stress-weight={stress_weight!r}",
    ]
    if max_iter is not None:
        args.append(f"--max-iter={int(max_iter)}")
    args += list(extra_args)
    inputs = {
        "init.mtp": potential_text(data),
        "train.cfg": frames_to_cfg(train, species=species),
    }
    raw = _run_on_files(mlp_cmd, args, inputs, "pot.mtp", timeout)
    try:
        trained = load_potential(raw, species)
    except Exception as exc:  # motep's reader raises assorted errors
        msg = f"`{_shown(mlp_cmd, args)}` wrote an unreadable pot.mtp: {exc}"
        raise MlpError(msg) from exc
    if trained.moment_coeffs is None or trained.species_coeffs is None:
        msg = f"`{_shown(mlp_cmd, args)}` wrote a pot.mtp without trained coefficients"
        raise MlpError(msg)
    text = potential_text(trained)
    energy_rmse, force_rmse = _errors(load_potential(text), test if n_test else train)
    return TrainingResult(
        potential=text,
        n_frames=n_frames,
        n_train=len(train),
        n_test=n_test,
        energy_rmse=energy_rmse,
        force_rmse=force_rmse,
        train_seconds=time.perf_counter() - start,
    )


_BLOCK = re.compile(r"BEGIN_CFG(.*?)END_CFG", re.S)
_GRADE = re.compile(rf"^\s*Feature\s+{GRADE_FEATURE}\s+(\S+)\s*$", re.M)


def parse_grades(text: str) -> list[float]:
    """``MV_grade`` of every configuration of a ``.cfg`` text, in order."""
    grades = []
    for i, block in enumerate(_BLOCK.findall(text)):
        found = _GRADE.findall(block)
        if len(found) != 1:
            msg = f"configuration {i} has {len(found)} {GRADE_FEATURE} features, expected 1"
            raise ValueError(msg)
        grades.append(float(found[0]))
    return grades


def calc_grade_with_mlp(
    potential: str,
    training_frames: list[Atoms],
    frames: list[Atoms],
    mlp_cmd: str,
    *,
    species: Sequence[int] | None = None,
    timeout: float | None = None,
) -> list[float]:
    """Extrapolation grade of each of ``frames`` from ``mlp calc-grade``.

    The active set is built by MLIP from ``training_frames``; ``species``
    defaults to the atomic numbers recorded in the potential.
    """
    species = _species_of(potential, species)
    args = ["calc-grade", "pot.mtp", "train.cfg", "in.cfg", "out.cfg",
            "--als-filename=state.als"]
    inputs = {
        "pot.mtp": potential,
        "train.cfg": frames_to_cfg(training_frames, species=species),
        "in.cfg": frames_to_cfg(frames, species=species),
    }
    out = _run_on_files(mlp_cmd, args, inputs, "out.cfg", timeout)
    try:
        grades = parse_grades(out)
    except ValueError as exc:
        msg = f"`{_shown(mlp_cmd, args)}` wrote a malformed out.cfg: {exc}"
        raise MlpError(msg) from exc
    if len(grades) != len(frames):
        msg = (
            f"`{_shown(mlp_cmd, args)}` wrote a malformed out.cfg: "
            f"{len(grades)} graded configurations for {len(frames)} given"
        )
        raise MlpError(msg)
    return grades


def select_add_with_mlp(
    potential: str,
    training_frames: list[Atoms],
    candidates: list[Atoms],
    mlp_cmd: str,
    *,
    species: Sequence[int] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float | None = None,
) -> list[Atoms]:
    """The candidates ``mlp select-add`` chooses to add to the training set.

    Returned frames are read from ``diff.cfg`` (positions, cell, species;
    any reference labels the candidates carried).
    """
    species = _species_of(potential, species)
    args = ["select-add", "pot.mtp", "train.cfg", "preselected.cfg", "diff.cfg",
            *extra_args]
    inputs = {
        "pot.mtp": potential,
        "train.cfg": frames_to_cfg(training_frames, species=species),
        "preselected.cfg": frames_to_cfg(candidates, species=species),
    }
    out = _run_on_files(mlp_cmd, args, inputs, "diff.cfg", timeout)
    if "BEGIN_CFG" not in out:
        return []
    try:
        selected = cfg_to_frames(out, species=species)
    except Exception as exc:  # motep's reader raises assorted errors
        msg = f"`{_shown(mlp_cmd, args)}` wrote a malformed diff.cfg: {exc}"
        raise MlpError(msg) from exc
    if len(selected) != out.count("BEGIN_CFG") or len(selected) > len(candidates):
        msg = (
            f"`{_shown(mlp_cmd, args)}` wrote a malformed diff.cfg: "
            f"{len(selected)} configurations from {len(candidates)} candidates"
        )
        raise MlpError(msg)
    return selected
