"""Bounded retries with backoff while the database does not answer.

A HAML run lasts days; a database restart or a network blip must not kill it.
Every read and write of the job store goes through :func:`call_with_retry`
(tenacity): on a connection failure it waits (0.5 s, 1 s, 2 s, ... up to
``DB_RETRY_MAX_DELAY``) and tries again while the next try would start
within ``DB_RETRY_SECONDS``, then raises
:class:`DatabaseUnavailableError`, which says what was being done and how to
continue. Writes are single-document upserts, so a retried write either lands
whole or not at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pymongo.errors import ConnectionFailure
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential,
)

from haml_flows.settings import HamlSettings

logger = logging.getLogger("haml_flows.database")

T = TypeVar("T")


class DatabaseUnavailableError(RuntimeError):
    """The configured database does not answer."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry; built from the settings."""

    max_seconds: float
    initial_delay: float
    max_delay: float

    @classmethod
    def from_settings(cls, settings: HamlSettings) -> RetryPolicy:
        """The policy of ``settings`` (``DB_RETRY_*``)."""
        return cls(
            max_seconds=settings.DB_RETRY_SECONDS,
            initial_delay=settings.DB_RETRY_INITIAL_DELAY,
            max_delay=settings.DB_RETRY_MAX_DELAY,
        )


def call_with_retry(
    call: Callable[[], T], policy: RetryPolicy, what: str, address: str
) -> T:
    """Return ``call()``, retrying on connection failures within ``policy`` (tenacity).

    ``address`` must be safe to print (no credentials). Errors other than
    connection failures (authentication, validation) are raised at once.
    """
    start = time.monotonic()

    def log_retry(state: RetryCallState) -> None:
        logger.warning(
            "database at %s unavailable while %s (%s); retry %d in %.1f s",
            address, what, type(state.outcome.exception()).__name__,
            state.attempt_number, state.next_action.sleep,
        )

    retrying = Retrying(
        retry=retry_if_exception_type(ConnectionFailure),
        stop=stop_before_delay(policy.max_seconds),
        wait=wait_exponential(multiplier=policy.initial_delay, max=policy.max_delay),
        before_sleep=log_retry,
    )
    try:
        return retrying(call)
    except RetryError as exc:
        raise DatabaseUnavailableError(
            f"the database at {address} did not answer while {what}: "
            f"{exc.last_attempt.attempt_number} attempts over "
            f"{time.monotonic() - start:.0f} s (HAML_DB_RETRY_SECONDS="
            f"{policy.max_seconds:g}). This call stored nothing; documents "
            "stored before are intact. Bring the database back, then "
            "continue the run with `haml resume RUN_ID`."
        ) from exc.last_attempt.exception()
