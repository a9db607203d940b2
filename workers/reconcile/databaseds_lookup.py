"""Is the TANGO host a DeviceServer names ready, as far as Kubernetes knows?

Called by the DeviceServer reconciler before it asks TANGO itself. A ``databaseds`` value
without dots names a DatabaseDS in the same namespace when one exists; then the operator
waits for that DatabaseDS to be Running. Otherwise (a DNS name, or a Service deployed by
other means) only the TANGO check decides.
"""

from __future__ import annotations

from tango_operator import crd
from workers.reconcile.ports import KubePort

GONE = "DatabaseDS is being deleted"


def wait_reason(*, kube: KubePort, namespace: str, databaseds: str) -> str | None:
    """None when nothing in Kubernetes says to wait, else why."""
    host = databaseds.partition(":")[0]
    if "." in host:
        return None
    resource = kube.get_custom(crd.Kind.DATABASE_DS, namespace, host)
    if resource is None:
        return None
    if resource["metadata"].get("deletionTimestamp"):
        return GONE
    state = (resource.get("status") or {}).get("state") or "not reconciled yet"
    if state != "Running":
        return f"DatabaseDS {host} is {state}"
    return None
