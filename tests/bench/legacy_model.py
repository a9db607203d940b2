"""Models of one dependency chain starting up, in the legacy flow and in the operator's.

Used by the wake-up benchmark (``tests.bench.bench_wakeup``), which feeds them start-up
durations measured on the local stack or drawn at random, and reports what they return.

The legacy flow (ska-tango-util without the operator) gates each device server's pod on one
init container per dependency running ``retry OPTIONS -- tango_admin --ping-device DEVICE``.
``retry`` is ska-tango-images' ``retry.sh`` (``images/ska-tango-images-tango-base/retry.sh``,
its options as ska-tango-util's templates pass them): it runs the command at
once and then again after each failure until it has failed ``--tries`` + 1 times (its loop
runs while ``attempts <= max_tries``), sleeping ``--sleep`` seconds between runs, or without
``--sleep`` ``--min`` * 2^(attempt-1) seconds capped at ``--max`` (defaults: 10 tries, 0.3 s,
60 s). Two configurations are modelled: ska-tango-base's ``global.retry``
(``--sleep=1 --tries=100``) and ska-tango-util's own default when ``global.retry`` is unset
(``--max=60``: 11 runs, sleeps 0.3, 0.6, … 38.4, 60, 60 s). When the runs are used up the
init container fails and the kubelet starts it again after CrashLoopBackOff: 10 s, doubling
to 5 min. Every pod of a chain is created at once.

The operator creates a server's pod only when its dependency's device is exported: the
dependent's StatefulSet is scaled up after the wake-up latency the benchmark measured.

Both flows get the same start-up durations per server (``ServerStart``) and are timed to the
same end point, the dependent's server process started. Not modelled, in the legacy flow's
favour: the configuration Job each legacy pod also waits for, and the pods' own restarts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Retry:
    """The options of ``retry.sh`` (``--tries``, ``--sleep``, ``--min``, ``--max``)."""

    label: str
    tries: int = 10
    sleep: float | None = None
    """Constant sleep between runs; None: exponential back-off from ``min_sleep``."""
    min_sleep: float = 0.3
    max_sleep: float = 60.0

    def sleeps(self) -> list[float]:
        """The sleeps between the ``tries`` + 1 runs of one ``retry`` (``tries`` of them)."""
        if self.sleep is not None:
            return [self.sleep] * self.tries
        return [
            min(self.max_sleep, self.min_sleep * 2 ** (a - 1)) for a in range(1, self.tries + 1)
        ]


GLOBAL_RETRY = Retry("global.retry (--sleep=1 --tries=100)", tries=100, sleep=1.0)
"""ska-tango-base's ``values.yaml``: ``global.retry: ["--sleep=1", "--tries=100"]``."""
UTIL_DEFAULT = Retry("ska-tango-util default (--max=60)", max_sleep=60.0)
"""ska-tango-util's templates when ``global.retry`` is unset: ``--max=60`` (other options
``retry.sh``'s defaults)."""


@dataclass(frozen=True)
class ServerStart:
    """How long one server takes to start, the same in both flows."""

    launch: float
    """Its pod asked for → its first container's process started (operator: StatefulSet
    scaled up; legacy: the pod created, its first container being the first init container)."""
    handoff: float
    """A container of an existing pod may start → its process started (legacy: from the last
    init container's exit to the server's process)."""
    boot: float
    """Server process started → its device exported."""


@dataclass(frozen=True)
class Timeline:
    """When each server of a chain started its process and exported its device."""

    process_started: list[float]
    exported: list[float]
    restarts: list[int]
    """CrashLoopBackOff restarts of each server's init container (0 for the operator)."""
    gaps: list[bool]
    """Whether each server's provider came up while its init container was backing off."""

    def links(self) -> list[float]:
        """Each link's latency: the provider's device exported → the dependent's process."""
        return [
            self.process_started[i] - self.exported[i - 1]
            for i in range(1, len(self.process_started))
        ]

    def chain_time(self, start: float = 0.0) -> float:
        """From ``start`` to the last server's process started."""
        return self.process_started[-1] - start

    def hit_backoff(self) -> bool:
        """True if a provider came up while a dependent's init container was backing off."""
        return any(self.gaps)


@dataclass(frozen=True)
class InitWait:
    """How a dependency's init container ended."""

    done: float
    """When it exited successfully."""
    restarts: int
    """How often CrashLoopBackOff restarted it first."""
    gap: bool
    """Whether the provider came up while it waited in CrashLoopBackOff (or during the last
    failing check before it): the dependent paid the rest of the back-off."""


