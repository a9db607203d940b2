"""Retrying one Kubernetes API request that failed for a moment, inside the reconcile.

Data in: what ``workers.kube`` made of one failed request — the server's status and
``Retry-After`` header, or no status for a connection or read error — and how many times it
has been tried.
Data out: how long to sleep before the next try, or ``None`` when the failure is not
transient or the tries are spent — then the error goes up to the work queue as before,
where the key's own backoff takes over (``tango_operator.workqueue.backoff``).

Why here and not only per key: a reconcile makes several requests, and under a steady rate
of transient failures (5xx, 429, a reset connection) an all-or-nothing pass rarely comes out
clean — issue 18 measured 75 of 100 CRs Running after 259 s with ~15 % of requests failing.
client-go retries such requests inside the client; the official Python client does not (its
urllib3 pool retries only some connection errors), so this does, with the same rules:

* transient: 429, 500, 502, 503, 504, and connection or read errors. A 409 is not (the
  object moved: the next pass reads it again), nor is anything else;
* the server's ``Retry-After`` is honoured when it asks for at most ``max_retry_after``
  seconds; a longer one ends the tries and becomes the key's requeue delay;
* otherwise exponential backoff with equal jitter (``base * 2**n`` times [0.5, 1], at most
  ``cap``), so that many workers failing together do not retry in step.

Every request the workers make is safe to repeat: reads, server-side applies and merge
patches are idempotent, a guarded finalizer update answers 409 if the first try went
through, a create answers 409 (``Kube.create_if_absent`` reads that as "exists"), and an
Event posted twice is a duplicate line in ``kubectl describe``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """The server's ``Retry-After`` in seconds, if it gave a number."""
    value = (headers or {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass
class RetryPolicy:
    """How often and how long one request is retried (``TANGO_OPERATOR_API_RETRIES``)."""

    retries: int = 4
    """Tries after the first; 0 turns retrying off."""
    base: float = 0.1
    cap: float = 2.0
    max_retry_after: float = 5.0
    """A longer Retry-After is not slept through in a worker thread: the key is requeued."""
    rng: random.Random = field(default_factory=random.Random)

    def delay(
        self, status: int | None, headers: Mapping[str, str] | None, tries: int
    ) -> float | None:
        """Seconds to wait before try number ``tries + 1``, or None: give up now.

        ``status`` None is a connection or read error (no answer from the server).
        """
        if tries > self.retries or (status is not None and status not in TRANSIENT_STATUSES):
            return None
        asked = retry_after_seconds(headers)
        if asked is not None:
            return asked if asked <= self.max_retry_after else None
        nominal = min(self.cap, self.base * 2.0 ** (tries - 1))
        return nominal * self.rng.uniform(0.5, 1.0)
