"""The workers' KubePort: custom resources read from the watcher's copy instead of the API.

Wraps the Kubernetes adapter (``workers.kube``) for the reconcilers (``workers.wiring``
builds it). ``get_custom`` answers from the owner's copy in the child ledger
(``tango_operator.workqueue.ledger``: what the watcher last saw of the custom resource, as a
controller-runtime client reads its informer's cache) and reads the API only when there is
no copy. Writes of a custom resource go to the API; their answer is recorded as the newer
copy, so the reconcile that follows does not act on what the watcher has not seen yet. A
write that fails (a conflict: the copy was behind; gone: it was deleted) drops the copy, so
the next attempt reads the API. Everything else passes through.
"""

from __future__ import annotations

import logging
from typing import Any

from tango_operator import crd
from tango_operator.keys import Key
from workers.reconcile.ports import ChildLedgerPort, KubePort

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]
_CUSTOM_KINDS = frozenset(kind.value for kind in crd.Kind)


class OwnerCopies:
    """A KubePort that serves custom resources from the ledger's owner copies."""

    def __init__(self, kube: KubePort, ledger: ChildLedgerPort) -> None:
        self.kube = kube
        self.ledger = ledger

    # --- reads ----------------------------------------------------------------------------------
    def get_custom(self, kind: crd.Kind, namespace: str, name: str) -> JsonDict | None:
        """The watcher's copy of the custom resource; the API's answer when there is none."""
        key = Key(kind.value, namespace, name)
        try:
            copy = self.ledger.owner_copy(key)
        except Exception as exc:  # Redis trouble: the API answers as well, only slower
            log.warning("owner copy unavailable key=%s error=%r", key, exc)
        else:
            if copy.known:
                return copy.obj
        return self.kube.get_custom(kind, namespace, name)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> JsonDict | None:
        """Read one object from the API."""
        return self.kube.get(api_version, kind, namespace, name)

    def list_custom(self, kind: crd.Kind, namespace: str) -> list[JsonDict]:
        """List the custom resources of ``kind`` in ``namespace`` from the API."""
        return self.kube.list_custom(kind, namespace)

    # --- writes ---------------------------------------------------------------------------------
    def apply(self, manifest: JsonDict) -> JsonDict:
        """Server-side apply a child."""
        return self.kube.apply(manifest)

    def create_if_absent(self, manifest: JsonDict) -> JsonDict | None:
        """Create a child unless one of that name exists."""
        return self.kube.create_if_absent(manifest)

    def merge_patch(
        self, resource: JsonDict, patch: JsonDict, *, subresource: str | None = None
    ) -> JsonDict:
        """Patch ``resource`` (or its subresource); a custom resource's answer is recorded."""
        key = _owner_key(resource)
        try:
            written = self.kube.merge_patch(resource, patch, subresource=subresource)
        except Exception:
            self._drop(key)
            raise
        self._record(key, written)
        return written

    def set_finalizers(self, resource: JsonDict, finalizers: list[str]) -> JsonDict:
        """Replace the finalizers; the answer is recorded as the owner's copy."""
        key = _owner_key(resource)
        try:
            written = self.kube.set_finalizers(resource, finalizers)
        except Exception:
            self._drop(key)
            raise
        self._record(key, written)
        return written

    def delete(self, obj: JsonDict) -> bool:
        """Delete an object (a server's pod) if it still has the uid read."""
        return self.kube.delete(obj)

    def emit_event(self, resource: JsonDict, *, event_type: str, reason: str, message: str) -> None:
        """Record a Kubernetes Event on ``resource``."""
        self.kube.emit_event(resource, event_type=event_type, reason=reason, message=message)

    # --- the copies -----------------------------------------------------------------------------
    def _record(self, key: Key | None, written: JsonDict) -> None:
        if key is None:
            return
        try:
            self.ledger.wrote_owner(key, written)
        except Exception as exc:  # the watcher's copy follows with the event of this write
            log.warning("owner copy not updated key=%s error=%r", key, exc)

    def _drop(self, key: Key | None) -> None:
        if key is None:
            return
        try:
            self.ledger.drop_owner_copy(key)
        except Exception as exc:
            log.warning("owner copy not dropped key=%s error=%r", key, exc)


def _owner_key(resource: JsonDict) -> Key | None:
    """The key of a custom resource; None for any other object."""
    meta = resource.get("metadata") or {}
    if resource.get("kind") not in _CUSTOM_KINDS or not meta.get("namespace"):
        return None
    return Key(str(resource["kind"]), str(meta["namespace"]), str(meta.get("name") or ""))