@dataclass(frozen=True)
class LegacyFlow:
    retry: Retry = GLOBAL_RETRY
    check_seconds: float = 0.1
    """Duration of one ``tango_admin --ping-device`` (a process start and one ping)."""
    backoff_start: float = 10.0
    backoff_cap: float = 300.0

    def init_done(self, started: float, provider_up: float) -> InitWait:
        """When an init container first started at ``started`` succeeds.

        Its provider's device answers from ``provider_up`` on; a run started before that fails.
        """
        sleeps = self.retry.sleeps()
        round_start, restarts = started, 0
        while True:
            run = round_start
            for attempt in range(len(sleeps) + 1):
                if attempt:
                    run += self.check_seconds + sleeps[attempt - 1]
                if run >= provider_up:
                    # the first run of a restarted container: the provider came up during
                    # the back-off (or the failed last check before it)
                    gap = restarts > 0 and attempt == 0
                    return InitWait(run + self.check_seconds, restarts, gap)
            round_end = run + self.check_seconds
            round_start = round_end + min(self.backoff_cap, self.backoff_start * 2**restarts)
            restarts += 1

    def chain(self, starts: Sequence[ServerStart], start: float = 0.0) -> Timeline:
        """The chain's timeline when all its pods are created at ``start``.

        ``starts[i]`` is server i's; server 0 has no dependency, server i depends on i-1.
        """
        started: list[float] = []
        exported: list[float] = []
        restarts: list[int] = []
        gaps: list[bool] = []
        for index, server in enumerate(starts):
            if index == 0:
                process, waits, gap = start + server.launch, 0, False
            else:
                wait = self.init_done(start + server.launch, exported[-1])
                process, waits, gap = wait.done + server.handoff, wait.restarts, wait.gap
            started.append(process)
            exported.append(process + server.boot)
            restarts.append(waits)
            gaps.append(gap)
        return Timeline(started, exported, restarts, gaps)


def operator_chain(
    starts: Sequence[ServerStart], wakeups: Sequence[float], start: float = 0.0
) -> Timeline:
    """The operator's timeline, each server's pod asked for only when its provider is up.

    Server 0 is scaled up at ``start``, server i ``wakeups[i-1]`` (measured wake-up latency)
    after server i-1's device is exported; ``len(wakeups) == len(starts) - 1``.
    """
    if len(wakeups) != len(starts) - 1:
        raise ValueError("one wake-up per link")
    started: list[float] = []
    exported: list[float] = []
    scaled = start
    for index, server in enumerate(starts):
        if index:
            scaled = exported[-1] + wakeups[index - 1]
        started.append(scaled + server.launch)
        exported.append(started[-1] + server.boot)
    return Timeline(started, exported, [0] * len(starts), [False] * len(starts))


def drawn_starts(
    rng: random.Random,
    count: int,
    kubelet: Sequence[ServerStart],
    low: float = 15.0,
    high: float = 25.0,
) -> list[ServerStart]:
    """``count`` cluster-like starts: launch + boot drawn uniformly from [low, high].

    The kubelet's part (``launch``, ``handoff``) is one of ``kubelet`` (measured starts) picked
    at random; ``boot`` is the rest of the drawn total.
    """
    drawn = []
    for _ in range(count):
        total = rng.uniform(low, high)
        measured = rng.choice(kubelet)
        launch = min(measured.launch, total)
        drawn.append(ServerStart(launch=launch, handoff=measured.handoff, boot=total - launch))
    return drawn


@dataclass
class Samples:
    """Link latencies, chain times and back-off hits of one flow under one start assumption."""

    links: list[float] = field(default_factory=list)
    chains: list[float] = field(default_factory=list)
    backoff_chains: int = 0

    def add(self, timeline: Timeline, start: float = 0.0) -> None:
        self.links += timeline.links()
        self.chains.append(timeline.chain_time(start))
        self.backoff_chains += timeline.hit_backoff()

    def merge(self, other: Samples) -> Samples:
        return Samples(
            self.links + other.links,
            self.chains + other.chains,
            self.backoff_chains + other.backoff_chains,
        )


OPERATOR = "operator"


def simulate(
    rng: random.Random,
    depth: int,
    chains: int,
    kubelet: Sequence[ServerStart],
    wakeups: Sequence[float],
    flows: Sequence[LegacyFlow],
    low: float = 15.0,
    high: float = 25.0,
) -> dict[str, Samples]:
    """``chains`` chains of ``depth`` links with cluster-like starts (``drawn_starts``).

    Every flow replays the same drawn starts; the operator's wake-ups are picked at random
    from ``wakeups`` (measured). Keyed by ``OPERATOR`` and each flow's ``retry.label``.
    """
    samples = {OPERATOR: Samples(), **{flow.retry.label: Samples() for flow in flows}}
    for _ in range(chains):
        starts = drawn_starts(rng, depth + 1, kubelet, low, high)
        samples[OPERATOR].add(operator_chain(starts, [rng.choice(wakeups) for _ in range(depth)]))
        for flow in flows:
            samples[flow.retry.label].add(flow.chain(starts))
    return samples
