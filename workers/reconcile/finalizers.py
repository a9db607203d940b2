"""The operator's finalizer on its custom resources.

Added before anything is created outside Kubernetes (the TANGO DB entries), removed once that is
cleaned up.

Both writes carry the resourceVersion that was read, so a concurrent change makes them
fail with a conflict (a temporary error: the key is retried) instead of losing an update.
"""

from __future__ import annotations

from typing import Any

from tango_operator import crd
from workers.reconcile.ports import KubePort

JsonDict = dict[str, Any]


def ensure(kube: KubePort, resource: JsonDict) -> JsonDict:
    """The resource with the finalizer in place (written only when it was missing)."""
    present = list(resource["metadata"].get("finalizers") or [])
    if crd.FINALIZER in present:
        return resource
    return kube.set_finalizers(resource, [*present, crd.FINALIZER])


def remove(kube: KubePort, resource: JsonDict) -> JsonDict:
    """The resource without the operator's finalizer (written only when it was there)."""
    present = list(resource["metadata"].get("finalizers") or [])
    if crd.FINALIZER not in present:
        return resource
    return kube.set_finalizers(resource, [f for f in present if f != crd.FINALIZER])
