"""client-go's workqueue guarantees rebuilt on one Redis, for the operator.

The guarantees: a key is deduplicated while queued, never processed by two workers at once,
processed again if it changed while processing, and retried with backoff after a failure
(the queue contract, docs/architecture.md).

The watcher calls ``enqueue`` for every event and sends a Celery message only when told
to (SEND), and pumps ``due`` keys back into ``enqueue``. A worker task brackets each
reconcile with ``begin`` … ``renew`` … ``finish`` and sends the follow-up message that
``finish`` asks for. Nothing here knows about Celery; messages are the caller's business.

Redis data, under ``prefix`` (members are ``Key.encode()`` strings):

- ``queued``         ZSET member → time marked queued (a message is in flight). Entries
                     older than ``stale_after`` count as lost: the key may be sent again.
- ``lock:<member>``  STRING lease token with a PX TTL (renewed while working).
- ``processing``     ZSET member → lease deadline; lets ``due`` notice dead holders.
- ``dirty:<member>`` flag: an event arrived while the key was processed.
- ``attempts:<member>`` starts without a finish (killed workers, redelivered messages).
- ``failures``       HASH member → consecutive failures (backoff; reset on success).
- ``delayed``        ZSET member → due time (requeue-after and failure backoff).
- ``epoch``, ``grace`` which data this Redis holds, and the pause after it lost them
                     (``tango_operator.workqueue.epoch``).

Every operation is one Lua script (``tango_operator.workqueue.scripts``) or one MULTI pipeline;
enqueue, begin and renew look at the epoch inside their script, ``due`` before it. Times come
from the injected ``clock`` (seconds); the lease TTL is Redis's own. If Redis restarts empty
every operation keeps working: the state is gone, no lease is granted until the leases of before
may have ended (the grace period, ``tango_operator.workqueue.epoch``), and the watcher's resync
re-enqueues everything (a lost key is recovered by the next event or resync). Needs Redis ≥ 6.2
(``ZADD LT``/``GT``).
"""

from __future__ import annotations

import enum
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import NoScriptError

from tango_operator.keys import Key
from tango_operator.workqueue import scripts
from tango_operator.workqueue.backoff import backoff_delay, draw_jitter
from tango_operator.workqueue.epoch import Epoch
from tango_operator.workqueue.piggyback import ReadAhead, ScriptCall, send_together
from tango_operator.workqueue.replies import decoded

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "tango-operator:"
HOUSEKEEPING_SECONDS = 86_400.0
"""TTL of the per-key ``dirty`` and ``attempts`` entries, so keys of objects that vanish
without a ``forget`` do not accumulate. Far longer than any reconcile may take."""


class EnqueueResult(enum.Enum):
    """What ``WorkQueue.enqueue`` did with a key, and so whether the caller sends a message."""

    SEND = "send"
    """Newly marked queued: the caller must send exactly one message for the key."""
    DUPLICATE = "duplicate"
    """Already queued (a message is in flight): send nothing."""
    DIRTY = "dirty"
    """Being processed: marked for one follow-up run, which ``finish`` asks for."""


@dataclass(frozen=True)
class Lease:
    """The right to reconcile ``key`` until the lease lapses (renew it while working)."""

    key: Key
    token: str
    attempt: int
    """Starts of this key without a finish, this one included (1 on a clean start)."""
    poisoned: bool
    """More than ``max_attempts`` starts without a finish: record a failure instead of
    reconciling (``finish(lease, success=False)``), which backs the key off."""
    queued_at: float | None
    """When the key was marked queued (for the queue-latency metric), if it was."""
    read_ahead: tuple[Any, ...] | None = None
    """The replies of ``begin``'s ``read_ahead`` commands (None: they were not sent)."""


@dataclass(frozen=True)
class Busy:
    """Another live lease holds the key.

    It is marked dirty, so it runs once more after the holder finishes; if the holder dies instead,
    ``due`` returns it once the holder's lease has lapsed. The caller drops its message. Also the
    answer while the grace period after a loss of Redis's data lasts
    (``tango_operator.workqueue.epoch``); ``due`` returns the key when it ends.
    """

    key: Key
    holder_expires_in: float
    """Seconds left on the holder's lease (or of the grace) when ``begin`` looked."""


