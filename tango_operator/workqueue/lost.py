"""Finding reconcile messages that were lost between Redis and a worker, and freeing their keys.

A key marked queued (``queued`` ZSET of ``tango_operator.workqueue.queue``) has a Celery
message somewhere: waiting in the broker's lists, or delivered to a worker and kept in
kombu's ``unacked`` hash until the task is acknowledged. kombu's Redis transport pops a
message before it records it as unacked, so a worker process killed in between loses it:
no copy anywhere, and until the mark is ``stale_after`` old (ten minutes) every event and
resync of the key is refused as a duplicate. The watcher's pump (``watcher.pump``) calls
``reclaim`` every few seconds: marks older than a short age whose message is in none of
those places are removed, and the keys are handed back to be enqueued and sent again. A
message found missing while a worker was between the pop and the record is sent twice; the
key's lease still runs it once at a time, and the second run finds nothing to do.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

from tango_operator.keys import Key
from tango_operator.workqueue.queue import WorkQueue
from tango_operator.workqueue.replies import decoded

UNACKED = "unacked"
"""kombu's Redis transport: the hash of delivered, unacknowledged messages (its default)."""

# KEYS: queued. ARGV: threshold, member... -> the members removed (their mark was still
# older than the threshold: a key marked again meanwhile is left alone)
_UNMARK = """
local removed = {}
for i = 2, #ARGV do
  local since = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if since and tonumber(since) <= tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    table.insert(removed, ARGV[i])
  end
end
return removed
"""


def member_of(envelope: Any) -> str | None:
    """The key a Celery message (kombu's JSON envelope) carries, if it is a reconcile."""
    if not isinstance(envelope, dict):
        return None
    body = envelope.get("body")
    if not isinstance(body, str):
        return None
    try:
        if (envelope.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body).decode()
        args = json.loads(body)[0]
    except (ValueError, IndexError, TypeError, KeyError, binascii.Error):
        return None
    return str(args[0]) if isinstance(args, list) and args else None


def messages_in_broker(queue: WorkQueue, lists: Sequence[str], unacked: str = UNACKED) -> set[str]:
    """The keys of every message waiting in ``lists`` or delivered and not yet acknowledged."""
    raw: list[Any] = []
    for name in lists:
        raw += cast(list[Any], queue.redis.lrange(name, 0, -1))
    envelopes: list[Any] = []
    for text in raw:
        try:
            envelopes.append(json.loads(text))
        except ValueError:
            continue
    for text in cast(Iterable[Any], queue.redis.hvals(unacked)):
        try:
            delivered = json.loads(text)
        except ValueError:
            continue
        if isinstance(delivered, list) and delivered:
            envelopes.append(delivered[0])
    return {member for member in map(member_of, envelopes) if member is not None}


def reclaim(queue: WorkQueue, lists: Sequence[str], *, older_than: float) -> list[Key]:
    """Free the keys marked queued for over ``older_than`` seconds whose message is gone."""
    threshold = queue.clock() - older_than
    marked = queue.queued_name
    old = [
        decoded(m) for m in cast(list[Any], queue.redis.zrangebyscore(marked, "-inf", threshold))
    ]
    if not old:
        return []
    present = messages_in_broker(queue, lists)
    lost = [member for member in old if member not in present]
    if not lost:
        return []
    removed = cast(list[Any], queue.redis.eval(_UNMARK, 1, marked, str(threshold), *lost))
    return [Key.decode(decoded(member)) for member in removed]
