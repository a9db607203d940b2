"""Watch streams: newline-delimited JSON events from the store to one HTTP client.

Reads the request's ``resourceVersion``, selectors, ``timeoutSeconds`` and
``allowWatchBookmarks``; replays the store history after that version (or synthetic ADDED events
for a fresh watch), then forwards live changes until the timeout, a client disconnect, or a
fault-injected drop.  A version older than the compaction floor gets the apiserver's 410 ERROR
event on an HTTP 200 stream (checklist W1-W7, W10).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import math
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from kubeemu import errors, selectors, table
from kubeemu.store import Change, Subscription

if TYPE_CHECKING:
    from kubeemu.server import Emulator, Target

JsonDict = dict[str, Any]


class _Filter:
    """Namespace, label and field selection of one watch, with enter/leave semantics (W6)."""

    def __init__(self, request: web.Request, target: Target):
        rtype = target.rtype
        self.namespace = target.namespace if rtype.namespaced and target.namespace else None
        label_text = request.query.get("labelSelector", "")
        field_text = request.query.get("fieldSelector", "")
        if target.name:
            name_clause = f"metadata.name={target.name}"
            field_text = f"{field_text},{name_clause}" if field_text else name_clause
        self.labels = selectors.parse_label_selector(label_text) if label_text else None
        self.fields = (
            selectors.parse_field_selector(
                field_text,
                allowed=selectors.supported_field_labels(rtype.group, rtype.resource),
                group=None if rtype.is_custom else rtype.group,
                resource=None if rtype.is_custom else rtype.resource,
            )
            if field_text
            else None
        )

    def matches(self, obj: JsonDict | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.labels is not None and not self.labels.matches(meta.get("labels") or {}):
            return False
        return self.fields is None or self.fields.matches(obj)

    def translate(self, change: Change) -> str | None:
        """The event type this watch sees for a change, or None when it sees nothing."""
        now_in = self.matches(change.obj) if change.event_type != "DELETED" else False
        was_in = self.matches(change.old)
        if change.event_type == "ADDED":
            return "ADDED" if now_in else None
        if change.event_type == "DELETED":
            return "DELETED" if self.matches(change.obj) else None
        if now_in and was_in:
            return "MODIFIED"
        if now_in:
            return "ADDED"
        if was_in:
            return "DELETED"
        return None


async def serve(emulator: Emulator, request: web.Request, target: Target) -> web.StreamResponse:
    rtype = target.rtype
    store = emulator.store
    selection = _Filter(request, target)
    requested = request.query.get("resourceVersion", "")
    timeout = _timeout(request, emulator.settings.default_watch_timeout)
    bookmarks = request.query.get("allowWatchBookmarks") in ("1", "t", "T", "true", "True", "TRUE")
    as_table = any("as=Table" in part for part in request.headers.get("Accept", "").split(","))

    # Subscribe and take the backlog in one synchronous step: nothing can commit in between.
    subscription = store.subscribe(rtype.group_resource)
    progress = store.revision  # the backlog brings the watch up to here
    backlog: list[tuple[str, JsonDict]] = []
    expired: errors.ApiError | None = None
    if requested in ("", "0"):
        for obj in store.list(rtype.group_resource, selection.namespace):
            if selection.matches(obj):
                backlog.append(("ADDED", obj))
    else:
        try:
            since = int(requested)
        except ValueError:
            subscription.cancel()
            raise errors.bad_request(f'invalid resource version: "{requested}"') from None
        if since < store.oldest_watchable:
            expired = errors.gone_too_old(since, store.revision)
        else:
            for change in store.history_since(rtype.group_resource, since):
                event_type = selection.translate(change)
                if event_type:
                    backlog.append((event_type, change.obj))

    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        if expired is not None:
            await _send(response, "ERROR", expired.status())
            return response
        for event_type, obj in backlog:
            await _send(response, event_type, _render(emulator, target, obj, as_table))
        await _stream_live(
            emulator,
            response,
            subscription,
            selection,
            target,
            timeout,
            bookmarks,
            as_table,
            progress,
        )
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        subscription.cancel()
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await response.write_eof()
    return response


async def _stream_live(
    emulator: Emulator,
    response: web.StreamResponse,
    subscription: Subscription,
    selection: _Filter,
    target: Target,
    timeout: float,
    bookmarks: bool,
    as_table: bool,
    progress: int,
) -> None:
    """Forward the subscription's changes until the deadline, a BOOKMARK per interval.

    Every turn of the loop sends a due bookmark, forwards one change, or waits a positive
    time for one: a bookmark falling due while changes are queued (a burst of writes, a
    reader slower than the writers) never stops the stream.  ``progress`` is the
    resourceVersion up to which this watch has passed every change on (matching or not)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    interval = emulator.settings.bookmark_interval
    next_bookmark = loop.time() + interval if bookmarks else math.inf
    while True:
        now = loop.time()
        if now >= deadline:
            if bookmarks:
                await _send_bookmark(emulator, response, target, subscription, progress)
            return
        if now >= next_bookmark:
            await _send_bookmark(emulator, response, target, subscription, progress)
            next_bookmark = loop.time() + interval
            continue
        change = await _next_change(subscription, min(deadline, next_bookmark) - now)
        if change is _Quiet.NOTHING:
            continue
        if change is None:  # dropped by fault injection
            return
        progress = change.resource_version
        event_type = selection.translate(change)
        if event_type:
            await _send(response, event_type, _render(emulator, target, change.obj, as_table))


