"""Errors every builder raises for a request no structure can satisfy."""

from __future__ import annotations


class BuilderError(ValueError):
    """A builder request no structure can satisfy; the message names the
    parameter and what is allowed, so callers print it as one line."""


class UnknownParameterError(BuilderError, TypeError):
    """A keyword the builder does not take; also a TypeError, as Python's own
    error for an unexpected keyword is, so callers that catch that keep working."""
