"""A model of the legacy start-up flow, for comparison with the operator's measured one.

The ska-tango-util charts gate each device server on one init container per dependency:
``retry --sleep=1 --tries=100 -- tango_admin --ping-device DEVICE`` (the ska-tango-base
``global.retry`` default). When the tries run out the init container fails and the kubelet
restarts it after CrashLoopBackOff: 10 s, doubling to 5 min. The model replays a chain with
the same server start-up durations as the measured run and says when each dependent's init
container would have succeeded — the legacy equivalent of the operator scaling it up.
Not modelled, in the legacy flow's favour: the configuration Job each pod also waits for,
and the pod restarts themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LegacyFlow:
    sleep: float = 1.0
    tries: int = 100
    check_seconds: float = 0.1
    """Duration of one ``tango_admin --ping-device`` (a process start and one ping)."""
    backoff_start: float = 10.0
    backoff_cap: float = 300.0

    def init_done(self, created: float, provider_up: float) -> float:
        """Return when a dependent's init container created at ``created`` succeeds.

        Its provider's device answers from ``provider_up`` on.
        """
        round_start, restarts = created, 0
        while True:
            for attempt in range(self.tries):
                poll = round_start + attempt * (self.check_seconds + self.sleep)
                if poll >= provider_up:
                    return poll + self.check_seconds
            round_end = round_start + self.tries * (self.check_seconds + self.sleep)
            round_start = round_end + min(self.backoff_cap, self.backoff_start * 2**restarts)
            restarts += 1

    def chain(self, startup: Sequence[float], start: float = 0.0) -> list[tuple[float, float]]:
        """(init done, device up) of each server of a chain whose pods all start at ``start``.

        ``startup[i]`` is server i's time from start to its device answering; server 0 has no
        dependency.
        """
        timeline: list[tuple[float, float]] = []
        provider_up = start
        for index, duration in enumerate(startup):
            started = start if index == 0 else self.init_done(start, provider_up)
            provider_up = started + duration
            timeline.append((started, provider_up))
        return timeline
