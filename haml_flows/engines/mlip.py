"""MTP training, grading and selection through MLIP's ``mlp`` executable.

With ``mtp.engine: mlip`` (or an ``mlp`` command configured and no engine
named), the HAML cycle trains with ``mlp train``, and ``haml mtp grade``
grades with ``mlp calc-grade``; ``mlp select-add`` selects new frames. Each
call runs in a fresh temporary directory holding MLIP's files::

    <mlp_cmd> train init.mtp train.cfg --trained-pot-name=pot.mtp [weights, --max-iter]
    <mlp_cmd> calc-grade pot.mtp train.cfg in.cfg out.cfg --als-filename=state.als
    <mlp_cmd> select-add pot.mtp train.cfg preselected.cfg diff.cfg

``mlp_cmd`` may hold a launcher (``"mpirun -n 4 mlp"``); it is split with
:func:`shlex.split`. It is the command itself: the training job reads it from
the settings on the worker (``engines.commands.MLP``).

MLIP identifies species by type index only, so the atomic numbers travel in
the potential's ``potential_tag`` and in the ``.cfg`` ``Feature species``
line, and every file read back is mapped with the potential's species.
Held-out errors are computed here with motep, as for the motep engine, so
the two engines' numbers are comparable.
"""

from __future__ import annotations

import re
import shlex
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ase import Atoms

from haml_flows.engines.commands import run_command
from haml_flows.mtp.frames import GRADE_FEATURE, cfg_to_frames, frames_to_cfg
from haml_flows.mtp.grade import load_potential, potential_text
from haml_flows.mtp.training import TrainingResult, scored, split_for
from haml_flows.spec import MtpSpec


class MlpError(RuntimeError):
    """The ``mlp`` executable failed or produced no usable output."""


def run_mlp(mlp_cmd: str, args: Sequence[str], cwd: Path, timeout: float | None = None) -> str:
    """Run ``<mlp_cmd> args`` in ``cwd``; return stdout, raise MlpError on failure."""
    launcher = shlex.split(mlp_cmd)
    if not launcher:
        raise MlpError("mlp_cmd is empty")
    return run_command([*launcher, *args], cwd, error=MlpError, timeout=timeout).stdout


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
    species: Sequence[int] | None = None,
    stride: int = 1,
    max_iter: int | None = None,
    extra_args: Sequence[str] = (),
    timeout: float | None = None,
    **settings,
) -> TrainingResult:
    """Fit an MTP with ``mlp train`` and score it with motep on the held-out frames.

    ``settings`` are fields of the ``mtp`` spec section (level, cutoff,
    weights, ...); those not given keep its defaults. Same frame handling as
    :func:`haml_flows.mtp.training.train_mtp` (stride, deduplication, the
    last ``holdout_fraction`` held out, min_dist below the shortest distance,
    warm start from ``previous``). ``init.mtp`` is ``previous`` or an
    untrained potential of ``level``; only the training frames go to
    ``train.cfg``. ``max_iter`` is passed as ``--max-iter`` (``None``: MLIP's
    default); motep's optimizer settings (``radial_iterations``, ``rounds``, ``warm_rounds``,
    ``seed``, ...) are accepted and not used.
    """
    fit = MtpSpec(**settings)
    start = time.perf_counter()
    split = split_for(frames, fit, previous=previous, species=species, stride=stride)
    species, train, data = split.species, split.train, split.data

    args = ["train", "init.mtp", "train.cfg", "--trained-pot-name=pot.mtp"]
    args += [
        f"--energy-weight={fit.energy_weight!r}",
        f"--force-weight={fit.force_weight!r}",
        f"--stress-weight={fit.stress_weight!r}",
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
    return scored(potential_text(trained), split, start)


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
