"""The state of one emulated apiserver, and what a resource request is aimed at.

:class:`Emulator` owns the store, the type registry, the REST semantics (``kubeemu.api``), the
audit log, the fault injector and the fake controllers.  It boots the four namespaces a fresh
cluster has and keeps the registry in step with the CustomResourceDefinitions in the store.
The HTTP layer (``kubeemu.server`` and the handlers it routes to: ``kubeemu.watch``,
``kubeemu.scale``, ``kubeemu.admin``) reads and drives it; nothing here knows about HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeemu.api import Api, WriteOptions
from kubeemu.audit import AuditLog
from kubeemu.controllers import Controllers, ControllerSettings
from kubeemu.faults import FaultInjector
from kubeemu.registry import Registry, ResourceType
from kubeemu.store import Change, Store

JsonDict = dict[str, Any]

DEFAULT_WATCH_TIMEOUT = 1800.0
BOOT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass
class Target:
    """A resource request decoded from the URL."""

    rtype: ResourceType
    namespace: str
    name: str
    subresource: str

    @property
    def storage_namespace(self) -> str:
        return self.namespace if self.rtype.namespaced else ""


@dataclass
class EmulatorSettings:
    """Server-wide settings: watch bookmark interval and the default watch timeout (seconds)."""

    bookmark_interval: float = 60.0
    default_watch_timeout: float = DEFAULT_WATCH_TIMEOUT


class Emulator:
    """All state of one emulated apiserver; ``kubeemu.server.app`` serves it over HTTP."""

    def __init__(
        self,
        settings: EmulatorSettings | None = None,
        seed: int | None = None,
        controller_settings: ControllerSettings | None = None,
    ):
        self.settings = settings or EmulatorSettings()
        self.store = Store()
        self.registry = Registry()
        self.api = Api(self.store, self.registry)
        self.audit = AuditLog()
        self.faults = FaultInjector(seed)
        self.controllers = Controllers(self.api, controller_settings)
        self._openapi_cache: dict[str, tuple[int, JsonDict]] = {}
        self._registry_generation = 0
        self.store.add_listener(self._track_crds)
        self._bootstrap_namespaces()

    def _bootstrap_namespaces(self) -> None:
        namespaces = self.registry.get("", "v1", "namespaces")
        assert namespaces is not None
        for name in BOOT_NAMESPACES:
            self.api.create(
                namespaces,
                "",
                {"metadata": {"name": name}},
                WriteOptions(field_manager="kube-apiserver"),
            )

    def _track_crds(self, change: Change) -> None:
        """Serve a CRD's versions once stored, stop serving them once it is gone."""
        if change.group_resource != ("apiextensions.k8s.io", "customresourcedefinitions"):
            return
        if change.event_type == "DELETED":
            self.registry.remove_crd(change.name)
        else:
            self.registry.install_crd(change.obj)
        if _storage_rebuilt(change):
            # kube-apiserver tears the resource's storage down and builds it anew: the open
            # watches of its custom resources end, their clients watch again
            spec = change.obj.get("spec") or {}
            plural = str((spec.get("names") or {}).get("plural") or "")
            self.store.drop_all_watches((str(spec.get("group") or ""), plural))
        self._registry_generation += 1
        self._openapi_cache.clear()

    def cached_openapi(self, key: str, build: Callable[[], JsonDict]) -> JsonDict:
        """The OpenAPI document ``key``, built again only after the set of types changed."""
        cached = self._openapi_cache.get(key)
        if cached is None or cached[0] != self._registry_generation:
            cached = (self._registry_generation, build())
            self._openapi_cache[key] = cached
        return cached[1]


def _storage_rebuilt(change: Change) -> bool:
    """Whether a CRD's write makes kube-apiserver build its custom resources' storage anew.

    On a change of the CRD's spec or accepted names (crdHandler.updateCustomResourceDefinition),
    and once the CRD is gone (its instances deleted first, their watchers told).
    """
    if change.event_type == "DELETED":
        return True
    if change.old is None:
        return False
    old, new = change.old, change.obj
    accepted = [(crd.get("status") or {}).get("acceptedNames") for crd in (old, new)]
    return old.get("spec") != new.get("spec") or accepted[0] != accepted[1]
