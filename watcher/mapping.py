"""Kubernetes watch events → reconcile keys (pure functions, no I/O).

Called by ``watcher.main`` for every object a source (``watcher.sources``) lists or
watches; the keys go on to ``watcher.enqueue``. A custom resource maps to its own key; a
child maps to the custom resource in its controller ownerReference (``owner_key``; whether
the event concerns the owner is the child ledger's call, ``tango_operator.observed``);
anything else maps to nothing. Changes of a custom resource that only touch its status, or
add the operator's own finalizer (the operator's own writes), are dropped, and so is a
relist's ADDED of an unchanged one, by remembering a fingerprint of what a reconcile depends
on: generation, labels, annotations, the other finalizers, deletionTimestamp.
"""

from __future__ import annotations

from typing import Any

from tango_operator import crd, jsontext
from tango_operator.keys import Key

JsonDict = dict[str, Any]
CUSTOM_KINDS = {kind.value for kind in crd.Kind}


def _fingerprint(obj: JsonDict) -> str:
    meta = obj.get("metadata") or {}
    return jsontext.dumps(
        [
            meta.get("generation"),
            meta.get("labels"),
            meta.get("annotations"),
            [f for f in meta.get("finalizers") or [] if f != crd.FINALIZER],
            meta.get("deletionTimestamp"),
        ],
        sort_keys=True,
    )


class Mapper:
    """Remembers one fingerprint per custom resource (the watcher's only per-object state)."""

    def __init__(self) -> None:
        self._seen: dict[Key, str] = {}

    def keys_for(self, kind: str, event_type: str, obj: JsonDict) -> list[Key]:
        """Return the keys to reconcile for one event on ``obj`` of ``kind``.

        A custom resource's own key, unless nothing it depends on changed; a child's owner
        key; nothing for anything else.
        """
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        if not namespace or not name:
            return []
        if kind in CUSTOM_KINDS:
            key = Key(kind, namespace, name)
            if event_type == "DELETED":
                self._seen.pop(key, None)
                return [key]
            fingerprint = _fingerprint(obj)
            if self._seen.get(key) == fingerprint:
                return []  # a status-only change, the operator's finalizer, or a relist
            self._seen[key] = fingerprint
            return [key]
        return owner_keys(obj)

    def knows(self, key: Key) -> bool:
        """Whether a fingerprint is remembered for ``key`` (seen, not deleted since)."""
        return key in self._seen

    def forget_all(self) -> None:
        """Leadership lost.

        The next leadership lists afresh and every object is new again. (A relist forgets only what
        is gone: its source emits a DELETED for each.)
        """
        self._seen.clear()

    def __len__(self) -> int:
        return len(self._seen)


def owner_key(obj: JsonDict) -> Key | None:
    """The key of the custom resource that controls ``obj``, if one does."""
    owners = owner_keys(obj)
    return owners[0] if owners else None


def owner_keys(obj: JsonDict) -> list[Key]:
    """The key of the custom resource in ``obj``'s controller ownerReference, if one is ours."""
    meta = obj.get("metadata") or {}
    for owner in meta.get("ownerReferences") or []:
        if (
            owner.get("controller")
            and str(owner.get("apiVersion", "")).split("/")[0] == crd.GROUP
            and owner.get("kind") in CUSTOM_KINDS
        ):
            return [Key(owner["kind"], meta["namespace"], owner["name"])]
    return []
