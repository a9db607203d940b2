"""List + watch of one resource type, the way client-go's reflector does it.

Runs in its own thread, started by ``watcher.main`` while this replica leads; every object
it lists or sees in a watch event goes to the ``emit(kind, event_type, object)`` callback
(``watcher.main`` maps it to keys). The rules, client-go's reflector's:

* LIST, remember the *list's* resourceVersion, emit every item; WATCH from it with
  bookmarks, tracking the last resourceVersion of every event (bookmarks included);
* a stream that ends (server timeout, dropped connection) resumes from the last one;
* 410 Gone — as an ERROR event or an HTTP status — means relist, then ``on_relist``
  (the watcher resyncs every key, since anything may have been missed);
* a relist *replaces* what the source knew (client-go's ``Replace``): an object it had
  listed or watched that the new list lacks was deleted in the gap and is emitted as
  DELETED, once, with the last metadata seen (client-go's ``DeletedFinalStateUnknown``), so
  the per-object state downstream (fingerprints, counts) forgets it and its key is enqueued;
* a stream silent for longer than the inactivity timeout (not even a bookmark) is closed
  and resumed; errors back off from 0.8 s to 30 s (doubling, with jitter, reset after two
  healthy minutes); 429 honours Retry-After.

The official client's ``Watch`` helper is not used: it retries a 410 with the same stale
resourceVersion and hides the list's resourceVersion, the two things this must get right.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tango_operator.resources import ResourceType
from watcher import metrics
from watcher.kube import ApiError, Interrupted, Kube, WatchStream

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]
Emit = Callable[[str, str, JsonDict], None]
ObjectKey = tuple[str, str]
"""(namespace or "", name)."""


class Known(NamedTuple):
    """What a source remembers of an object besides its namespace and name (its key).

    That is what a synthetic DELETED needs to map the object to keys (``deleted``). A tuple
    rather than the object's metadata as dicts: a watcher of 10,000 DeviceServers keeps one
    for each of 50,000 objects (the CRs, their children and pods), about 200 bytes each
    instead of 700.
    """

    uid: str
    resource_version: str
    owner: tuple[str, str, str] | None
    """The controller ownerReference's apiVersion, kind and name."""


@dataclass(frozen=True)
class Resource:
    """A watched collection: a type of ``tango_operator.resources``, optionally filtered."""

    type: ResourceType
    label_selector: str | None = None

    @property
    def kind(self) -> str:
        """The kind of the listed objects (built-in list items do not carry it)."""
        return self.type.kind

    @property
    def plural(self) -> str:
        """The collection's name, the label of every metric of this source."""
        return self.type.plural


@dataclass
class Backoff:
    """The reflector's: 0.8 s doubling to 30 s, jitter times [1, 2), reset after 2 min of health."""

    initial: float = 0.8
    cap: float = 30.0
    reset_after: float = 120.0
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic
    _delay: float = 0.0
    _last: float = float("-inf")

    def next(self) -> float:
        """The wait before the next attempt after a failure."""
        now = self.clock()
        if now - self._last > self.reset_after:
            self._delay = self.initial
        self._last = now
        wait = min(self.cap, self._delay * self.rng.uniform(1.0, 2.0))
        self._delay = min(self.cap, self._delay * 2)
        return wait


class Gone(Exception):  # noqa: N818 - named after the HTTP status
    """The resourceVersion is too old: relist."""


