"""The emulator's storage: objects by group/resource, one global resourceVersion, watch history.

Writes come from the request handlers and the fake controllers (all on the server's event loop, so
no locking is needed); every committed change becomes a :class:`Change` that is appended to a
bounded history (the etcd analogue, with a compaction floor) and fanned out to open watches and to
in-process subscribers such as the garbage collector.
"""

from __future__ import annotations

import asyncio
import builtins
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kubeemu.clone import clone

JsonDict = dict[str, Any]
GroupResource = tuple[str, str]
ObjectKey = tuple[str, str]  # (namespace or "", name)

DEFAULT_HISTORY = 50_000


@dataclass(frozen=True)
class Change:
    """One committed write: ``ADDED``, ``MODIFIED`` or ``DELETED`` at ``resource_version``."""

    resource_version: int
    event_type: str
    group_resource: GroupResource
    obj: JsonDict
    old: JsonDict | None

    @property
    def namespace(self) -> str:
        return str(self.obj.get("metadata", {}).get("namespace") or "")

    @property
    def name(self) -> str:
        return str(self.obj.get("metadata", {}).get("name", ""))


class WatchClosedError(Exception):
    """Raised into a watch queue when the server drops every open watch."""


class Subscription:
    """An open watch: receives the changes of one group/resource in commit order."""

    def __init__(self, store: Store, group_resource: GroupResource):
        self.store = store
        self.group_resource = group_resource
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue()

    def deliver(self, change: Change) -> None:
        self.queue.put_nowait(change)

    def close(self) -> None:
        """Wake the reader with ``None``: the watch must end (fault injection, shutdown)."""
        self.queue.put_nowait(None)

    def cancel(self) -> None:
        self.store.unsubscribe(self)


class Store:
    """In-memory object storage with etcd-like resourceVersions and watch history."""

    def __init__(self, history_size: int = DEFAULT_HISTORY):
        self._objects: dict[GroupResource, dict[ObjectKey, JsonDict]] = {}
        self._namespaces: dict[GroupResource, dict[str, dict[ObjectKey, JsonDict]]] = {}
        """The same objects by namespace: the controllers list one namespace's pods often."""
        self._revision = 1
        self._history: deque[Change] = deque(maxlen=history_size)
        self._compacted = 0
        self._subscriptions: set[Subscription] = set()
        self._listeners: list[Callable[[Change], None]] = []

    # --- versions -------------------------------------------------------------------------------
    @property
    def revision(self) -> int:
        return self._revision

    @property
    def oldest_watchable(self) -> int:
        """Watches may resume from any RV at or above this; older ones get 410 Gone."""
        floor = self._compacted
        if self._history and len(self._history) == self._history.maxlen:
            floor = max(floor, self._history[0].resource_version - 1)
        return floor

    def next_revision(self) -> int:
        self._revision += 1
        return self._revision

    def compact(self) -> int:
        """Forget all history up to now: a watch resuming from an older RV gets 410 Gone."""
        self._history.clear()
        self._compacted = self._revision
        return self._compacted

    # --- reads ----------------------------------------------------------------------------------
    def get(self, group_resource: GroupResource, namespace: str, name: str) -> JsonDict | None:
        return self._objects.get(group_resource, {}).get((namespace, name))

    def list(self, group_resource: GroupResource, namespace: str | None = None) -> list[JsonDict]:
        """Objects sorted by namespace then name; ``namespace=None`` lists all namespaces."""
        if namespace is None:
            bucket = self._objects.get(group_resource, {})
        else:
            bucket = self._namespaces.get(group_resource, {}).get(namespace, {})
        return [bucket[k] for k in sorted(bucket)]

    def all_objects(self) -> Iterator[tuple[GroupResource, JsonDict]]:
        for group_resource, bucket in self._objects.items():
            for obj in list(bucket.values()):
                yield group_resource, obj

    def count(self) -> int:
        return sum(len(bucket) for bucket in self._objects.values())

    # --- writes ---------------------------------------------------------------------------------
    def put(self, group_resource: GroupResource, obj: JsonDict) -> JsonDict:
        """Store ``obj`` (its resourceVersion must already be set) and emit ADDED/MODIFIED."""
        meta = obj["metadata"]
        key = (str(meta.get("namespace") or ""), str(meta["name"]))
        bucket = self._objects.setdefault(group_resource, {})
        old = bucket.get(key)
        bucket[key] = obj
        self._namespaces.setdefault(group_resource, {}).setdefault(key[0], {})[key] = obj
        self._emit(
            Change(
                int(meta["resourceVersion"]),
                "MODIFIED" if old is not None else "ADDED",
                group_resource,
                obj,
                old,
            )
        )
        return obj

    def remove(self, group_resource: GroupResource, namespace: str, name: str) -> JsonDict | None:
        """Remove an object; the DELETED event carries its last state at a new RV."""
        bucket = self._objects.get(group_resource, {})
        old = bucket.pop((namespace, name), None)
        if old is None:
            return None
        in_namespace = self._namespaces[group_resource][namespace]
        del in_namespace[(namespace, name)]
        if not in_namespace:
            del self._namespaces[group_resource][namespace]
        final = clone(old)
        final["metadata"]["resourceVersion"] = str(self.next_revision())
        self._emit(Change(self._revision, "DELETED", group_resource, final, old))
        return final

    def _emit(self, change: Change) -> None:
        self._history.append(change)
        for subscription in list(self._subscriptions):
            if subscription.group_resource == change.group_resource:
                subscription.deliver(change)
        for listener in list(self._listeners):
            listener(change)

    # --- watching -------------------------------------------------------------------------------
    def history_since(
        self, group_resource: GroupResource, resource_version: int
    ) -> builtins.list[Change]:
        """Changes after ``resource_version``; the caller checked it against oldest_watchable."""
        return [
            change
            for change in self._history
            if change.resource_version > resource_version
            and change.group_resource == group_resource
        ]

    def subscribe(self, group_resource: GroupResource) -> Subscription:
        subscription = Subscription(self, group_resource)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def drop_all_watches(self, group_resource: GroupResource | None = None) -> int:
        """End every open watch, or those of ``group_resource``.

        Their clients see the stream close and must resume.
        """
        subscriptions = [
            subscription
            for subscription in self._subscriptions
            if group_resource is None or subscription.group_resource == group_resource
        ]
        for subscription in subscriptions:
            subscription.close()
        return len(subscriptions)

    @property
    def open_watches(self) -> int:
        return len(self._subscriptions)

    def add_listener(self, listener: Callable[[Change], None]) -> None:
        """Call ``listener`` synchronously after every committed change (fake controllers)."""
        self._listeners.append(listener)

    def group_resources(self) -> Iterable[GroupResource]:
        return list(self._objects)
