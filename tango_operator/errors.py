"""The two kinds of failure a reconcile can end in (kopf's taxonomy).

Raised by the adapters (``workers.kube``, ``workers.tango``) and the reconcilers; read by
the task layer, which retries a temporary error with backoff and records a permanent one.
A wait for something outside the operator's control (a dependency, a TANGO host) is not
an error: it is an outcome with a requeue-after. Stdlib only.
"""

from __future__ import annotations


class TemporaryError(Exception):
    """Retry later: the API or TANGO was unavailable, a write conflicted, a rate limit hit."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay
        """A delay the other side asked for (Retry-After), or None for the default backoff."""


class PermanentError(Exception):
    """Retrying cannot help until something changes (usually the spec)."""