@dataclass(frozen=True)
class FinishResult:
    """What ``WorkQueue.finish`` did: the lease, the follow-up run and the failure count."""

    released: bool
    """The lease was still ours and has been released (False: it had lapsed)."""
    follow_up: bool
    """An event arrived during the run: the key is marked queued again and the caller
    must send exactly one message for it now."""
    failures: int
    """Consecutive failures after this run (0 after a success)."""
    next_due: float | None
    """When ``due`` will return the key (the earliest scheduled time), if scheduled."""


class WorkQueue:
    """Dedupe, single-flight leases, dirty follow-ups, backoff and delayed requeue."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        lease_seconds: float = 30.0,
        stale_after: float = 600.0,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 60.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if lease_seconds <= 0 or stale_after <= 0 or backoff_base <= 0 or backoff_cap <= 0:
            raise ValueError("lease_seconds, stale_after and backoff times must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.redis = redis
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self.stale_after = stale_after
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self._queued = prefix + "queued"
        self._processing = prefix + "processing"
        self._failures = prefix + "failures"
        self._delayed = prefix + "delayed"
        self._enqueue = redis.register_script(scripts.ENQUEUE)
        self._begin = redis.register_script(scripts.BEGIN)
        self._renew = redis.register_script(scripts.RENEW)
        self._finish = redis.register_script(scripts.FINISH)
        self._due = redis.register_script(scripts.DUE)
        self.epoch = Epoch(redis, prefix, clock)
        self._granted = False
        """Whether this instance was ever granted a lease (then it knows one length)."""

    # -- per-key names ------------------------------------------------------------------

    def _lock(self, member: str) -> str:
        return f"{self.prefix}lock:{member}"

    def _dirty(self, member: str) -> str:
        return f"{self.prefix}dirty:{member}"

    def _attempts(self, member: str) -> str:
        return f"{self.prefix}attempts:{member}"

    @property
    def _lease_ms(self) -> int:
        return max(1, round(self.lease_seconds * 1000))

    @property
    def queued_name(self) -> str:
        """The ZSET of keys marked queued (a message in flight), for ``workqueue.lost``."""
        return self._queued

    # -- the API ------------------------------------------------------------------------

    def check_epoch(self) -> float:
        """Notice a Redis that lost its data (and start the grace period).

        Returns the seconds of grace left. Called before ``due`` and by the watcher's pump; enqueue,
        begin, renew and FairQueue's scripts look at the epoch themselves (``Epoch.call``).
        """
        return self.epoch.check(self._own_lease)

    @property
    def _own_lease(self) -> float:
        """The longest lease this process granted itself (0 before its first)."""
        return self.lease_seconds if self._granted else 0.0

    def enqueue(self, key: Key, *, weak: bool = False) -> EnqueueResult:
        """Mark ``key`` queued unless it already is; the result says whether to send a message.

        A key being processed is marked dirty instead, for one follow-up run — unless ``weak``
        (a resync: the run in progress proves the key is not lost, so it is DUPLICATE).
        """
        member = key.encode()
        reply = self.epoch.call(
            self._enqueue,
            keys=[self._queued, self._lock(member), self._dirty(member)],
            args=[
                member,
                self.clock(),
                self.stale_after,
                round(HOUSEKEEPING_SECONDS * 1000),
                "1" if weak else "0",
            ],
            own_lease=self._own_lease,
        )
        return EnqueueResult[decoded(reply)]

    def begin(self, key: Key, *, read_ahead: ReadAhead | None = None) -> Lease | Busy:
        """Take the lease of ``key`` for a reconcile, or learn that another holder has it.

        Returns a ``Lease`` (the key is no longer queued; renew it while working, ``finish`` it
        at the end) or ``Busy``. ``read_ahead``: the run's first reads, sent right after the
        script in the same round trip (``piggyback``); their replies are the lease's
        ``read_ahead``.
        """
        member = key.encode()
        token = uuid.uuid4().hex
        keys = [
            self._lock(member),
            self._queued,
            self._dirty(member),
            self._attempts(member),
            self._processing,
            self.epoch.grace_key,
        ]
        args: list[str | int | float] = [
            member,
            token,
            self._lease_ms,
            self.clock(),
            self.lease_seconds,
            round(HOUSEKEEPING_SECONDS * 1000),
        ]
        piggybacked = None
        if read_ahead is not None:
            piggybacked = self._begin_reading_ahead(key, keys, args, read_ahead)
        if piggybacked is None:
            reply = self.epoch.call(self._begin, keys=keys, args=args, own_lease=self._own_lease)
            read = None
        else:
            reply, read = piggybacked
        taken, number, queued_at = reply
        if not int(taken):
            return Busy(key, int(number) / 1000)
        self._granted = True
        since = decoded(queued_at)
        return Lease(
            key=key,
            token=token,
            attempt=int(number),
            poisoned=int(number) > self.max_attempts,
            queued_at=float(since) if since else None,
            read_ahead=read,
        )

    def _begin_reading_ahead(
        self, key: Key, keys: list[str], args: list[str | int | float], read_ahead: ReadAhead
    ) -> tuple[Any, tuple[Any, ...] | None] | None:
        """``BEGIN`` and the reads in one pipeline: its reply and theirs (None if one failed).

        None when ``begin`` must go the plain way, having done nothing: this process knows
        no epoch yet, or the script found another epoch or was unknown to Redis
        (``Epoch.call`` looks at the epoch, loads the script, and the run reads for itself).
        """
        if not self.epoch.known:
            return None
        begin = ScriptCall(self._begin, [*keys, self.epoch.key], [*args, self.epoch.known])
        with self.redis.pipeline(transaction=False) as pipe:
            begin.queue_on(pipe)
            read_ahead.add_reads(pipe, key)
            first, *read = pipe.execute(raise_on_error=False)
        if isinstance(first, NoScriptError):
            return None
        if isinstance(first, Exception):
            raise first
        if isinstance(first, bytes | str) and decoded(first) == "EPOCH":
            return None
        if any(isinstance(reply, Exception) for reply in read):
            return first, None
        return first, tuple(read)

    def renew(self, lease: Lease) -> bool:
        """Extend the lease by ``lease_seconds`` if it is still ours, or take it back.

        It is taken back if its lock is gone and nobody else holds the key (Redis lost it, or it
        lapsed). Returns False when another holder has the key.
        """
        member = lease.key.encode()
        reply = self.epoch.call(
            self._renew,
            keys=[self._lock(member), self._processing],
            args=[lease.token, self._lease_ms, member, self.clock() + self.lease_seconds],
            own_lease=self._own_lease,
        )
        return bool(int(reply))

    def finish(
        self,
        lease: Lease,
        *,
        success: bool,
        requeue_after: float | None = None,
        supersede: bool = False,
        forget_in: str | None = None,
        held: Sequence[ScriptCall] = (),
    ) -> FinishResult:
        """Release the lease and record the outcome.

        Success resets the key's failures; a failure counts one more and schedules a retry
        after ``backoff(failures)`` or ``requeue_after`` (a Retry-After), whichever is
        longer. ``requeue_after`` on success schedules the next look. A scheduled time
        never replaces an earlier one — unless ``supersede`` (with success): the reconcile
        that just ended saw the world last, so its ``requeue_after`` replaces whatever
        earlier ones scheduled, and None cancels it. Starts without a finish (``attempts``)
        are reset either way. ``forget_in``: a hash (another module's, such as the starting
        registry) whose field for this key goes in the same script, with the lease.
        ``held``: the run's held writes (``piggyback``), sent first in the same round trip.
        """
        member = lease.key.encode()
        jitter = draw_jitter(self.rng) if not success else 1.0
        keys = [
            self._lock(member),
            self._dirty(member),
            self._queued,
            self._attempts(member),
            self._failures,
            self._delayed,
            self._processing,
            *([forget_in] if forget_in else []),
        ]
        args: list[str | int | float] = [
            member,
            lease.token,
            self.clock(),
            self.stale_after,
            "1" if success else "0",
            "" if requeue_after is None else max(0.0, requeue_after),
            self.backoff_base,
            self.backoff_cap,
            jitter,
            "1" if supersede else "0",
        ]
        if held:
            reply = self._after_held(held, ScriptCall(self._finish, keys, args))
        else:
            reply = self._finish(keys=keys, args=args)
        released, follow_up, failures, due_at = reply
        due_text = decoded(due_at)
        return FinishResult(
            released=bool(int(released)),
            follow_up=bool(int(follow_up)),
            failures=int(failures),
            next_due=float(due_text) if due_text else None,
        )

    def _after_held(self, held: Sequence[ScriptCall], finish: ScriptCall) -> Any:
        """The held calls, then ``finish``, in one pipeline (``send_together``); its reply.

        An error of ``finish`` is raised; one of a held call is logged (the copy it wrote is
        an optimisation the watcher's event makes too).
        """
        *replies, last = send_together(self.redis, [*held, finish])
        if isinstance(last, Exception):
            raise last
        for call, reply in zip(held, replies, strict=True):
            if isinstance(reply, Exception):
                log.warning("a held write failed keys=%s error=%r", list(call.keys), reply)
        return last

    def backoff(self, failures: int) -> float:
        """Return the delay before retrying a key after ``failures`` consecutive failures.

        ``min(cap, base·2^(failures-1))`` times a jitter factor drawn from ``rng`` in [0.5, 1.0];
        0 for no failures (see ``tango_operator.workqueue.backoff``).
        """
        return backoff_delay(
            failures, base=self.backoff_base, cap=self.backoff_cap, jitter=draw_jitter(self.rng)
        )

    def due(self, limit: int = 500) -> list[Key]:
        """Pop the due keys, then sweep lapsed leases and add the dirty keys whose holder died.

        The pop is atomic and takes the keys whose due time has passed, earliest first (each is
        returned once, even to concurrent pumps). At most ``limit`` of each; the caller enqueues
        them and calls again while the result is full.
        """
        self.check_epoch()
        reply = self._due(
            keys=[self._delayed, self._processing],
            args=[self.clock(), max(1, limit), self.prefix, self.lease_seconds],
        )
        keys: list[Key] = []
        for member in reply:
            try:
                keys.append(Key.decode(decoded(member)))
            except ValueError:
                continue  # not ours to interpret; it has been removed all the same
        return keys

    def next_due(self) -> float | None:
        """When the earliest scheduled key is due (Unix time), if any is scheduled."""
        earliest = self.redis.zrange(self._delayed, 0, 0, withscores=True)
        return float(earliest[0][1]) if earliest else None  # type: ignore[index]

    def stats(self) -> dict[str, int]:
        """Counts for metrics.

        ``queued`` (messages in flight), ``delayed`` (scheduled), ``due`` (scheduled and already
        due: pump lag), ``processing`` (leases not yet released or swept) and ``failing`` (keys with
        consecutive failures).
        """
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zcard(self._queued)
            pipe.zcard(self._delayed)
            pipe.zcount(self._delayed, "-inf", self.clock())
            pipe.zcard(self._processing)
            pipe.hlen(self._failures)
            queued, delayed, due, processing, failing = pipe.execute()
        return {
            "queued": int(queued),
            "delayed": int(delayed),
            "due": int(due),
            "processing": int(processing),
            "failing": int(failing),
        }

    def forget(self, key: Key) -> None:
        """Drop the failures, scheduled requeue and attempt count of a deleted object.

        An in-flight message, a held lease and a pending follow-up are left alone.
        """
        member = key.encode()
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._failures, member)
            pipe.zrem(self._delayed, member)
            pipe.delete(self._attempts(member))
            pipe.execute()
