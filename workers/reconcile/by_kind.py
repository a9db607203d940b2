"""The entry point of the business logic: a key in, an Outcome out.

Called by the Celery task (and by tests directly); picks the reconciler of the key's kind.
"""

from __future__ import annotations

from tango_operator import crd
from tango_operator.keys import Key
from workers.reconcile import databaseds, deviceserver
from workers.reconcile.ports import Outcome, Ports


def reconcile(key: Key, ports: Ports) -> Outcome:
    """Reconcile ``key`` with the reconciler of its kind (DeviceServer or DatabaseDS)."""
    if key.kind == crd.Kind.DEVICE_SERVER.value:
        return deviceserver.reconcile(key, ports)
    return databaseds.reconcile(key, ports)


def starts_with_owner_and_records(kind: str) -> bool:
    """Whether a reconcile of ``kind`` reads ``ports.ledger.owner_and_records`` first.

    Those reads can be made ahead, with the run's lease (``tango_operator.workqueue.piggyback``).
    """
    return kind == crd.Kind.DEVICE_SERVER.value
