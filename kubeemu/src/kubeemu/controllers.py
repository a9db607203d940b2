"""Fake cluster controllers: what kube-controller-manager and the kubelet would do.

They observe committed changes (a store listener that only queues keys) and act later on the
event loop, writing back through :class:`~kubeemu.api.Api` like any client would:

* garbage collection by ownerReference uid (Background, Foreground, Orphan; dangling owners);
* namespace finalization (Terminating → content deleted → namespace gone);
* StatefulSet → Pods → readiness, in ``instant`` mode (pods Running and Ready at once),
  ``manual`` mode (pods stay Pending until a test marks them ready or failed), or ``off``;
* pod deletion: ``immediate`` (no kubelet), or ``hold`` (Terminating until a DELETE with
  ``gracePeriodSeconds=0`` or a switch back to ``immediate``);
* scheduling (``kubeemu.scheduler``): a pod that waits for a Node is bound to one that can
  take it, once there is one (nothing happens without Nodes);
* CRD deletion (apiextensions' ``customresourcecleanup`` finalizer): instances are deleted,
  then the CRD goes.

Each is switchable through :class:`ControllerSettings` (admin API ``/_emu/controllers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from kubeemu import errors, scheduler
from kubeemu.api import CRD_CLEANUP_FINALIZER, CRDS, Api, DeleteOptions, WriteOptions
from kubeemu.clone import clone
from kubeemu.registry import ResourceType
from kubeemu.store import Change, GroupResource

JsonDict = dict[str, Any]
log = logging.getLogger("kubeemu.controllers")

MANAGER = "kube-controller-manager"
KUBELET = "kubelet"
PODS: GroupResource = ("", "pods")
STATEFULSETS: GroupResource = ("apps", "statefulsets")
NAMESPACES: GroupResource = ("", "namespaces")
NODES: GroupResource = ("", "nodes")
StoreKey = tuple[GroupResource, str, str]
WorkItem = tuple[str, StoreKey, str]


BATCH = 64
"""Controller work items handled per turn of the event loop."""


@dataclass
class ControllerSettings:
    """The fake controllers' modes, set from the command line or ``PUT /_emu/controllers``."""

    statefulset: str = "instant"  # instant | manual | off
    garbage_collector: bool = True
    namespaces: bool = True
    pod_deletion: str = "immediate"  # immediate | hold
    scheduler: bool = True

    def update(self, data: dict[str, Any]) -> None:
        for key, value in data.items():
            if key not in self.__dataclass_fields__:
                raise ValueError(f"unknown controller setting {key!r}")
            setattr(self, key, value)
        if self.statefulset not in ("instant", "manual", "off"):
            raise ValueError("statefulset must be instant, manual or off")
        if self.pod_deletion not in ("immediate", "hold"):
            raise ValueError("pod_deletion must be immediate or hold")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Controllers:
    """Runs the fake controllers off one work queue of store keys."""

    def __init__(self, api: Api, settings: ControllerSettings | None = None):
        self.api = api
        self.settings = settings or ControllerSettings()
        self._queue: asyncio.Queue[WorkItem] | None = None
        self._pending: set[WorkItem] = set()
        self._dependents: dict[str, set[StoreKey]] = {}
        self._uids: dict[str, StoreKey] = {}
        self._task: asyncio.Task[None] | None = None
        api.store.add_listener(self._observe)
        api.hold_pod_deletion = lambda: self.settings.pod_deletion == "hold"

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._queue = asyncio.Queue()
        for item in sorted(self._pending):
            self._queue.put_nowait(item)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _enqueue(self, work: str, key: StoreKey, uid: str = "") -> None:
        item = (work, key, uid)
        if item in self._pending:
            return
        self._pending.add(item)
        if self._queue is not None:
            self._queue.put_nowait(item)

    async def _run(self) -> None:
        """Work the queue; up to ``BATCH`` items per turn of the event loop.

        One item per turn let a busy server (hundreds of requests ready each turn) starve the
        controllers: StatefulSets became ready seconds late, which a client then measured
        instead of itself. A batch keeps them as prompt as a real controller manager.
        """
        assert self._queue is not None
        while True:
            self._work(await self._queue.get())
            for _ in range(BATCH - 1):
                if self._queue.empty():
                    break
                self._work(self._queue.get_nowait())
            await asyncio.sleep(0)

    def _work(self, item: tuple[str, StoreKey, str]) -> None:
        self._pending.discard(item)
        work, key, uid = item
        try:
            self._handle(work, key, uid)
        except errors.ApiError as exc:
            log.debug("controller %s on %s: %s", work, key, exc.message)
        except Exception:
            log.exception("controller %s on %s failed", work, key)

    def resync_all(self) -> None:
        """Re-examine every StatefulSet and Terminating pod (after a settings change)."""
        for group_resource, obj in self.api.store.all_objects():
            meta = obj["metadata"]
            if group_resource == STATEFULSETS:
                self._enqueue("statefulset", (STATEFULSETS, meta["namespace"], meta["name"]))
            elif group_resource == PODS and meta.get("deletionTimestamp"):
                self._enqueue("finalize", (PODS, meta["namespace"], meta["name"]))
            elif group_resource == PODS and scheduler.waits_for_node(obj):
                self._enqueue("schedule", (PODS, meta["namespace"], meta["name"]))

    # --- observation (synchronous, inside the write) --------------------------------------------
    def _observe(self, change: Change) -> None:
        key: StoreKey = (change.group_resource, change.namespace, change.name)
        meta = change.obj.get("metadata", {})
        uid = str(meta.get("uid", ""))
        self._index(change, key, uid)
        if change.event_type == "DELETED":
            self._enqueue("orphans", key, uid)
            # an owner in foreground deletion may have been waiting for this dependent
            for owner in meta.get("ownerReferences") or []:
                owner_key = self._uids.get(str(owner.get("uid")))
                if owner_key is not None:
                    self._enqueue("finalize", owner_key)
            if change.namespace:
                self._enqueue("namespace", (NAMESPACES, "", change.namespace))
            # a CRD being deleted waits for its last instance
            custom = self.api.registry.versions_of(*change.group_resource)
            if custom and custom[0].crd_name:
                self._enqueue("finalize", (CRDS, "", custom[0].crd_name))
        elif meta.get("deletionTimestamp"):
            self._enqueue("finalize", key)
        elif meta.get("ownerReferences"):
            self._enqueue("dangling", key)
        if change.group_resource == STATEFULSETS:
            self._enqueue("statefulset", key)
        elif change.group_resource == PODS:
            for owner in meta.get("ownerReferences") or []:
                if owner.get("kind") == "StatefulSet" and owner.get("controller"):
                    self._enqueue("statefulset", (STATEFULSETS, change.namespace, owner["name"]))
            if change.event_type != "DELETED" and scheduler.waits_for_node(change.obj):
                self._enqueue("schedule", key)
        elif change.group_resource == NODES and change.event_type != "DELETED":
            self._enqueue("schedule", key)  # every waiting pod may fit now
        elif change.group_resource == NAMESPACES and meta.get("deletionTimestamp"):
            self._enqueue("namespace", key)

    def _index(self, change: Change, key: StoreKey, uid: str) -> None:
        old_owners = {
            o.get("uid")
            for o in ((change.old or {}).get("metadata", {}).get("ownerReferences") or [])
        }
        new_owners: set[Any] = set()
        if change.event_type != "DELETED":
            self._uids[uid] = key
            new_owners = {
                o.get("uid") for o in (change.obj["metadata"].get("ownerReferences") or [])
            }
        else:
            self._uids.pop(uid, None)
        for owner_uid in old_owners - new_owners:
            self._dependents.get(str(owner_uid), set()).discard(key)
        for owner_uid in new_owners:
            self._dependents.setdefault(str(owner_uid), set()).add(key)

    # --- work -----------------------------------------------------------------------------------
    def _handle(self, work: str, key: StoreKey, uid: str) -> None:
        if work == "orphans" and self.settings.garbage_collector:
            self._delete_dependents_of(uid, policy="Background")
        elif work == "finalize":
            self._finalize(key)
        elif work == "dangling" and self.settings.garbage_collector:
            self._collect_if_dangling(key)
        elif work == "statefulset":
            self._sync_statefulset(key)
        elif work == "namespace" and self.settings.namespaces:
            self._finalize_namespace(key[2])
        elif work == "schedule" and self.settings.scheduler:
            waiting = scheduler.waiting_pods(self.api) if key[0] == NODES else [key[1:]]
            for namespace, name in waiting:
                scheduler.schedule(self.api, namespace, name)

    def _rtype(self, group_resource: GroupResource) -> ResourceType | None:
        versions = self.api.registry.versions_of(*group_resource)
        return versions[0] if versions else None

    def _get(self, key: StoreKey) -> JsonDict | None:
        return self.api.store.get(key[0], key[1], key[2])

    def _delete(self, key: StoreKey, policy: str = "Background") -> None:
        rtype = self._rtype(key[0])
        if rtype is None:
            return
        with contextlib.suppress(errors.ApiError):
            self.api.delete(rtype, key[1], key[2], DeleteOptions(propagation_policy=policy))

    def _delete_dependents_of(self, owner_uid: str, policy: str) -> None:
        for dependent in sorted(self._dependents.get(owner_uid, set())):
            obj = self._get(dependent)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                continue
            owners = list(obj["metadata"].get("ownerReferences") or [])
            remaining = [
                o for o in owners if o.get("uid") != owner_uid and o.get("uid") in self._uids
            ]
            if remaining:
                self._set_owner_references(
                    dependent, obj, [o for o in owners if o.get("uid") != owner_uid]
                )
            else:
                self._delete(dependent, policy)

    def _collect_if_dangling(self, key: StoreKey) -> None:
        obj = self._get(key)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        owners = obj["metadata"].get("ownerReferences") or []
        if owners and all(str(o.get("uid")) not in self._uids for o in owners):
            self._delete(key)

    def _finalize(self, key: StoreKey) -> None:
        """Work the GC finalizers (foregroundDeletion, orphan) of an object being deleted."""
        obj = self._get(key)
        if obj is None:
            return
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        uid = str(meta.get("uid"))
        if key[0] == PODS and self.settings.pod_deletion == "immediate" and not finalizers:
            if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds"):
                self._release_pod(key)  # held while deletions were held
            return
        if CRD_CLEANUP_FINALIZER in finalizers and meta.get("deletionTimestamp"):
            self._clean_up_custom_resources(key, obj)
            return
        if "orphan" in finalizers and self.settings.garbage_collector:
            for dependent in sorted(self._dependents.get(uid, set())):
                child = self._get(dependent)
                if child is not None:
                    owners = child["metadata"].get("ownerReferences") or []
                    self._set_owner_references(
                        dependent, child, [o for o in owners if o.get("uid") != uid]
                    )
            self._remove_finalizer(key, obj, "orphan")
        elif "foregroundDeletion" in finalizers and self.settings.garbage_collector:
            self._delete_dependents_of(uid, policy="Foreground")
            blocking = [
                d
                for d in self._dependents.get(uid, set())
                if self._get(d) is not None
                and any(
                    o.get("uid") == uid and o.get("blockOwnerDeletion")
                    for o in (self._get(d) or {}).get("metadata", {}).get("ownerReferences") or []
                )
            ]
            if not blocking:
                self._remove_finalizer(key, obj, "foregroundDeletion")

    def _release_pod(self, key: StoreKey) -> None:
        rtype = self._rtype(PODS)
        if rtype is not None:
            with contextlib.suppress(errors.ApiError):
                self.api.delete(rtype, key[1], key[2], DeleteOptions(grace_period_seconds=0))

    def _clean_up_custom_resources(self, key: StoreKey, crd: JsonDict) -> None:
        """Delete every instance of a CRD being deleted; drop the finalizer once none is left."""
        spec = crd.get("spec", {})
        instances: GroupResource = (str(spec.get("group", "")), str(spec["names"]["plural"]))
        for obj in self.api.store.list(instances):
            meta = obj["metadata"]
            if not meta.get("deletionTimestamp"):
                self._delete((instances, str(meta.get("namespace") or ""), meta["name"]))
        if not self.api.store.list(instances):
            self._remove_finalizer(key, crd, CRD_CLEANUP_FINALIZER)

    def _set_owner_references(self, key: StoreKey, obj: JsonDict, owners: list[JsonDict]) -> None:
        rtype = self._rtype(key[0])
        if rtype is None:
            return
        updated = clone(obj)
        if owners:
            updated["metadata"]["ownerReferences"] = owners
        else:
            updated["metadata"].pop("ownerReferences", None)
        with contextlib.suppress(errors.ApiError):
            self.api.update(
                rtype, key[1], key[2], updated, None, WriteOptions(field_manager=MANAGER)
            )

    def _remove_finalizer(self, key: StoreKey, obj: JsonDict, finalizer: str) -> None:
        rtype = self._rtype(key[0])
        if rtype is None:
            return
        updated = clone(obj)
        updated["metadata"]["finalizers"] = [
            f for f in updated["metadata"].get("finalizers") or [] if f != finalizer
        ]
        with contextlib.suppress(errors.ApiError):
            self.api.update(
                rtype, key[1], key[2], updated, None, WriteOptions(field_manager=MANAGER)
            )
        # dependents waiting on this owner's foreground deletion
        for owner in obj["metadata"].get("ownerReferences") or []:
            owner_key = self._uids.get(str(owner.get("uid")))
            if owner_key is not None:
                self._enqueue("finalize", owner_key)

    # --- namespaces -----------------------------------------------------------------------------
    def _finalize_namespace(self, name: str) -> None:
        namespace = self.api.store.get(NAMESPACES, "", name)
        if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for group_resource in list(self.api.store.group_resources()):
            if group_resource == NAMESPACES:
                continue
            for obj in self.api.store.list(group_resource, name):
                remaining += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete((group_resource, name, obj["metadata"]["name"]))
        still_there = sum(
            len(self.api.store.list(gr, name))
            for gr in self.api.store.group_resources()
            if gr != NAMESPACES
        )
        if still_there:
            return
        if namespace["metadata"].get("finalizers"):
            return
        final = self.api.store.remove(NAMESPACES, "", name)
        log.debug("namespace %s finalized (%d objects removed)", name, remaining)
        del final

    # --- statefulsets ---------------------------------------------------------------------------
    def _sync_statefulset(self, key: StoreKey) -> None:
        mode = self.settings.statefulset
        if mode == "off":
            return
        _, namespace, name = key
        statefulset = self.api.store.get(STATEFULSETS, namespace, name)
        pods_type = self._rtype(PODS)
        if statefulset is None or pods_type is None:
            return
        if statefulset["metadata"].get("deletionTimestamp"):
            return
        spec = statefulset.get("spec", {})
        replicas = int(spec.get("replicas", 1))
        revision = f"{name}-{_template_hash(spec.get('template', {}))}"
        owned = self._owned_pods(statefulset)
        # OrderedReady (the default) rolls nothing while a pod is not running and ready: the
        # real controller stops at the first unhealthy pod, so a crash-looping pod is never
        # replaced by a template change (kubernetes/kubernetes#67250)
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        rolling = not ordered or all(_pod_ready(pod) for pod in owned.values())
        for index in range(replicas):
            pod_name = f"{name}-{index}"
            pod = owned.pop(pod_name, None)
            if (
                pod is not None
                and rolling
                and _pod_revision(pod) != revision
                and not pod["metadata"].get("deletionTimestamp")
            ):
                self._delete((PODS, namespace, pod_name))
                pod = self.api.store.get(PODS, namespace, pod_name)
            if pod is None:
                self._create_pod(statefulset, index, revision, pods_type)
        for pod_name in owned:
            self._delete((PODS, namespace, pod_name))
        self._update_statefulset_status(statefulset, revision)

    def _owned_pods(self, statefulset: JsonDict) -> dict[str, JsonDict]:
        """The pods ``statefulset`` controls, by name.

        From the owner index (``_dependents``), not a scan of the namespace's pods: with
        thousands of StatefulSets in one namespace every sync scanned thousands of pods, and
        the emulator spent most of its CPU there.
        """
        uid = statefulset["metadata"].get("uid")
        owned: dict[str, JsonDict] = {}
        for group_resource, namespace, name in sorted(self._dependents.get(str(uid), ())):
            if group_resource != PODS:
                continue
            pod = self.api.store.get(PODS, namespace, name)
            if pod is not None and any(
                o.get("uid") == uid and o.get("controller")
                for o in pod["metadata"].get("ownerReferences") or []
            ):
                owned[name] = pod
        return owned

    def _create_pod(
        self, statefulset: JsonDict, index: int, revision: str, pods_type: ResourceType
    ) -> None:
        meta = statefulset["metadata"]
        spec = statefulset.get("spec", {})
        template = clone(spec.get("template", {}))
        pod_name = f"{meta['name']}-{index}"
        labels = dict(template.get("metadata", {}).get("labels") or {})
        labels.update(
            {
                "apps.kubernetes.io/pod-index": str(index),
                "controller-revision-hash": revision,
                "statefulset.kubernetes.io/pod-name": pod_name,
            }
        )
        pod_spec = template.get("spec", {})
        pod_spec["hostname"] = pod_name
        if spec.get("serviceName"):
            pod_spec["subdomain"] = spec["serviceName"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": dict(template.get("metadata", {}).get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "StatefulSet",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": pod_spec,
        }
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        self.api.create(
            pods_type, meta["namespace"], pod, WriteOptions(field_manager=MANAGER), owned=True
        )
        ready = self.settings.statefulset == "instant"
        self.set_pod_state(meta["namespace"], pod_name, "ready" if ready else "pending")

    def set_pod_state(self, namespace: str, name: str, state: str, message: str = "") -> JsonDict:
        """Play the kubelet: ``pending``, ``ready``, ``unready`` or ``failed``."""
        pods_type = self._rtype(PODS)
        pod = self.api.store.get(PODS, namespace, name)
        if pod is None or pods_type is None:
            raise errors.not_found("pods", "", name)
        now = self.api.clock()
        containers = [c.get("name", "") for c in pod.get("spec", {}).get("containers", [])]
        status = _pod_status(state, containers, now, message, pod.get("status", {}))
        result = self.api.update_status(
            pods_type, namespace, name, status, WriteOptions(field_manager=KUBELET)
        )
        return result.body

    def _update_statefulset_status(self, statefulset: JsonDict, revision: str) -> None:
        sts_type = self._rtype(STATEFULSETS)
        if sts_type is None:
            return
        pods = list(self._owned_pods(statefulset).values())
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        ready = [p for p in live if _pod_ready(p)]
        updated_pods = [p for p in live if _pod_revision(p) == revision]
        status: JsonDict = {
            "observedGeneration": statefulset["metadata"].get("generation", 1),
            "replicas": len(live),
            "readyReplicas": len(ready),
            "currentReplicas": len(updated_pods),
            "updatedReplicas": len(updated_pods),
            "availableReplicas": len(ready),
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }
        if not ready:
            del status["readyReplicas"]
        if not ready:
            del status["availableReplicas"]
        if not updated_pods:
            del status["currentReplicas"], status["updatedReplicas"]
        if statefulset.get("status") == status:
            return
        meta = statefulset["metadata"]
        with contextlib.suppress(errors.ApiError):
            self.api.update_status(
                sts_type,
                meta["namespace"],
                meta["name"],
                status,
                WriteOptions(field_manager=MANAGER),
            )


