"""One check/correct loop for handlers that judge an object instead of a directory.

custodian's ``Custodian`` drives handlers that look at a job's files. The
MLP-MD collapse guard and the training judge hand theirs an object (the MD's
atoms, a training attempt) in place of the directory; this is their loop.
"""

from __future__ import annotations

from collections.abc import Sequence

from custodian.custodian import ErrorHandler

from haml_flows.schemas import FaultCorrection


def apply_handlers(
    handlers: Sequence[ErrorHandler], subject: object, step: int | None = None
) -> list[FaultCorrection]:
    """Check every handler on ``subject``; correct each that fires, in order.

    Returns one FaultCorrection per handler that fired (``step``: the MD step).
    """
    corrections = []
    for handler in handlers:
        if not handler.check(subject):
            continue
        outcome = handler.correct(subject)
        handler.n_applied_corrections += 1
        corrections.append(
            FaultCorrection(
                handler=type(handler).__name__,
                step=step,
                errors=outcome["errors"],
                actions=outcome["actions"],
            )
        )
    return corrections
