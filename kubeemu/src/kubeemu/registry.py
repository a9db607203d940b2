"""The emulator's type registry: which resources exist and how each behaves.

Built-in types come from the table in this module (names, scope, verbs, subresources, whether they
carry ``metadata.generation``) plus their Kubernetes 1.31 schemas from ``kubernetes-validate``.
Custom resources are added and removed as CustomResourceDefinitions are established and deleted.
Discovery, OpenAPI, the CRUD handlers and the fake controllers all read from here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kubeemu.schema import SchemaNode, builtin_schema, crd_schema

JsonDict = dict[str, Any]

ALL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)

# apiextensions-apiserver lists a custom resource's verbs in this order, not sorted
CUSTOM_RESOURCE_VERBS: tuple[str, ...] = (
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
)


@dataclass(frozen=True)
class ResourceType:
    """One served resource (a group/version/plural) and the rules the emulator applies to it."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    has_status: bool = False
    has_scale: bool = False
    has_log: bool = False
    """Serves ``<name>/log`` (pods: ``kubeemu.podlogs``)."""
    has_generation: bool = False
    crd_name: str | None = None
    printer_columns: tuple[JsonDict, ...] = ()
    schema: SchemaNode = field(default_factory=lambda: SchemaNode(None), compare=False)
    storage_group: str | None = None
    """Set when objects are stored under another group (events.k8s.io Events live with core's)."""
    scale_paths: tuple[str, str, str | None] | None = None
    """For custom resources with a scale subresource: (specReplicasPath, statusReplicasPath,
    labelSelectorPath)."""
    storage_version: str = ""
    """For custom resources: the version the CRD stores (every served version is read from and
    written to it; empty for built-ins, whose served version is the one hashed)."""

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def is_custom(self) -> bool:
        return self.crd_name is not None

    @property
    def group_resource(self) -> tuple[str, str]:
        """The storage key: objects of every type with the same key are the same objects."""
        group = self.group if self.storage_group is None else self.storage_group
        return (group, self.resource)

    def path_prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


def _builtin(
    group: str,
    version: str,
    resource: str,
    kind: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
    status: bool = False,
    scale: bool = False,
    log: bool = False,
    generation: bool = False,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        resource=resource,
        kind=kind,
        namespaced=namespaced,
        singular=kind.lower(),
        short_names=short_names,
        categories=categories,
        verbs=verbs,
        has_status=status,
        has_scale=scale,
        has_log=log,
        has_generation=generation,
        schema=builtin_schema(group, version, kind),
    )


_NAMESPACE_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
_ALL = ("all",)


def builtin_types() -> list[ResourceType]:
    """The built-in resources the emulator serves (those an operator and its chart touch)."""
    return [
        _builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            namespaced=False,
            short_names=("ns",),
            verbs=_NAMESPACE_VERBS,
            status=True,
        ),
        _builtin("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
        _builtin("", "v1", "secrets", "Secret"),
        _builtin(
            "", "v1", "services", "Service", short_names=("svc",), categories=_ALL, status=True
        ),
        _builtin(
            "", "v1", "pods", "Pod", short_names=("po",), categories=_ALL, status=True, log=True
        ),
        _builtin("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
        _builtin("", "v1", "events", "Event", short_names=("ev",)),
        _builtin("", "v1", "endpoints", "Endpoints", short_names=("ep",)),
        _builtin(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            short_names=("pvc",),
            status=True,
        ),
        _builtin(
            "",
            "v1",
            "persistentvolumes",
            "PersistentVolume",
            namespaced=False,
            short_names=("pv",),
            status=True,
        ),
        _builtin("", "v1", "nodes", "Node", namespaced=False, short_names=("no",), status=True),
        _builtin("", "v1", "resourcequotas", "ResourceQuota", short_names=("quota",), status=True),
        _builtin("", "v1", "limitranges", "LimitRange", short_names=("limits",)),
        _builtin(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            short_names=("sts",),
            categories=_ALL,
            status=True,
            scale=True,
            generation=True,
        ),
        _builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            short_names=("deploy",),
            categories=_ALL,
            status=True,
            scale=True,
            generation=True,
        ),
        _builtin(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            short_names=("rs",),
            categories=_ALL,
            status=True,
            scale=True,
            generation=True,
        ),
        _builtin(
            "apps",
            "v1",
            "daemonsets",
            "DaemonSet",
            short_names=("ds",),
            categories=_ALL,
            status=True,
            generation=True,
        ),
        _builtin("apps", "v1", "controllerrevisions", "ControllerRevision"),
        _builtin("batch", "v1", "jobs", "Job", categories=_ALL, status=True, generation=True),
        _builtin(
            "batch",
            "v1",
            "cronjobs",
            "CronJob",
            short_names=("cj",),
            categories=_ALL,
            status=True,
            generation=True,
        ),
        _builtin(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            short_names=("hpa",),
            categories=_ALL,
            status=True,
        ),
        _builtin(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            short_names=("pdb",),
            status=True,
            generation=True,
        ),
        _builtin("coordination.k8s.io", "v1", "leases", "Lease"),
        dataclasses.replace(
            _builtin("events.k8s.io", "v1", "events", "Event", short_names=("ev",)),
            storage_group="",
        ),
        _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        _builtin(
            "rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False
        ),
        _builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            namespaced=False,
        ),
        _builtin(
            "networking.k8s.io",
            "v1",
            "ingresses",
            "Ingress",
            short_names=("ing",),
            status=True,
            generation=True,
        ),
        _builtin(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            short_names=("netpol",),
            generation=True,
        ),
        _builtin(
            "storage.k8s.io",
            "v1",
            "storageclasses",
            "StorageClass",
            namespaced=False,
            short_names=("sc",),
        ),
        _builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            namespaced=False,
            short_names=("crd", "crds"),
            status=True,
            generation=True,
        ),
    ]


