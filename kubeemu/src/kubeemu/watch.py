"""Watch streams: newline-delimited JSON events from the store to one HTTP client.

Reads the request's ``resourceVersion``, selectors, ``timeoutSeconds`` and
``allowWatchBookmarks``; replays the store history after that version (or synthetic ADDED events
for a fresh watch), then forwards live changes until the timeout, a client disconnect, or a
fault-injected drop.  A version older than the compaction floor gets the apiserver's 410 ERROR
event on an HTTP 200 stream (rows W1-W7 and W10 of the fidelity table in
kubeemu/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
from typing import Any, Literal

from aiohttp import web

from kubeemu import errors, jsonio
from kubeemu.emulator import Emulator, Target
from kubeemu.listing import Selection, table_of
from kubeemu.store import Change, Subscription
from kubeemu.wire import GO_TRUE, wants_table

JsonDict = dict[str, Any]


def _event_type(selection: Selection, change: Change) -> str | None:
    """The event type a watch with ``selection`` sees for a change, or None.

    An object entering the selection is ADDED, one leaving it is DELETED.
    """
    now_in = selection.matches(change.obj) if change.event_type != "DELETED" else False
    was_in = selection.matches(change.old)
    if change.event_type == "ADDED":
        return "ADDED" if now_in else None
    if change.event_type == "DELETED":
        return "DELETED" if selection.matches(change.obj) else None
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
    selection = Selection(request, target)
    requested = request.query.get("resourceVersion", "")
    timeout = _timeout(request, emulator.settings.default_watch_timeout)
    bookmarks = request.query.get("allowWatchBookmarks") in GO_TRUE
    as_table = wants_table(request)

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
                event_type = _event_type(selection, change)
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
    selection: Selection,
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
    resourceVersion up to which this watch has passed every change on (matching or not).
    """
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
        event_type = _event_type(selection, change)
        if event_type:
            await _send(response, event_type, _render(emulator, target, change.obj, as_table))


class _Quiet(enum.Enum):
    """What :func:`_next_change` returns when nothing arrived in time."""

    NOTHING = enum.auto()


async def _next_change(
    subscription: Subscription, seconds: float
) -> Change | Literal[_Quiet.NOTHING] | None:
    """The next queued change, ``None`` when the watch was dropped, or ``NOTHING`` in time.

    ``NOTHING`` comes after ``seconds`` (> 0) without a change.

    A queued change is taken without waiting: ``asyncio.wait_for(queue.get(), 0)`` would
    cancel the get before it ran and time out however full the queue is (Python 3.11/3.12).
    A get cancelled by the timeout leaves its change in the queue, for the next call.
    """
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
    """A BOOKMARK at the newest resourceVersion this watch can vouch for.

    That is the store's when every change has been passed on, else the last change passed on
    (a client resuming from the bookmark must not skip the changes still queued).
    """
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
    if not as_table:
        return emulator.api.presented(target.rtype, obj)
    presented = emulator.api.present(target.rtype, obj)
    metadata = {"resourceVersion": presented["metadata"].get("resourceVersion", "")}
    return table_of(target.rtype, [presented], metadata, "Metadata")


async def _send(response: web.StreamResponse, event_type: str, obj: JsonDict) -> None:
    await response.write(jsonio.dumps({"type": event_type, "object": obj}) + b"\n")


def _timeout(request: web.Request, default: float) -> float:
    raw = request.query.get("timeoutSeconds") or request.query.get("timeout")
    if not raw:
        return default
    try:
        return max(0.0, float(raw.rstrip("s")))
    except ValueError:
        raise errors.bad_request(f'invalid timeoutSeconds "{raw}"') from None
