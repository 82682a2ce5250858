"""Staged MTP training with motep on the AIMD frames of a HAML run.

Stages: linear least squares (species + moment coefficients), L-BFGS on
the radial coefficients, linear least squares again; the last two repeat
``rounds`` times (each L-BFGS round starts from linear coefficients that are
exact for the current radial functions, which converges faster than one
long L-BFGS stage against stale ones).
The LLS stages are exact for the linear parameters, so a short L-BFGS in
between is enough to adapt the radial functions each cycle. Every stage
pays for motep's parameter Jacobian on each frame it sees (about 50 force
calls' worth per frame), so a warm start skips the first linear stage and
the L-BFGS stage can be limited to a subset of frames (``radial_frames``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from motep.calculator import make_calculator
from motep.potentials.mtp.data import MTPData
from motep.train.trainer import Trainer

from haml_flows.distances import pair_minimum_distances
from haml_flows.mtp.basis import untrained_mtp
from haml_flows.mtp.frames import frame_species
from haml_flows.mtp.grade import load_potential, potential_text
from haml_flows.mtp.sampling import evenly_spaced, recent_and_spread, with_priority
from haml_flows.progress import StageProgress, current_stage
from haml_flows.spec import MtpSpec

MIN_DIST_MARGIN = 0.9
"""min_dist is set this fraction below the shortest distance in the frames."""

DEFAULTS = MtpSpec()
"""A HAML cycle's training settings (``mtp`` of a spec), the defaults here."""


@dataclass
class TrainingResult:
    """Outcome of one training run."""

    potential: str
    n_frames: int
    n_train: int
    n_test: int
    energy_rmse: float
    force_rmse: float
    train_seconds: float


def validate_frames(frames: Sequence[Atoms], species: Sequence[int] | None = None) -> None:
    """Raise ValueError naming the first frame that cannot be trained on."""
    if not frames:
        msg = "frames is empty: at least one frame with energy and forces is needed"
        raise ValueError(msg)
    allowed = None if species is None else {int(s) for s in species}
    for i, atoms in enumerate(frames):
        results = atoms.calc.results if atoms.calc is not None else {}
        if "energy" not in results and "free_energy" not in results:
            msg = f"frame {i} has no energy (attach a SinglePointCalculator)"
            raise ValueError(msg)
        if "forces" not in results:
            msg = f"frame {i} has no forces"
            raise ValueError(msg)
        energy = results.get("energy", results.get("free_energy"))
        if not np.isfinite(energy):
            msg = f"frame {i} has a non-finite energy ({energy})"
            raise ValueError(msg)
        if not np.all(np.isfinite(results["forces"])):
            msg = f"frame {i} has non-finite forces"
            raise ValueError(msg)
        if not np.all(np.isfinite(atoms.positions)):
            msg = f"frame {i} has non-finite positions"
            raise ValueError(msg)
        if allowed is not None:
            extra = {int(z) for z in atoms.numbers} - allowed
            if extra:
                msg = (
                    f"frame {i} has atomic numbers {sorted(extra)} "
                    f"not in species {sorted(allowed)}"
                )
                raise ValueError(msg)


def shortest_distance(frames: Sequence[Atoms]) -> float:
    """Shortest interatomic distance (minimum image) over all frames."""
    return min(pair_minimum_distances(frames).values(), default=np.inf)


def _prepare(frames: Sequence[Atoms], stride: int) -> list[Atoms]:
    """Strided, deduplicated copies carrying only the reference results."""
    if stride < 1:
        msg = f"stride must be >= 1, got {stride}"
        raise ValueError(msg)
    seen: set[bytes] = set()
    prepared = []
    for atoms in frames[::stride]:
        key = b"".join(
            a.tobytes()
            for a in (atoms.numbers, atoms.positions.round(10), atoms.cell.array.round(10))
        )
        if key in seen:
            continue
        seen.add(key)
        results = atoms.calc.results
        copy_ = atoms.copy()
        energy = results.get("energy", results.get("free_energy"))
        keep = {"energy": energy, "forces": results["forces"]}
        if "stress" in results and copy_.cell.rank == 3 and all(copy_.pbc):
            keep["stress"] = results["stress"]
        copy_.calc = SinglePointCalculator(copy_, **keep)
        prepared.append(copy_)
    return prepared