@dataclass
class Source:
    """The list and watch of one resource type in one namespace (or all), run in its own thread.

    Every object is passed to ``emit``; ``on_listed`` is called after the first list and
    ``on_relist`` after each one that follows.
    """

    kube: Kube
    resource: Resource
    namespace: str | None
    emit: Emit
    stop: threading.Event
    inactivity_seconds: float = 70.0
    watch_timeout_seconds: float | None = None
    """Server-side ``timeoutSeconds``; None: random in [300, 600] per watch (the reflector's)."""
    on_relist: Callable[[], None] = lambda: None
    on_listed: Callable[[], None] = lambda: None
    rng: random.Random = field(default_factory=random.Random)
    backoff: Backoff = field(default_factory=Backoff)
    relists: int = 0
    restarts: int = 0
    relist_deletions: int = 0
    """Objects found deleted by a relist (absent from it, known before)."""
    known: dict[ObjectKey, Known] = field(default_factory=dict, repr=False)
    """What exists as far as this source knows — the last list plus the watch events since
    — reduced to what a synthetic DELETED carries (``Known``, ``deleted``)."""
    _stream: WatchStream | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The source's name in logs: ``<plural>@<namespace>``, ``*`` for all namespaces."""
        return f"{self.resource.plural}@{self.namespace or '*'}"

    def run(self) -> None:
        """Until ``stop`` is set: list, then watch and resume, relisting on 410."""
        resource_version: str | None = None
        while not self.stop.is_set():
            try:
                if resource_version is None:
                    resource_version = self._list()
                resource_version = self._watch(resource_version)
            except Gone:
                log.info("resourceVersion too old, relisting source=%s", self.name)
                metrics.WATCH_RESTARTS.labels(self.resource.plural, "gone").inc()
                resource_version = None
            except ApiError as exc:
                wait = exc.retry_after if exc.status == 429 else None
                wait = wait if wait is not None else self.backoff.next()
                log.warning(
                    "watch failed source=%s status=%s retry_in=%.1fs", self.name, exc.status, wait
                )
                metrics.WATCH_RESTARTS.labels(self.resource.plural, f"http_{exc.status}").inc()
                self.stop.wait(wait)
            except (Interrupted, ValueError) as exc:
                wait = self.backoff.next()
                log.warning(
                    "watch interrupted source=%s error=%s retry_in=%.1fs",
                    self.name,
                    type(exc).__name__,
                    wait,
                )
                metrics.WATCH_RESTARTS.labels(self.resource.plural, "error").inc()
                self.stop.wait(wait)
            except Exception:  # a malformed answer must not end the thread: relist
                wait = self.backoff.next()
                log.exception("watch broken source=%s retry_in=%.1fs", self.name, wait)
                metrics.WATCH_RESTARTS.labels(self.resource.plural, "unexpected").inc()
                resource_version = None
                self.stop.wait(wait)

    def _emit(self, event_type: str, obj: JsonDict) -> None:
        """Hand one object on; a failure to map it is logged, not a reason to re-watch."""
        try:
            self.emit(self.resource.kind, event_type, obj)
        except Exception:
            meta = obj.get("metadata")
            meta = meta if isinstance(meta, dict) else {}
            log.exception(
                "event not handled source=%s type=%s object=%s/%s",
                self.name,
                event_type,
                meta.get("namespace"),
                meta.get("name"),
            )

    def abort(self) -> None:
        """Interrupt a read blocked on a quiet stream (after ``stop`` is set).

        The thread ends now rather than at the inactivity timeout.
        """
        stream = self._stream
        if stream is not None:
            stream.abort()

    def prime(self) -> None:
        """One list, emitted, before the thread starts (the namespace selector's first view)."""
        self._list()

    # --- list ------------------------------------------------------------------------------
    def _query(self, query: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if self.resource.label_selector:
            return [*query, ("labelSelector", self.resource.label_selector)]
        return query

    def _pages(self) -> Iterator[JsonDict]:
        """The list, a page of ``LIST_PAGE`` objects at a time (as client-go's reflector pages).

        A list of ten thousand objects in one answer is tens of MiB of JSON parsed at once,
        and the process keeps that peak; pages keep it to one page. An expired continue
        token is an ``ApiError`` 410, which the caller handles like any failed list.
        """
        token = ""
        while True:
            query = [("limit", str(LIST_PAGE)), *([("continue", token)] if token else [])]
            page = self.kube.get(
                self.resource.type.path(self.namespace),
                query=self._query(query),
                timeout=(5.0, 60.0),
            )
            yield page
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token or self.stop.is_set():
                return

    def _list(self) -> str:
        present: dict[ObjectKey, Known] = {}
        listed: JsonDict = {}
        for listed in self._pages():
            for item in listed.get("items") or []:
                if self.stop.is_set():
                    break
                item.setdefault("kind", self.resource.kind)  # built-in list items carry no type
                item.setdefault("apiVersion", self.resource.type.api_version)
                present[_key(item)] = known_of(item)
                self._emit("ADDED", item)
        if self.stop.is_set():  # stopped part-way: the rest of the list is unknown
            self.known.update(present)
        else:
            self._replace(present)
        self.relists += 1
        metrics.RELISTS.labels(self.resource.plural).inc()
        if self.relists > 1:
            self.on_relist()
        else:
            self.on_listed()
        return str(listed["metadata"]["resourceVersion"])

    def _replace(self, present: dict[ObjectKey, Known]) -> None:
        """Make ``present`` (a full list) what this source knows.

        Emit DELETED for each object known before and absent from it.
        """
        gone = [
            deleted(self.resource, key, known)
            for key, known in self.known.items()
            if key not in present
        ]
        self.known = present
        if gone:
            self.relist_deletions += len(gone)
            metrics.RELIST_DELETIONS.labels(self.resource.plural).inc(len(gone))
            log.info("relist found deleted source=%s objects=%d", self.name, len(gone))
        for obj in gone:
            self._emit("DELETED", obj)

    # --- watch -----------------------------------------------------------------------------
    def _open_watch(self, resource_version: str) -> WatchStream:
        """Open a WATCH from ``resource_version`` with bookmarks; a 410 raises ``Gone``.

        The server ends the stream after ``watch_timeout_seconds`` (or a random 5-10 minutes);
        a read waits at most the inactivity timeout.
        """
        timeout = round(self.watch_timeout_seconds or self.rng.randint(300, 600))
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout)),
        ]
        try:
            return self.kube.watch(
                self.resource.type.path(self.namespace),
                query=self._query(query),
                timeout=(5.0, self.inactivity_seconds),
            )
        except ApiError as exc:
            if exc.status == 410:
                raise Gone() from None
            raise

    def _on_event(self, event: JsonDict, resource_version: str) -> str:
        """Track and emit one watch event; return the resourceVersion to resume from.

        An ERROR event raises: ``Gone`` for a 410, else ``ApiError``. A BOOKMARK only moves
        the resourceVersion on.
        """
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise ApiError(int(obj.get("code") or 0), str(obj.get("message") or ""))
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            resource_version = str(rv)
        metrics.EVENTS.labels(self.resource.plural, str(kind)).inc()
        if kind in ("ADDED", "MODIFIED"):
            self.known[_key(obj)] = known_of(obj)
        elif kind == "DELETED":
            self.known.pop(_key(obj), None)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self._emit(str(kind), obj)
        return resource_version

    def _watch(self, resource_version: str) -> str:
        """Watch from ``resource_version`` until the stream ends; return where to resume."""
        stream = self._open_watch(resource_version)
        self._stream = stream
        if self.stop.is_set():
            stream.close()
            return resource_version
        try:
            for event in stream.events():
                if self.stop.is_set():
                    break
                resource_version = self._on_event(event, resource_version)
        except Interrupted:
            # silent longer than the inactivity timeout, or the server dropped us: resume
            self.restarts += 1
            metrics.WATCH_RESTARTS.labels(self.resource.plural, "inactive_or_dropped").inc()
        finally:
            self._stream = None
            stream.close()
        return resource_version


def _key(obj: JsonDict) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


LIST_PAGE = 500
"""Objects per page of a list (client-go's reflector asks for 500 as well)."""


def known_of(obj: JsonDict) -> Known:
    """What a source keeps of ``obj`` (its strings are the object's, the owner's type shared)."""
    meta = obj.get("metadata") or {}
    owner = None
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            api_version, kind = str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
            owner = (sys.intern(api_version), sys.intern(kind), str(ref.get("name") or ""))
            break
    return Known(str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""), owner)


def deleted(resource: Resource, key: ObjectKey, known: Known) -> JsonDict:
    """The DELETED object of a source's ``known`` record: type, identity, controller owner."""
    namespace, name = key
    meta: JsonDict = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if known.uid:
        meta["uid"] = known.uid
    if known.resource_version:
        meta["resourceVersion"] = known.resource_version
    if known.owner is not None:
        api_version, kind, owner_name = known.owner
        meta["ownerReferences"] = [
            {"apiVersion": api_version, "kind": kind, "name": owner_name, "controller": True}
        ]
    return {"apiVersion": resource.type.api_version, "kind": resource.kind, "metadata": meta}
