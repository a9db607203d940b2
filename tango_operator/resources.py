"""The one table of Kubernetes resource types the operator reads, writes or watches.

Each entry maps an ``(apiVersion, kind)`` to the REST path of its collection. The watcher
builds its list/watch sources from it (``watcher.main``), the workers their request paths
(``workers.kube``); the custom resources' group and version come from ``tango_operator.crd``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tango_operator import crd


@dataclass(frozen=True)
class ResourceType:
    """One resource type: ``apiVersion`` (``v1``, ``apps/v1``), ``kind`` and ``plural``."""

    api_version: str
    kind: str
    plural: str

    @property
    def prefix(self) -> str:
        """``/api/v1`` for the core group, ``/apis/<group>/<version>`` otherwise."""
        if "/" in self.api_version:
            return f"/apis/{self.api_version}"
        return f"/api/{self.api_version}"

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The collection (all namespaces without ``namespace``), or one object in it."""
        collection = (
            f"{self.prefix}/namespaces/{namespace}/{self.plural}"
            if namespace
            else f"{self.prefix}/{self.plural}"
        )
        return f"{collection}/{name}" if name else collection


CONFIG_MAP = ResourceType("v1", "ConfigMap", "configmaps")
SECRET = ResourceType("v1", "Secret", "secrets")
SERVICE = ResourceType("v1", "Service", "services")
PERSISTENT_VOLUME_CLAIM = ResourceType("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
EVENT = ResourceType("v1", "Event", "events")
NAMESPACE = ResourceType("v1", "Namespace", "namespaces")
POD = ResourceType("v1", "Pod", "pods")
STATEFUL_SET = ResourceType("apps/v1", "StatefulSet", "statefulsets")
LEASE = ResourceType("coordination.k8s.io/v1", "Lease", "leases")
NETWORK_POLICY = ResourceType("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
DEVICE_SERVER = ResourceType(
    crd.API_VERSION, crd.Kind.DEVICE_SERVER.value, crd.Kind.DEVICE_SERVER.plural
)
DATABASE_DS = ResourceType(crd.API_VERSION, crd.Kind.DATABASE_DS.value, crd.Kind.DATABASE_DS.plural)

CUSTOM_RESOURCES = (DEVICE_SERVER, DATABASE_DS)
"""The operator's own kinds."""
CHILDREN = (STATEFUL_SET, SERVICE, CONFIG_MAP, PERSISTENT_VOLUME_CLAIM)
"""The kinds of child the operator creates (``templates/``): watched to notice drift."""
OPTIONAL_CHILDREN = (NETWORK_POLICY,)
"""Kinds of child only a setting creates (``TANGO_OPERATOR_NETWORK_POLICY``): watched only
with it, and deleted by the workers once it is off (``workers.reconcile.children``)."""

_BY_TYPE = {
    (entry.api_version, entry.kind): entry
    for entry in (
        CONFIG_MAP,
        SECRET,
        SERVICE,
        PERSISTENT_VOLUME_CLAIM,
        EVENT,
        NAMESPACE,
        POD,
        STATEFUL_SET,
        LEASE,
        NETWORK_POLICY,
        DEVICE_SERVER,
        DATABASE_DS,
    )
}


def lookup(api_version: str, kind: str) -> ResourceType | None:
    """The entry for ``(api_version, kind)``, or None for a type the operator does not use."""
    return _BY_TYPE.get((api_version, kind))