def _errors(data: MTPData, frames: Sequence[Atoms]) -> tuple[float, float]:
    """Energy (eV/atom) and force (eV/Angstrom) RMSE of ``data`` on ``frames``."""
    de, df = [], []
    for atoms in frames:
        calc = make_calculator(data, engine="cext", mode="run")
        target_e = atoms.calc.results["energy"]
        target_f = atoms.calc.results["forces"]
        probe = atoms.copy()
        probe.calc = calc
        de.append((probe.get_potential_energy() - target_e) / len(atoms))
        df.append((probe.get_forces() - target_f).ravel())
    energy_rmse = float(np.sqrt(np.mean(np.square(de))))
    return energy_rmse, float(np.sqrt(np.mean(np.square(np.concatenate(df)))))


LINEAR_STEP = {"method": "LLS", "optimized": ["species_coeffs", "moment_coeffs"]}


LBFGS_COEFFICIENTS = ("radial_coeffs",)
"""Fitted by the L-BFGS stage. The linear stage after it refits the species
and moment coefficients exactly; with them in the L-BFGS stage, their much
stiffer directions stalled it (no change in 30 iterations on the
Li | LiFSI + DME frames; bench/mtp_engine.py measures both)."""


def _radial_step(iterations: int, coefficients: Sequence[str] = LBFGS_COEFFICIENTS) -> dict:
    return {
        "method": "minimize",
        "optimized": list(coefficients),
        "kwargs": {"method": "L-BFGS-B", "options": {"maxiter": iterations}},
    }


def _audited(frames: list[Atoms]) -> list[int]:
    """Indices of the MLP-MD frames the reference relabelled (``origin`` 'audit')."""
    return [i for i, atoms in enumerate(frames) if atoms.info.get("origin") == "audit"]


def _recent_and_spread(frames: list[Atoms], n: int | None) -> list[Atoms]:
    """At most ``n`` frames: audited ones (up to half), the newest, older ones spread."""
    return [frames[i] for i in with_priority(recent_and_spread, len(frames), n, _audited(frames))]


def _evenly_spaced(frames: list[Atoms], n: int | None) -> list[Atoms]:
    """At most ``n`` frames: audited ones (up to half), the others spread, the last kept."""
    return [frames[i] for i in with_priority(evenly_spaced, len(frames), n, _audited(frames))]


def _initial_data(
    frames: Sequence[Atoms],
    previous: str | None,
    level: int,
    species: Sequence[int] | None,
    cutoff: float,
    min_dist: float | None,
) -> MTPData:
    shortest = shortest_distance(frames)
    if min_dist is None:
        min_dist = MIN_DIST_MARGIN * shortest if np.isfinite(shortest) else 1.0
    elif min_dist > shortest:
        msg = (
            f"min_dist ({min_dist}) is above the shortest interatomic "
            f"distance ({shortest:.4f})"
        )
        raise ValueError(msg)
    if previous is None:
        return untrained_mtp(level, species, cutoff=cutoff, min_dist=min_dist)
    data = load_potential(previous)
    if data.species_coeffs is None or data.moment_coeffs is None or data.radial_coeffs is None:
        msg = "previous potential is not trained (species/moment/radial coefficients missing)"
        raise ValueError(msg)
    if [int(s) for s in data.species] != [int(s) for s in species]:
        msg = (
            f"species of previous potential {list(data.species)} "
            f"do not match species {list(species)}"
        )
        raise ValueError(msg)
    data.radial_basis.min = np.float64(min(float(data.radial_basis.min), min_dist))
    return data


