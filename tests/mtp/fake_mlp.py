"""A stand-in for MLIP-2's ``mlp`` executable, for tests.

Run as ``python fake_mlp.py <command> ...``. It accepts exactly the argument
forms of ``mlp train``, ``mlp calc-grade`` and ``mlp select-add`` (positional
files plus ``--key=value`` / ``--flag`` options from MLIP-2's help text),
exits with status 1 and a message on anything else or on a missing input
file, reads MLIP's ``.mtp`` and ``.cfg`` files by type index only (as MLIP
does) and writes real-format outputs computed with motep:

- ``train``: linear least squares plus at most a few L-BFGS iterations, so the
  trained ``.mtp`` is genuine; like MLIP it does not keep our species tag.
- ``calc-grade``: ``out.cfg`` with a ``Feature   MV_grade`` line per
  configuration (MaxVol over training neighbourhoods) and a text ALS file.
- ``select-add``: ``diff.cfg`` with the configurations whose grade exceeds
  ``--select-threshold`` (MLIP's default 1.1), at most ``MAX_SELECTED``.

Test hooks (environment): ``FAKE_MLP_LOG`` appends each argv, with the
SHA-256 of the input files present, as a JSON line;
``FAKE_MLP_MODE`` = ``fail`` (exit 3 with a message on stderr),
``no-output`` (exit 0 without writing the output file) or ``garbage``
(write a malformed output file).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
from pathlib import Path

MAX_SELECTED = 8
RADIAL_ITERATIONS_CAP = 3

TRAIN_OPTIONS = {
    "energy-weight", "force-weight", "stress-weight", "scale-by-force", "valid-cfgs",
    "max-iter", "curr-pot-name", "trained-pot-name", "bfgs-conv-tol", "weighting",
    "init-params",
}
TRAIN_FLAGS = {"skip-preinit", "update-mindist"}
FLOAT_OPTIONS = {
    "energy-weight", "force-weight", "stress-weight", "scale-by-force", "bfgs-conv-tol",
    "init-threshold", "select-threshold", "swap-threshold",
}
INT_OPTIONS = {"max-iter", "selection-limit"}
GRADE_OPTIONS = {"als-filename"}
SELECT_OPTIONS = {
    "init-threshold", "select-threshold", "swap-threshold", "als-filename",
    "selected-filename", "selection-limit", "weighting",
}


class Usage(Exception):
    """Bad command line or input: exit 1 like mlp."""


def parse(argv: list[str], n_files: int, options: set[str], flags: set[str] = frozenset()):
    files, opts = [], {}
    for arg in argv:
        if arg.startswith("--"):
            key, eq, value = arg[2:].partition("=")
            if key in flags and not eq:
                opts[key] = True
            elif key in options and eq and value:
                if key in FLOAT_OPTIONS:
                    try:
                        float(value)
                    except ValueError:
                        raise Usage(f"option --{key} needs a number, got {value!r}") from None
                if key in INT_OPTIONS and not value.lstrip("-").isdigit():
                    raise Usage(f"option --{key} needs an integer, got {value!r}")
                opts[key] = value
            else:
                raise Usage(f"unknown or malformed option {arg!r}")
        else:
            files.append(arg)
    if len(files) != n_files:
        raise Usage(f"{n_files} file arguments required, got {len(files)}: {files}")
    return files, opts


def need(path: str) -> str:
    if not Path(path).is_file():
        raise Usage(f"cannot open {path}")
    text = Path(path).read_text()
    if not text.strip():
        raise Usage(f"{path} is empty")
    return text


def read_cfg(path: str, data):
    """Configurations of ``path``, types mapped with the potential's species."""
    from haml_flows.mtp.frames import cfg_to_frames

    text = need(path)
    if "BEGIN_CFG" not in text:
        raise Usage(f"{path} holds no configuration")
    # cfg_to_frames maps types through the list; an unknown type fails there
    try:
        return cfg_to_frames(text, species=list(data.species))
    except (IndexError, ValueError) as exc:
        raise Usage(f"{path}: {exc}") from None


def write(path: str, text: str) -> None:
    if os.environ.get("FAKE_MLP_MODE") == "no-output":
        return
    if os.environ.get("FAKE_MLP_MODE") == "garbage":
        text = "BEGIN_CFG\n this is not a configuration\n"
    Path(path).write_text(text)


