"""Is the TANGO host a DeviceServer names ready, as far as Kubernetes knows?

Called by the DeviceServer reconciler before it asks TANGO itself. A ``databaseds`` value
without dots names a DatabaseDS in the same namespace when one exists; then the operator
waits for that DatabaseDS to be Running. Otherwise (a DNS name, or a Service deployed by
other means) only the TANGO check decides. The state comes from what the watcher saw
(``Ports.databases``) when it says Running — the steady state, read on every reconcile —
and from the API otherwise: when the watcher cannot vouch for it, and to confirm a wait
(the record may lag the DatabaseDS that just woke this server).
"""

from __future__ import annotations

from tango_operator import crd
from tango_operator.observed import DATABASEDS_DELETING
from workers.reconcile.ports import Ports

GONE = "DatabaseDS is being deleted"


def _state_from_api(ports: Ports, namespace: str, name: str) -> str | None:
    resource = ports.kube.get_custom(crd.Kind.DATABASE_DS, namespace, name)
    if resource is None:
        return None
    if resource["metadata"].get("deletionTimestamp"):
        return DATABASEDS_DELETING
    return str((resource.get("status") or {}).get("state") or "")


def wait_reason(ports: Ports, *, namespace: str, databaseds: str) -> str | None:
    """None when nothing in Kubernetes says to wait, else why."""
    host = databaseds.partition(":")[0]
    if "." in host:
        return None
    state = ports.databases.state(namespace, host)
    if state != "Running":
        state = _state_from_api(ports, namespace, host)
    if state is None:
        return None
    if state == DATABASEDS_DELETING:
        return GONE
    if state != "Running":
        return f"DatabaseDS {host} is {state or 'not reconciled yet'}"
    return None