@dataclass
class TrainingSplit:
    """Frames ready for a fit: training and held-out parts and the start potential."""

    species: list[int]
    train: list[Atoms]
    test: list[Atoms]
    data: MTPData


def prepare_training(
    frames: list[Atoms],
    *,
    previous: str | None,
    level: int,
    species: Sequence[int] | None,
    cutoff: float,
    min_dist: float | None,
    holdout_fraction: float,
    stride: int,
) -> TrainingSplit:
    """Validate, subsample, deduplicate and split frames; build the start potential.

    Shared by every training engine so that motep and MLIP's ``mlp`` fit and
    score the same frames.
    """
    if not 0.0 <= holdout_fraction < 1.0:
        msg = f"holdout_fraction must be in [0, 1), got {holdout_fraction}"
        raise ValueError(msg)
    validate_frames(frames, species)
    if species is None:
        if previous is not None:
            species = list(load_potential(previous).species)
        else:
            species = frame_species(frames)
        validate_frames(frames, species)
    species = [int(s) for s in species]
    prepared = _prepare(frames, stride)
    n_frames = len(prepared)
    n_test = int(round(holdout_fraction * n_frames)) if n_frames > 1 else 0
    n_test = min(n_test, n_frames - 1)
    held = set(held_out_indices(n_frames, n_test))
    data = _initial_data(prepared, previous, level, species, cutoff, min_dist)
    return TrainingSplit(
        species=species,
        train=[a for i, a in enumerate(prepared) if i not in held],
        test=[a for i, a in enumerate(prepared) if i in held],
        data=data,
    )


def held_out_indices(n_frames: int, n_test: int) -> list[int]:
    """``n_test`` frames spread evenly over the run, never the newest one.

    The MLP-MD starts from the newest frame, so the potential must have
    learnt from the frames next to it: holding out the newest block left the
    hand-over frame untrained (the audited error at step 0 of the MLP-MD was
    0.28 eV/A against 0.15 on the frames trained on). The held-out frames are
    every ``n_frames / n_test``-th one counted back from half a stride before
    the newest; the audit measures the error along the MLP-MD itself.
    """
    if n_test <= 0:
        return []
    stride = n_frames / n_test
    return sorted({n_frames - 1 - min(n_frames - 1, max(1, round((k + 0.5) * stride)))
                   for k in range(n_test)})


def split_for(
    frames: list[Atoms],
    fit: MtpSpec,
    *,
    previous: str | None,
    species: Sequence[int] | None,
    stride: int = 1,
) -> TrainingSplit:
    """:func:`prepare_training` with the frame handling of ``fit`` (an ``mtp`` section)."""
    return prepare_training(
        frames, previous=previous, level=fit.level, species=species, cutoff=fit.cutoff,
        min_dist=fit.min_dist, holdout_fraction=fit.holdout_fraction, stride=stride,
    )


