"""Per-key failure backoff: how long a key waits after its n-th consecutive failure.

Called by ``WorkQueue.backoff`` and mirrored inside the ``finish`` Lua script (which gets
the same jitter factor from Python, so both compute the same number). Pure arithmetic.

The delay after ``n`` consecutive failures is ``min(cap, base * 2**(n-1)) * jitter`` with
``jitter`` drawn uniformly from ``JITTER`` = [0.5, 1.0] ("equal jitter": at least half the
nominal delay, so backoff keeps growing, while retries of many keys failing together
spread out). No failures, no delay. With the defaults (base 0.5 s, cap 60 s, the workers'
``TANGO_OPERATOR_BACKOFF_CAP_SECONDS``) the nominal delays are 0.5, 1, 2, 4, … s and reach
the cap at the 8th failure; a success resets the count.
"""

from __future__ import annotations

import random

JITTER = (0.5, 1.0)
"""Bounds of the jitter factor applied to the nominal delay."""

_MAX_EXPONENT = 1000
"""2.0 ** 1024 overflows a float; any exponent this large is far beyond every cap."""


def nominal_delay(failures: int, *, base: float, cap: float) -> float:
    """``min(cap, base * 2**(failures-1))``; 0 when there was no failure."""
    if failures <= 0:
        return 0.0
    return min(cap, base * 2.0 ** min(failures - 1, _MAX_EXPONENT))


def draw_jitter(rng: random.Random) -> float:
    """One jitter factor in ``JITTER``."""
    return rng.uniform(*JITTER)


def backoff_delay(failures: int, *, base: float, cap: float, jitter: float) -> float:
    """The delay after ``failures`` consecutive failures, given a drawn jitter factor."""
    return nominal_delay(failures, base=base, cap=cap) * jitter