_template_hashes: dict[bytes, str] = {}


def _template_hash(template: JsonDict) -> str:
    """The revision hash of a pod template (memoized: every sync of a StatefulSet asks)."""
    try:
        key: bytes | None = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # beyond orjson: hash without the memo
        key = None
    found = _template_hashes.get(key) if key is not None else None
    if found is None:
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
        found = digest[:10]
        if key is not None:
            if len(_template_hashes) >= 4096:
                _template_hashes.clear()
            _template_hashes[key] = found
    return found


def _pod_revision(pod: JsonDict) -> str:
    return str(pod["metadata"].get("labels", {}).get("controller-revision-hash", ""))


def _pod_ready(pod: JsonDict) -> bool:
    for condition in pod.get("status", {}).get("conditions", []):
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _pod_status(
    state: str, containers: list[str], now: str, message: str, old: JsonDict
) -> JsonDict:
    if state not in ("pending", "ready", "unready", "failed"):
        raise errors.bad_request("pod state must be pending, ready, unready or failed")
    ready = state == "ready"
    running = state in ("ready", "unready")
    phase = {"pending": "Pending", "ready": "Running", "unready": "Running", "failed": "Failed"}[
        state
    ]
    flag = "True" if ready else "False"
    conditions = [
        {
            "type": "PodReadyToStartContainers",
            "status": "True" if running else "False",
            "lastProbeTime": None,
            "lastTransitionTime": now,
        },
        {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
        {"type": "Ready", "status": flag, "lastProbeTime": None, "lastTransitionTime": now},
        {
            "type": "ContainersReady",
            "status": flag,
            "lastProbeTime": None,
            "lastTransitionTime": now,
        },
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": now,
        },
    ]
    if not ready:
        for condition in conditions[2:4]:
            condition["reason"] = "ContainersNotReady"
    container_statuses = []
    for name in containers:
        entry: JsonDict = {
            "name": name,
            "ready": ready,
            "restartCount": 0,
            "started": running,
            "image": "",
            "imageID": "",
        }
        if running:
            entry["state"] = {"running": {"startedAt": now}}
        elif state == "failed":
            entry["state"] = {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "message": message,
                    "finishedAt": now,
                }
            }
        else:
            entry["state"] = {"waiting": {"reason": "ContainerCreating"}}
        container_statuses.append(entry)
    status: JsonDict = {
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": container_statuses,
        "hostIP": "10.0.0.10",
        "podIP": old.get("podIP") or "10.244.0.10",
        "qosClass": "BestEffort",
        "startTime": old.get("startTime") or now,
    }
    if message:
        status["message"] = message
    return status
