"""workers.reconcile.status.waiting_delay: grows with the time spent waiting, within bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workers.reconcile.status import waiting_delay
from workers.settings import Settings


def _waiting_since(seconds: float, now: datetime) -> dict[str, object]:
    since = (now - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "status": {
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": since}]
        }
    }


def test_delay_grows_with_waiting_time_and_is_capped() -> None:
    settings = Settings(waiting_min_seconds=1.0, waiting_max_seconds=60.0)
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    fresh = waiting_delay(_waiting_since(0, now), settings, now=now)
    minute = waiting_delay(_waiting_since(60, now), settings, now=now)
    hour = waiting_delay(_waiting_since(3600, now), settings, now=now)
    assert 0.8 <= fresh <= 1.2
    assert 12.0 <= minute <= 18.0
    assert 48.0 <= hour <= 72.0
    never_waited = waiting_delay({}, settings, now=now)
    assert 0.8 <= never_waited <= 1.2


def test_jitter_spreads_waiters() -> None:
    settings = Settings()
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    delays = {
        round(waiting_delay(_waiting_since(40, now), settings, now=now), 6) for _ in range(50)
    }
    assert len(delays) > 40