def train_mtp(
    frames: list[Atoms],
    *,
    previous: str | None = None,
    level: int = DEFAULTS.level,
    species: Sequence[int] | None = None,
    cutoff: float = DEFAULTS.cutoff,
    min_dist: float | None = DEFAULTS.min_dist,
    holdout_fraction: float = DEFAULTS.holdout_fraction,
    energy_weight: float = DEFAULTS.energy_weight,
    force_weight: float = DEFAULTS.force_weight,
    stress_weight: float = DEFAULTS.stress_weight,
    radial_iterations: int = DEFAULTS.radial_iterations,
    seed: int = DEFAULTS.seed,
    stride: int = 1,
    radial_frames: int | None = DEFAULTS.radial_frames,
    linear_first: bool | None = None,
    linear_frames: int | None = DEFAULTS.linear_frames,
    lbfgs_coefficients: Sequence[str] = LBFGS_COEFFICIENTS,
    rounds: int = DEFAULTS.rounds,
    warm_rounds: int | None = DEFAULTS.warm_rounds,
) -> TrainingResult:
    """Train an MTP on ``frames`` (chronological) and score it on held-out frames.

    ``previous`` (``.mtp`` text) warm-starts from its parameters and keeps its
    basis; its species must equal ``species``. A ``holdout_fraction`` of the
    frames, spread over the run and never the newest (:func:`held_out_indices`),
    is held out; errors are on the training frames if none is.
    The L-BFGS stage sees at most ``radial_frames`` evenly spaced training
    frames (``None``: all), which bounds its cost as the data set grows; the
    linear stages use every training frame, or at most ``linear_frames``
    (the newest half of them and older ones evenly spaced), which bounds their
    cost too. Under either cap the audited MLP-MD frames (``info['origin']``
    'audit') come first, up to half of it (:func:`with_priority`). Each frame
    costs one parameter Jacobian. ``linear_first`` runs a linear
    stage before the L-BFGS stage; by default only on a cold start (a warm
    start's linear coefficients already fit the previous radial functions,
    and the final linear stage refits them on all frames).
    ``lbfgs_coefficients`` names what the L-BFGS stage fits (motep's names).
    ``rounds`` repeats the L-BFGS stage and the linear stage after it;
    ``warm_rounds`` replaces it on a warm start (``None``: ``rounds``).
    """
    if previous is not None and warm_rounds is not None:
        rounds = warm_rounds
    if rounds < 1:
        msg = f"rounds must be >= 1, got {rounds}"
        raise ValueError(msg)
    if linear_frames is not None and linear_frames < 1:
        msg = f"linear_frames must be >= 1 or None, got {linear_frames}"
        raise ValueError(msg)
    start = time.perf_counter()
    split = prepare_training(
        frames, previous=previous, level=level, species=species, cutoff=cutoff,
        min_dist=min_dist, holdout_fraction=holdout_fraction, stride=stride,
    )
    train, data = split.train, split.data
    loss = {
        "energy_weight": energy_weight,
        "forces_weight": force_weight,
        "stress_weight": stress_weight,
    }
    rng = np.random.default_rng(seed)
    if linear_first is None:
        linear_first = previous is None
    linear = _recent_and_spread(train, linear_frames)
    stages = [(linear, [LINEAR_STEP])] if linear_first or radial_iterations == 0 else []
    if radial_iterations > 0:
        stages += rounds * [
            (
                _evenly_spaced(train, radial_frames),
                [_radial_step(radial_iterations, lbfgs_coefficients)],
            ),
            (linear, [LINEAR_STEP]),
        ]
    with (
        tempfile.TemporaryDirectory(prefix="haml_mtp_") as tmp,
        contextlib.chdir(tmp),
        _quiet(),
    ):
        progress = StageProgress(current_stage("MTP training"), len(stages), unit="stage")
        for done, (images, steps) in enumerate(stages):
            what = "linear" if steps[0] is LINEAR_STEP else (
                f"L-BFGS, {radial_iterations} iterations")
            progress.update(done, force=True, fit=f"{what} on {len(images)} frames")
            trainer = Trainer(data, rng=rng, engine="cext", loss=loss, steps=steps)
            trainer.train([copy.copy(atoms) for atoms in images])
        progress.update(len(stages), final=True)
    data.optimized = ["species_coeffs", "moment_coeffs", "radial_coeffs"]
    return scored(potential_text(data), split, start)


def scored(potential: str, split: TrainingSplit, start: float) -> TrainingResult:
    """The result of a fit on ``split`` begun at ``start`` (``perf_counter``).

    Errors are on the held-out frames, or on the training frames if none is.
    """
    energy_rmse, force_rmse = _errors(load_potential(potential), split.test or split.train)
    return TrainingResult(
        potential=potential,
        n_frames=len(split.train) + len(split.test),
        n_train=len(split.train),
        n_test=len(split.test),
        energy_rmse=energy_rmse,
        force_rmse=force_rmse,
        train_seconds=time.perf_counter() - start,
    )


@contextlib.contextmanager
def _quiet():
    """Silence motep's per-step timing prints and INFO logging during training."""
    logger = logging.getLogger("motep")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
