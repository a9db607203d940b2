"""Is the TANGO host a DeviceServer names ready, as far as Kubernetes knows?

Called by the DeviceServer reconciler before it asks TANGO itself. A ``databaseds`` value
without dots names a DatabaseDS in the same namespace when one exists; then the operator
waits for that DatabaseDS to be Running. Otherwise (a DNS name, or a Service deployed by
other means) only the TANGO check decides. The state comes from what the watcher saw
(``Ports.databases``) when it says Running — the steady state, read on every reconcile —
and from the API otherwise: when the watcher cannot vouch for it, and to confirm a wait
(the record may lag the DatabaseDS that just woke this server). A DatabaseDS the API no
longer has but the record remembers as deleted is a wait too: its users say so at once,
while garbage collection is still taking its DataBaseds down.
"""

from __future__ import annotations

from tango_operator import crd
from tango_operator.observed import DATABASEDS_DELETED, DATABASEDS_DELETING
from workers.reconcile.ports import Ports


def _state_from_api(ports: Ports, namespace: str, name: str) -> str | None:
    resource = ports.kube.get_custom(crd.Kind.DATABASE_DS, namespace, name)
    if resource is None:
        return None
    if resource["metadata"].get("deletionTimestamp"):
        return DATABASEDS_DELETING
    return str((resource.get("status") or {}).get("state") or "")


def _state(ports: Ports, namespace: str, host: str) -> str | None:
    recorded = ports.databases.state(namespace, host)
    if recorded == "Running":
        return recorded
    from_api = _state_from_api(ports, namespace, host)
    if from_api is None and recorded == DATABASEDS_DELETED:
        return DATABASEDS_DELETED  # gone: say so, although its DataBaseds may still answer
    return from_api


def being_deleted(ports: Ports, *, namespace: str, databaseds: str) -> bool:
    """Whether ``databaseds`` names a DatabaseDS of the namespace that is being deleted."""
    host = databaseds.partition(":")[0]
    return "." not in host and _state(ports, namespace, host) == DATABASEDS_DELETING


def wait_reason(ports: Ports, *, namespace: str, databaseds: str) -> str | None:
    """None when nothing in Kubernetes says to wait, else why."""
    host = databaseds.partition(":")[0]
    if "." in host:
        return None
    state = _state(ports, namespace, host)
    if state is None:
        return None
    if state == DATABASEDS_DELETING:
        return f"DatabaseDS {host} is being deleted"
    if state == DATABASEDS_DELETED:
        return f"DatabaseDS {host} was deleted"
    if state != "Running":
        return f"DatabaseDS {host} is {state or 'not reconciled yet'}"
    return None
