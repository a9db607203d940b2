"""Pod events → the key of the custom resource whose server container started failing.

``watcher.main`` hands every StatefulSet event (``statefulset``) and every event of a pod
of the operator's StatefulSets (``pod``) here. A pod's controller is its StatefulSet, whose
controller is the custom resource: the StatefulSet events teach the owner of each StatefulSet,
and a pod event maps to that owner when its container's ``trouble`` fingerprint
(``tango_operator.pod_health``: restarts and an abnormal wait reason) changes. A healthy start
changes nothing, so only a crash, a restart or a container that cannot start costs a
reconcile; readiness comes from the StatefulSet as before. In memory: one owner per
StatefulSet and one small tuple per pod in trouble (a healthy pod is the default and is not
stored; a relist emits DELETED for what vanished, which forgets it).
"""

from __future__ import annotations

import threading
from typing import Any

from tango_operator import pod_health
from tango_operator.keys import Key

JsonDict = dict[str, Any]
Trouble = tuple[int, str | None]
HEALTHY: Trouble = (0, None)


class PodTrouble:
    """Remembers StatefulSet owners and each pod's trouble fingerprint."""

    def __init__(self) -> None:
        self._owners: dict[tuple[str, str], Key] = {}
        self._trouble: dict[tuple[str, str], Trouble] = {}
        self._lock = threading.Lock()

    def statefulset(self, event_type: str, obj: JsonDict, owner: Key | None) -> None:
        """Learn (or forget) which custom resource owns a StatefulSet."""
        meta = obj.get("metadata") or {}
        where = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        with self._lock:
            if event_type == "DELETED" or owner is None:
                self._owners.pop(where, None)
            else:
                self._owners[where] = owner

    def pod(self, event_type: str, obj: JsonDict) -> list[Key]:
        """The owner's key when this pod's container trouble changed; else nothing."""
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        where = (namespace, name)
        if event_type == "DELETED":
            with self._lock:
                self._trouble.pop(where, None)
            return []
        report = pod_health.report(obj)
        trouble = report.trouble() if report is not None else HEALTHY
        statefulset = _controller(obj, "StatefulSet")
        with self._lock:
            before = self._trouble.pop(where, HEALTHY)
            if trouble != HEALTHY:
                self._trouble[where] = trouble
            owner = self._owners.get((namespace, statefulset)) if statefulset else None
        if owner is None or trouble == before:
            return []
        return [owner]

    def __len__(self) -> int:
        with self._lock:
            return len(self._trouble)

    def forget_all(self) -> None:
        """Leadership lost: the next leadership lists afresh."""
        with self._lock:
            self._owners.clear()
            self._trouble.clear()


def _controller(obj: JsonDict, kind: str) -> str | None:
    """The name of ``obj``'s controller ownerReference of ``kind``, if it has one."""
    for owner in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller") and owner.get("kind") == kind:
            return str(owner.get("name") or "") or None
    return None
