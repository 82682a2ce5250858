"""Training failures: keep the previous potential, ask for more reference data.

A fit can fail outright (the least-squares system is singular, e.g. frames
in which no atom has a neighbour inside the cutoff, or the frames cannot be
trained on), end with a non-finite loss (NaN or infinite errors or
coefficients), or come out worse on the held-out frames than the potential it
started from. Each case is a custodian ``ErrorHandler`` looking at one
:class:`TrainingAttempt`; when any fires, the cycle keeps the previous
potential, and the next AIMD segment is lengthened so that the next fit has
more reference data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from custodian.custodian import ErrorHandler

from haml_flows.faults.checks import apply_handlers
from haml_flows.mtp.grade import load_potential
from haml_flows.mtp.training import TrainingResult, _errors, split_for
from haml_flows.schemas import FaultCorrection
from haml_flows.spec import MtpSpec

NO_IMPROVEMENT_TOLERANCE = 0.05
"""A new fit is rejected when its held-out force RMSE exceeds the previous
potential's on the same frames by more than this fraction."""


@dataclass
class TrainingAttempt:
    """One fit: its result or its exception, and the previous potential's errors."""

    result: TrainingResult | None
    error: BaseException | None
    previous_force_rmse: float | None = None
    previous_energy_rmse: float | None = None

    @property
    def result_finite(self) -> bool:
        """The fit finished with finite errors."""
        r = self.result
        return r is not None and bool(
            np.isfinite(r.energy_rmse) and np.isfinite(r.force_rmse)
        )


class _TrainingHandler(ErrorHandler):
    """A handler that judges one :class:`TrainingAttempt` (its ``check`` subject)."""

    raises_runtime_error = False

    def describe(self, attempt: TrainingAttempt) -> str:
        """What was found, for the record."""
        raise NotImplementedError

    def correct(self, attempt: TrainingAttempt) -> dict:
        return {
            "errors": [self.describe(attempt)],
            "actions": ["keep the previous potential", "lengthen the next AIMD segment"],
        }


class FitFailedHandler(_TrainingHandler):
    """The fit raised: singular least-squares system or frames that cannot be fitted."""

    def check(self, attempt: TrainingAttempt) -> bool:
        return attempt.error is not None

    def describe(self, attempt: TrainingAttempt) -> str:
        error = attempt.error
        singular = isinstance(error, np.linalg.LinAlgError)
        kind = "singular least-squares system" if singular else "fit failed"
        return f"{kind}: {type(error).__name__}: {error}"


class NonFiniteLossHandler(_TrainingHandler):
    """The fit finished with NaN or infinite errors or coefficients."""

    def check(self, attempt: TrainingAttempt) -> bool:
        result = attempt.result
        if result is None:
            return False
        if not (np.isfinite(result.energy_rmse) and np.isfinite(result.force_rmse)):
            return True
        return not np.all(np.isfinite(load_potential(result.potential).parameters))

    def describe(self, attempt: TrainingAttempt) -> str:
        result = attempt.result
        return (
            f"non-finite loss: energy RMSE {result.energy_rmse}, "
            f"force RMSE {result.force_rmse}"
        )


class NoImprovementHandler(_TrainingHandler):
    """The new fit is worse on the held-out frames than the potential it started from."""

    def __init__(self, tolerance: float = NO_IMPROVEMENT_TOLERANCE) -> None:
        self.tolerance = tolerance

    def check(self, attempt: TrainingAttempt) -> bool:
        if attempt.result is None or attempt.previous_force_rmse is None:
            return False
        new = attempt.result.force_rmse
        return np.isfinite(new) and new > (1 + self.tolerance) * attempt.previous_force_rmse

    def describe(self, attempt: TrainingAttempt) -> str:
        return (
            f"no improvement: held-out force RMSE {attempt.result.force_rmse:.4g} eV/A "
            f"against {attempt.previous_force_rmse:.4g} eV/A of the previous potential"
        )