class _Quiet(enum.Enum):
    """What :func:`_next_change` returns when nothing arrived in time."""

    NOTHING = enum.auto()


async def _next_change(
    subscription: Subscription, seconds: float
) -> Change | Literal[_Quiet.NOTHING] | None:
    """The next queued change (``None``: the watch was dropped), or ``NOTHING`` after
    ``seconds`` (> 0) without one.

    A queued change is taken without waiting: ``asyncio.wait_for(queue.get(), 0)`` would
    cancel the get before it ran and time out however full the queue is (Python 3.11/3.12).
    A get cancelled by the timeout leaves its change in the queue, for the next call."""
    queue = subscription.queue
    if not queue.empty():
        return queue.get_nowait()
    try:
        async with asyncio.timeout(seconds):
            return await queue.get()
    except TimeoutError:
        return _Quiet.NOTHING


async def _send_bookmark(
    emulator: Emulator,
    response: web.StreamResponse,
    target: Target,
    subscription: Subscription,
    progress: int,
) -> None:
    """A BOOKMARK at the newest resourceVersion this watch can vouch for: the store's when
    every change has been passed on, else the last change passed on (a client resuming from
    the bookmark must not skip the changes still queued)."""
    rtype = target.rtype
    version = emulator.store.revision if subscription.queue.empty() else progress
    await _send(
        response,
        "BOOKMARK",
        {
            "kind": rtype.kind,
            "apiVersion": rtype.group_version,
            "metadata": {"resourceVersion": str(version), "creationTimestamp": None},
        },
    )


def _render(emulator: Emulator, target: Target, obj: JsonDict, as_table: bool) -> JsonDict:
    presented = emulator.api.present(target.rtype, obj)
    if not as_table:
        return presented
    rtype = target.rtype
    columns: list[Any] | None
    if rtype.is_custom:
        columns = list(rtype.printer_columns) or None
    else:
        columns = table.builtin_columns(rtype.group, rtype.resource)
    return table.to_table(
        [presented],
        columns=columns,
        list_metadata={"resourceVersion": presented["metadata"].get("resourceVersion", "")},
    )


async def _send(response: web.StreamResponse, event_type: str, obj: JsonDict) -> None:
    line = json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n"
    await response.write(line.encode())


def _timeout(request: web.Request, default: float) -> float:
    raw = request.query.get("timeoutSeconds") or request.query.get("timeout")
    if not raw:
        return default
    try:
        return max(0.0, float(raw.rstrip("s")))
    except ValueError:
        raise errors.bad_request(f'invalid timeoutSeconds "{raw}"') from None