def train(argv: list[str]) -> None:
    import numpy as np
    from motep.io.mlip.mtp import write_mtp
    from motep.train.trainer import Trainer

    from haml_flows.mtp.grade import load_potential
    from haml_flows.mtp.training import LINEAR_STEP, _radial_step

    (pot_file, cfg_file), opts = parse(argv, 2, TRAIN_OPTIONS, TRAIN_FLAGS)
    data = load_potential(need(pot_file))
    frames = read_cfg(cfg_file, data)
    for i, atoms in enumerate(frames):
        if "energy" not in atoms.calc.results or "forces" not in atoms.calc.results:
            raise Usage(f"configuration {i} of {cfg_file} has no energy or forces")
    loss = {
        "energy_weight": float(opts.get("energy-weight", 1.0)),
        "forces_weight": float(opts.get("force-weight", 0.01)),
        "stress_weight": float(opts.get("stress-weight", 0.001)),
    }
    iterations = min(int(opts.get("max-iter", 1000)), RADIAL_ITERATIONS_CAP)
    steps = [LINEAR_STEP] + ([_radial_step(iterations), LINEAR_STEP] if iterations > 0 else [])
    rng = np.random.default_rng(0)
    with contextlib.redirect_stdout(io.StringIO()):
        for step in steps:
            Trainer(data, rng=rng, engine="cext", loss=loss, steps=[step]).train(frames)
    data.optimized = ["species_coeffs", "moment_coeffs", "radial_coeffs"]
    data.potential_tag = ""  # MLIP knows type indices only
    out = opts.get("trained-pot-name", "Trained.mtp_")
    if os.environ.get("FAKE_MLP_MODE") in ("no-output", "garbage"):
        write(out, "")
        return
    write_mtp(out, data, legacy=True)
    print(f"fake mlp: trained on {len(frames)} configurations")


def _grades(pot_file: str, train_file: str, cfg_file: str):
    from haml_flows.mtp.grade import ActiveSet, load_potential, mtp_calculator

    data = load_potential(need(pot_file))
    if data.moment_coeffs is None:
        raise Usage(f"{pot_file} is not trained")
    training = read_cfg(train_file, data)
    frames = read_cfg(cfg_file, data)
    active_set = ActiveSet.from_training(data, training, require_span=False)  # as MLIP
    grades = []
    for atoms in frames:
        probe = atoms.copy()
        probe.calc = mtp_calculator(data, active_set)
        grades.append(active_set.gamma(probe))
    return data, active_set, frames, grades


def calc_grade(argv: list[str]) -> None:
    from haml_flows.mtp.frames import frames_to_cfg

    (pot_file, train_file, in_file, out_file), opts = parse(argv, 4, GRADE_OPTIONS)
    data, active_set, frames, grades = _grades(pot_file, train_file, in_file)
    for atoms, grade in zip(frames, grades):
        atoms.info["MV_grade"] = grade
    write(out_file, frames_to_cfg(frames, species=list(data.species)))
    if "als-filename" in opts:
        Path(opts["als-filename"]).write_text(
            "MVS_v1.1 (fake)\n" + " ".join(f"{f}:{a}" for f, a in active_set.indices) + "\n"
        )
    print(f"fake mlp: graded {len(frames)} configurations")


def select_add(argv: list[str]) -> None:
    from haml_flows.mtp.frames import frames_to_cfg

    (pot_file, train_file, new_file, diff_file), opts = parse(argv, 4, SELECT_OPTIONS)
    threshold = float(opts.get("select-threshold", 1.1))
    data, _, frames, grades = _grades(pot_file, train_file, new_file)
    picked = [atoms for atoms, g in zip(frames, grades) if g > threshold][:MAX_SELECTED]
    write(diff_file, frames_to_cfg(picked, species=list(data.species)) if picked else "")
    print(f"fake mlp: selected {len(picked)} of {len(frames)} configurations")


COMMANDS = {"train": train, "calc-grade": calc_grade, "select-add": select_add}


def main(argv: list[str]) -> int:
    if log := os.environ.get("FAKE_MLP_LOG"):
        inputs = {
            arg: hashlib.sha256(Path(arg).read_bytes()).hexdigest()
            for arg in argv[1:]
            if not arg.startswith("--") and Path(arg).is_file()
        }
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"argv": argv, "inputs": inputs}) + "\n")
    if not argv or argv[0] not in COMMANDS:
        print(f"mlp: unknown command {argv[:1]}", file=sys.stderr)
        return 1
    if os.environ.get("FAKE_MLP_MODE") == "fail":
        print("fake mlp: something went wrong\nERROR: simulated failure", file=sys.stderr)
        return 3
    try:
        COMMANDS[argv[0]](argv[1:])
    except Usage as exc:
        print(f"mlp {argv[0]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