def held_out_errors(
    frames: list[Atoms],
    *,
    previous: str,
    species: Sequence[int] | None = None,
    stride: int = 1,
    **settings,
) -> tuple[float, float]:
    """Energy and force RMSE of ``previous`` on the frames a fit would hold out.

    ``settings`` are fields of the ``mtp`` spec section, as the fit got them.
    """
    split = split_for(
        frames, MtpSpec(**settings), previous=previous, species=species, stride=stride
    )
    return _errors(load_potential(previous), split.test or split.train)


def default_handlers() -> list[_TrainingHandler]:
    """Failure, non-finite loss, no improvement, in that order."""
    return [FitFailedHandler(), NonFiniteLossHandler(), NoImprovementHandler()]


def judge_training(
    fit: Callable[[], TrainingResult],
    previous_errors: Callable[[], tuple[float, float]] | None,
    handlers: Sequence[_TrainingHandler] | None = None,
) -> tuple[TrainingAttempt, FaultCorrection | None]:
    """Run ``fit`` and let the handlers judge it.

    ``previous_errors`` returns the previous potential's (energy, force) RMSE
    on the held-out frames of this fit; ``None`` when there is no previous
    potential. Returns the attempt and, when a handler fired, the correction
    (one record with every error found).
    """
    try:
        attempt = TrainingAttempt(result=fit(), error=None)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError) as exc:
        attempt = TrainingAttempt(result=None, error=exc)
    if previous_errors is not None and attempt.result is not None:
        try:
            attempt.previous_energy_rmse, attempt.previous_force_rmse = previous_errors()
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            pass  # the previous potential cannot be scored here: no comparison
    fired = apply_handlers(handlers if handlers is not None else default_handlers(), attempt)
    if not fired:
        return attempt, None
    return attempt, FaultCorrection(
        handler="+".join(c.handler for c in fired),
        errors=[e for c in fired for e in c.errors],
        actions=list(dict.fromkeys(a for c in fired for a in c.actions)),
    )


@dataclass
class FitOrKept:
    """What a training job stores: the new fit, or the previous potential kept."""

    potential: str
    frames: list[Atoms]
    n_train: int
    n_test: int
    energy_rmse: float
    force_rmse: float
    fallback: FaultCorrection | None


def fit_or_keep_previous(
    fit: Callable[[], TrainingResult],
    old_frames: list[Atoms],
    frames: list[Atoms],
    previous_potential: str | None,
    previous_errors: Callable[[], tuple[float, float]],
) -> FitOrKept:
    """Fit, judge, and fall back to ``previous_potential`` when a handler fires.

    After a failed fit or a non-finite loss the new frames (the likely cause)
    stay out of the training set that is carried on; they remain in the AIMD
    segment's stored trajectory. After a fit that merely did not improve they
    are kept. Without a previous potential a failure raises RuntimeError.
    """
    attempt, fallback = judge_training(
        fit, previous_errors if previous_potential else None
    )
    result = attempt.result
    if fallback is None:
        return FitOrKept(
            result.potential, frames, result.n_train, result.n_test,
            result.energy_rmse, result.force_rmse, None,
        )
    if previous_potential is None:
        raise RuntimeError(
            "MTP training failed and there is no previous potential to keep: "
            + "; ".join(fallback.errors)
        )
    if attempt.previous_force_rmse is None:
        try:
            attempt.previous_energy_rmse, attempt.previous_force_rmse = previous_errors()
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            attempt.previous_energy_rmse = attempt.previous_force_rmse = float("nan")
    if not attempt.result_finite:
        frames = old_frames
        fallback.actions.append(
            "new frames left out of the training set (they stay in the AIMD "
            "segment's trajectory)"
        )
    return FitOrKept(
        previous_potential, frames,
        result.n_train if result else 0, result.n_test if result else 0,
        attempt.previous_energy_rmse, attempt.previous_force_rmse, fallback,
    )
