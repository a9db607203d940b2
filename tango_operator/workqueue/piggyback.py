"""Redis calls of one run that ride on the two round trips of its lease: begin and finish.

A run of a key takes its lease (``WorkQueue.begin``), reconciles, and releases it
(``WorkQueue.finish``): two round trips to Redis that every run makes. Two other calls of a
DeviceServer run can travel in them, in the same pipeline, and so cost no round trip of
their own:

- **Reads ahead.** The run's first reads, the owner's copy and its children's records
  (``ledger.RedisChildLedger.owner_and_records``), are known before it starts. A
  ``ReadAhead`` queues them on ``begin``'s pipeline right after its script (``add_reads``),
  and the replies are handed to the reader for the run (``preloaded``), which uses them
  instead of reading. They are read after the lease was taken, as the run's own first
  read would be. A begin that is refused (Busy, the epoch changed, Redis forgot the script)
  reads nothing ahead; the run, if any, reads for itself.
- **Writes behind.** The run records the answer to its own write of the custom resource as
  the newer owner copy (``wrote_owner``), for the key's next run. Nothing else in the run
  reads it, and the next run cannot start before the lease is released; so ``WriteBehind``
  holds the script call (per thread, while ``collecting``) and ``finish`` sends it just
  ahead of the release. If the worker dies first, the watcher records the same object from
  the write's watch event (``observe_owner``): a lost call costs the next run a read of the
  API or a conflict it retries, nothing more.

``workers.execution.run`` opens both around the reconcile; outside of a run, reads and
writes go at once (``WriteBehind.send``).

The leading watcher records the watch events that arrived together the same way: their
script calls in one pipeline (``send_together``, from ``watcher.main``), one round trip for
a burst instead of one per event.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from tango_operator.keys import Key


class ReadAhead(Protocol):
    """The first reads of a key's run, sent with the begin of its lease."""

    def add_reads(self, pipe: Pipeline, key: Key) -> None:
        """Queue the reads of ``key``'s run on ``pipe``."""

    def preloaded(self, key: Key, replies: Sequence[Any] | None) -> AbstractContextManager[None]:
        """Let ``replies`` stand for the reads while the run lasts.

        They are the replies of ``add_reads``, in order; None: they were not read.
        """


@dataclass(frozen=True)
class ScriptCall:
    """One call of a registered script, ready to be sent."""

    script: Script
    keys: Sequence[str]
    args: Sequence[Any]

    def __call__(self) -> Any:
        """Send it on its own (the script is loaded again if Redis lost it)."""
        return self.script(keys=list(self.keys), args=list(self.args))

    def queue_on(self, pipe: Pipeline) -> None:
        """Queue it on ``pipe`` as an ``EVALSHA`` (a ``NoScriptError`` reply if Redis lost it)."""
        pipe.evalsha(self.script.sha, len(self.keys), *self.keys, *self.args)


class WriteBehind:
    """The script calls a thread's current run holds back until its lease is released."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def collecting(self) -> Iterator[list[ScriptCall]]:
        """Hold this thread's calls (``send``) until the block ends; yields the held calls."""
        held: list[ScriptCall] = []
        previous = getattr(self._local, "held", None)
        self._local.held = held
        try:
            yield held
        finally:
            self._local.held = previous

    def send(self, call: ScriptCall) -> None:
        """Keep ``call`` for the release of this thread's current run; outside a run, send it."""
        held: list[ScriptCall] | None = getattr(self._local, "held", None)
        if held is None:
            call()
        else:
            held.append(call)


def send_together(redis: Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Send ``calls`` in one pipeline (not a transaction); their replies, in order.

    A call that failed has its exception in its place, so one bad call spoils none of the
    others. Calls whose script Redis lost (``NOSCRIPT``) are sent again one by one, in
    order, which loads the script; they then come after the pipeline's other calls, which
    the callers allow: the leading watcher's records (only it sends their scripts, so a
    lost script fails every call of it and they go again in their order), and a run's held
    writes and the ``FINISH`` of its lease (``WorkQueue.finish``). When Redis cannot be
    reached every reply is that error.
    """
    if not calls:
        return []
    try:
        with redis.pipeline(transaction=False) as pipe:
            for call in calls:
                call.queue_on(pipe)
            replies: list[Any] = pipe.execute(raise_on_error=False)
    except Exception as exc:  # the connection failed: which calls ran is unknown
        return [exc] * len(calls)
    for index, (call, reply) in enumerate(zip(calls, replies, strict=True)):
        if isinstance(reply, NoScriptError):
            try:
                replies[index] = call()
            except Exception as exc:
                replies[index] = exc
    return replies
