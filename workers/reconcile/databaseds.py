"""Reconcile one DatabaseDS: the TANGO DB (MariaDB) and the DataBaseds in front of it.

Called by the task layer with a Key and the ports; returns an Outcome. In order: read →
validate (Error) → credentials (a user Secret, or one the operator creates once) → apply
the children, with the DataBaseds StatefulSet at 0 replicas until the TANGO DB pod is
ready (this replaces the legacy chart's wait-for-it retry loop) → Running once the
DataBaseds pod is ready **and** answers as a TANGO database → one status patch; on every
change of state the DeviceServers of the namespace that use this TANGO host are woken. So
they are when the DatabaseDS is deleted (they report Waiting at once, not at the next
resync), and a deletion while DeviceServers still use it is a Warning Event on both sides.
With ``usePV``, the TANGO DB's PersistentVolumeClaim outlives its DatabaseDS unless
``persistentVolumeClaimRetentionPolicy.whenDeleted`` is Delete: the operator's finalizer
holds the deletion until the claim's ownerReference is gone.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from tango_operator import crd, names
from tango_operator.keys import Key
from tango_operator.observed import DATABASEDS_DELETING, ChildRecord, ChildState, state_of
from workers import rendering
from workers.reconcile import children, finalizers
from workers.reconcile.ports import Outcome, Ports
from workers.reconcile.status import Condition, publish

JsonDict = dict[str, Any]
KIND = crd.Kind.DATABASE_DS
PASSWORD_KEYS = ("MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD")


def reconcile(key: Key, ports: Ports) -> Outcome:
    """Reconcile one DatabaseDS (the steps are listed above); what the queue does next."""
    resource = ports.kube.get_custom(KIND, key.namespace, key.name)
    if resource is None:  # deleted: gone past its finalizer, or it had none
        ports.ledger.forget(key)
        ports.databases.record(key.namespace, key.name, None)
        users = _users_of(key, ports)
        reference = {
            "apiVersion": crd.API_VERSION,
            "kind": KIND.value,
            "metadata": {"name": key.name, "namespace": key.namespace},
        }
        _warn_users(reference, users, ports)
        return Outcome(wake=tuple(_user_keys(users)))
    if resource["metadata"].get("deletionTimestamp"):
        return _deleted(key, resource, ports)
    before = (resource.get("status") or {}).get("state")
    outcome = _reconcile(key, resource, ports)
    if outcome.state == before:
        return outcome
    # the servers woken below must not read what the watcher has not seen yet
    ports.databases.record(key.namespace, key.name, outcome.state or "")
    # the DeviceServers using this TANGO host look again at once, whichever way it went:
    # to Running they may start; away from it they report why they wait
    return replace(outcome, wake=tuple(_user_keys(_users_of(key, ports))))


def _deleted(key: Key, resource: JsonDict, ports: Ports) -> Outcome:
    """Keep the TANGO DB's claim, release the finalizer; the servers using it are woken.

    The finalizer is there only to retain the claim (``persistentVolumeClaimRetentionPolicy``
    Retain, the default): its ownerReference goes before garbage collection could delete it.
    Everything else is the garbage collector's.
    """
    users = _users_of(key, ports)
    _warn_users(resource, users, ports)
    # the servers woken below must not read the state the watcher recorded before
    ports.databases.record(key.namespace, key.name, DATABASEDS_DELETING)
    if crd.FINALIZER in (resource["metadata"].get("finalizers") or []):
        _retain_claim(key, resource, ports)
    finalizers.remove(ports.kube, resource)
    return Outcome(wake=tuple(_user_keys(users)))


def _retain_claim(key: Key, resource: JsonDict, ports: Ports) -> None:
    """Take this DatabaseDS's ownerReference off its TANGO DB claim, unless told to delete it.

    A spec that no longer parses keeps the data (the safe side). The claim is adopted again
    by a DatabaseDS of the same name: its apply sets the ownerReference of the new one.
    """
    try:
        retain = crd.parse_database_ds(resource).retain_data
    except crd.SpecError:
        retain = True
    if not retain:
        return
    name = names.persistent_volume_claim(key.name, "-tangodb-storage")
    claim = ports.kube.get("v1", "PersistentVolumeClaim", key.namespace, name)
    uid = resource["metadata"].get("uid")
    if claim is None or claim["metadata"].get("deletionTimestamp"):
        return
    owners = claim["metadata"].get("ownerReferences") or []
    others = [owner for owner in owners if owner.get("uid") != uid]
    if len(others) == len(owners):
        return
    patch = {
        "metadata": {
            "ownerReferences": others or None,
            "resourceVersion": claim["metadata"]["resourceVersion"],
        }
    }
    ports.kube.merge_patch(claim, patch)
    ports.kube.emit_event(
        resource,
        event_type="Normal",
        reason="ClaimRetained",
        message=f"PersistentVolumeClaim {name} (the TANGO DB's data) kept: "
        "persistentVolumeClaimRetentionPolicy.whenDeleted is Retain; a DatabaseDS of this "
        "name adopts it again, or delete it to free the volume",
    )


def _warn_users(resource: JsonDict, users: list[JsonDict], ports: Ports) -> None:
    """A Warning Event on the deleted DatabaseDS naming its users, and one on each user."""
    if not users:
        return
    name = resource["metadata"]["name"]
    names_of_users = ", ".join(sorted(u["metadata"]["name"] for u in users))
    ports.kube.emit_event(
        resource,
        event_type="Warning",
        reason="DeletedWhileInUse",
        message=f"deleted while DeviceServers use it as their TANGO host: {names_of_users}; "
        "they wait until a DatabaseDS of this name is Running again",
    )
    for user in users:
        ports.kube.emit_event(
            user,
            event_type="Warning",
            reason="DatabaseDSDeleted",
            message=f"its TANGO host, DatabaseDS {name}, was deleted; waiting for it to return",
        )


def _reconcile(key: Key, resource: JsonDict, ports: Ports) -> Outcome:
    kube = ports.kube
    try:
        spec = crd.parse_database_ds(resource)
    except crd.SpecError as exc:
        message = str(exc)
        publish(
            kube,
            resource,
            state="Error",
            message=message,
            conditions=[Condition("Ready", False, "InvalidSpec", message)],
        )
        return Outcome(state="Error", message=message)

    # the finalizer keeps the TANGO DB's claim from the garbage collector (see _deleted)
    if spec.use_pv and spec.retain_data:
        resource = finalizers.ensure(kube, resource)
    else:  # Delete, or no claim: nothing to hold the deletion for (any more)
        resource = finalizers.remove(kube, resource)
    records = ports.ledger.records(key)
    secret_name = _credentials(key, resource, spec, ports, records)
    if secret_name is None:
        message = f"waiting for Secret {spec.credentials_secret} (spec.credentialsSecret)"
        return _building(resource, ports, message, requeue=True)

    tangodb_name = names.statefulset(key.name, "-tangodb")
    tangodb = children.known_status(records, key.namespace, "StatefulSet", tangodb_name, ports)
    current = children.known_state(records, "StatefulSet", names.statefulset(key.name))
    started = bool(current and int(current.detail.get("replicas") or 0) > 0)
    replicas = 1 if started or _ready(tangodb) else 0
    manifests = rendering.render_database_ds(
        resource,
        spec,
        credentials_secret=secret_name,
        databaseds_replicas=replicas,
        network_policy=ports.settings.network_policy,
    )
    applied = children.apply(key, manifests, ports, records)
    databaseds = children.current_status(
        applied, key.namespace, "StatefulSet", names.statefulset(key.name), ports
    )
    tango_host = f"{key.name}.{key.namespace}.svc.{spec.cluster_domain}:{crd.DATABASEDS_PORT}"
    if replicas == 0:
        return _building(
            resource,
            ports,
            "waiting for the TANGO DB (MariaDB) pod to be ready",
            tango_host=tango_host,
        )
    if not _ready(databaseds):
        return _building(
            resource, ports, "waiting for the DataBaseds pod to be ready", tango_host=tango_host
        )
    probe = ports.tango.database_alive(ports.settings.reachable(tango_host))
    if not probe.ok:
        return _building(
            resource,
            ports,
            f"DataBaseds not answering yet: {probe.reason}",
            requeue=True,
            tango_host=tango_host,
        )
    publish(
        kube,
        resource,
        state="Running",
        message="TANGO database running",
        conditions=[Condition("Ready", True, "Running", "DataBaseds answers")],
        extra={"tangoHost": tango_host},
    )
    return Outcome(state="Running")


def _ready(statefulset: ChildState | None) -> bool:
    return bool(statefulset and int(statefulset.detail.get("readyReplicas") or 0) > 0)


def _credentials(
    key: Key,
    resource: JsonDict,
    spec: crd.DatabaseDSSpec,
    ports: Ports,
    records: dict[str, ChildRecord],
) -> str | None:
    """The name of the Secret holding the MariaDB passwords, or None while it is missing.

    The operator's own Secret is created once: read first, and created only when absent
    (the ledger remembers that it exists, so later passes neither read nor write it).
    """
    namespace = resource["metadata"]["namespace"]
    if spec.credentials_secret:
        found = ports.kube.get("v1", "Secret", namespace, spec.credentials_secret)
        return spec.credentials_secret if found is not None else None
    name = names.secret(resource["metadata"]["name"], "-tangodb-credentials")
    child = f"Secret/{name}"
    if child in records and records[child].applied_version is not None:
        return name
    existing = ports.kube.get("v1", "Secret", namespace, name)
    if existing is not None:
        ports.ledger.applied(key, {child: state_of(existing)})
        return name
    created = ports.kube.create_if_absent(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": crd.MANAGED_BY},
                "ownerReferences": [rendering.owner_reference(resource)],
            },
            "type": "Opaque",
            # generated once: create_if_absent never overwrites an existing Secret
            "stringData": {entry: secrets.token_urlsafe(24) for entry in PASSWORD_KEYS},
        }
    )
    if created is not None:
        ports.ledger.applied(key, {child: state_of(created)})
    return name


def _building(
    resource: JsonDict,
    ports: Ports,
    message: str,
    *,
    requeue: bool = False,
    tango_host: str | None = None,
) -> Outcome:
    publish(
        ports.kube,
        resource,
        state="Building",
        message=message,
        conditions=[Condition("Ready", False, "Building", message)],
        extra={"tangoHost": tango_host},
    )
    return Outcome(
        state="Building", requeue_after=ports.settings.pending_poll_seconds if requeue else None
    )


def _users_of(key: Key, ports: Ports) -> list[JsonDict]:
    """DeviceServers in the namespace whose ``databaseds`` is this DatabaseDS."""
    return [
        item
        for item in ports.kube.list_custom(crd.Kind.DEVICE_SERVER, key.namespace)
        if str((item.get("spec") or {}).get("databaseds") or "").partition(":")[0] == key.name
    ]


def _user_keys(users: list[JsonDict]) -> list[Key]:
    return [
        Key(crd.Kind.DEVICE_SERVER.value, u["metadata"]["namespace"], u["metadata"]["name"])
        for u in users
    ]