def custom_resource_types(crd: JsonDict) -> list[ResourceType]:
    """The served versions of an established CRD, as resource types."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    group = str(spec.get("group", ""))
    kind = str(names.get("kind", ""))
    storage = next(
        (str(v.get("name", "")) for v in spec.get("versions", []) if v.get("storage")), ""
    )
    types: list[ResourceType] = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        scale = subresources.get("scale")
        scale_paths: tuple[str, str, str | None] | None = None
        if isinstance(scale, dict):
            scale_paths = (
                str(scale.get("specReplicasPath", ".spec.replicas")),
                str(scale.get("statusReplicasPath", ".status.replicas")),
                scale.get("labelSelectorPath"),
            )
        types.append(
            ResourceType(
                group=group,
                version=str(version.get("name", "")),
                resource=str(names.get("plural", "")),
                kind=kind,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=str(names.get("singular") or kind.lower()),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                has_status="status" in subresources,
                has_scale=scale_paths is not None,
                has_generation=True,
                verbs=CUSTOM_RESOURCE_VERBS,
                crd_name=str(crd.get("metadata", {}).get("name", "")),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                schema=crd_schema((version.get("schema") or {}).get("openAPIV3Schema")),
                scale_paths=scale_paths,
                storage_version=storage,
            )
        )
    return types


class Registry:
    """Lookup of resource types by group/version/resource and by apiVersion/kind."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._versions: dict[tuple[str, str], list[ResourceType]] = {}
        for resource_type in builtin_types():
            self._add(resource_type)

    def _add(self, resource_type: ResourceType) -> None:
        key = (resource_type.group, resource_type.version, resource_type.resource)
        self._types[key] = resource_type
        self._versions.clear()

    def install_crd(self, crd: JsonDict) -> None:
        """Serve (or re-serve, after an update) the versions of an established CRD."""
        crd_name = str(crd.get("metadata", {}).get("name", ""))
        self.remove_crd(crd_name)
        for resource_type in custom_resource_types(crd):
            self._add(resource_type)

    def remove_crd(self, crd_name: str) -> None:
        for key in [k for k, t in self._types.items() if t.crd_name == crd_name]:
            del self._types[key]
        self._versions.clear()

    def get(self, group: str, version: str, resource: str) -> ResourceType | None:
        return self._types.get((group, version, resource))

    def is_builtin_group(self, group: str) -> bool:
        """Whether a built-in kind is in ``group``.

        kube-apiserver answers an unknown path of such a group with a Status; those of any
        other group end at a plain-text 404.
        """
        return not group or any(t.group == group and not t.is_custom for t in self._types.values())

    def versions_of(self, group: str, resource: str) -> list[ResourceType]:
        """Every served version of one group/resource (they share one storage).

        Remembered until the set of types changes: the fake controllers ask on every change.
        """
        found = self._versions.get((group, resource))
        if found is None:
            found = self._versions[(group, resource)] = [
                t for t in self._types.values() if t.group_resource == (group, resource)
            ]
        return list(found)

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(sorted(self._types.values(), key=lambda t: (t.group, t.version, t.resource)))

    def group_versions(self) -> dict[str, list[str]]:
        """Group name → its versions, in a deterministic order (core group is ``""``)."""
        groups: dict[str, list[str]] = {}
        for resource_type in self:
            versions = groups.setdefault(resource_type.group, [])
            if resource_type.version not in versions:
                versions.append(resource_type.version)
        for versions in groups.values():
            versions.sort(key=_version_priority)
        return groups


_VERSION = re.compile(r"v(\d+)(?:(alpha|beta)(\d+))?")


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA before beta before alpha, higher numbers first."""
    match = _VERSION.fullmatch(version)
    if not match:
        return (3, 0, 0)
    major, stage, minor = match.groups()
    stage_rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (stage_rank, -int(major), -int(minor or 0))
