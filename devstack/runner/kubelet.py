"""The local kubelet: pods of the operator's StatefulSets in kubeemu → processes here.

Reads pods from the Kubernetes API (list + watch, official client; kubeemu runs with its
StatefulSet controller in ``manual`` mode, so pods wait for a kubelet), keeps one
``LocalPod`` per pod uid, and writes what it observes back to the pod's ``status`` — phase,
conditions, container state, restart count — through the status subresource, as a kubelet
does; kubeemu's StatefulSet controller turns that into ``readyReplicas`` and the watcher into
a reconcile. A pod that disappears (scale down, a new template, the CR deleted) has its
process stopped.

What runs depends on the pod's ``app.kubernetes.io/component`` label, set by the operator's
templates: ``device-server`` and ``databaseds`` pods run their container (``plan``; the
DataBaseds of the images is replaced by PyTango's, keeping its sqlite file under the work
directory), ``database`` (MariaDB) pods are reported ready without a process — PyTango's
DataBaseds needs no MariaDB. Pods without ``app.kubernetes.io/managed-by=tango-operator``
are not this kubelet's.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, watch

from devstack.runner import plan
from devstack.runner.process import LocalPod, Observation, RestartPolicy

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]

SELECTOR = "app.kubernetes.io/managed-by=tango-operator"
COMPONENT = "app.kubernetes.io/component"
RUN_CONTAINER = frozenset({"device-server", "databaseds"})
NO_PROCESS = frozenset({"database"})
MERGE_PATCH = "application/merge-patch+json"


class ApiReader:
    """``plan.ObjectReader`` over the Kubernetes API."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self.core = core

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """Read the data of ConfigMap ``namespace/name``; None when it does not exist."""
        try:
            found = self.core.read_namespaced_config_map(name, namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(found.data or {})

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """Read the decoded data of Secret ``namespace/name``; None when it does not exist."""
        try:
            found = self.core.read_namespaced_secret(name, namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return plan.decode_secret(found.data or {})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_status(pod: JsonDict, observation: Observation, now: str) -> JsonDict:
    """The status a kubelet would write for ``observation`` of the pod's first container."""
    ready = observation.state == "ready"
    running = observation.state in ("ready", "running")
    old = pod.get("status") or {}
    previous = {c.get("type"): c for c in old.get("conditions") or []}

    def condition(kind: str, value: bool) -> JsonDict:
        flag = "True" if value else "False"
        before = previous.get(kind) or {}
        entry: JsonDict = {
            "type": kind,
            "status": flag,
            "lastProbeTime": None,
            "lastTransitionTime": before.get("lastTransitionTime", now)
            if before.get("status") == flag
            else now,
        }
        if not value and kind in ("Ready", "ContainersReady"):
            entry["reason"] = "ContainersNotReady"
        return entry

    container = pod["spec"]["containers"][0]
    state: JsonDict
    if running:
        started = datetime.fromtimestamp(observation.started_at or time.time(), UTC)
        state = {"running": {"startedAt": started.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    elif observation.state == "backoff":
        state = {"waiting": {"reason": "CrashLoopBackOff", "message": observation.message}}
    else:
        state = {"waiting": {"reason": "ContainerCreating"}}
    container_status: JsonDict = {
        "name": container["name"],
        "ready": ready,
        "started": running,
        "restartCount": observation.restarts,
        "image": container.get("image", ""),
        "imageID": "",
        "state": state,
    }
    if observation.exit_code is not None:
        container_status["lastState"] = {
            "terminated": {"exitCode": observation.exit_code, "reason": "Error", "finishedAt": now}
        }
    return {
        "phase": "Running" if running else "Pending",
        "conditions": [
            condition("PodReadyToStartContainers", running),
            condition("Initialized", True),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", True),
        ],
        "containerStatuses": [container_status],
        "hostIP": plan.LOCAL_ADDRESS,
        "podIP": plan.LOCAL_ADDRESS,
        "startTime": old.get("startTime") or now,
    }


class LocalKubelet:
    """Runs the operator's pods from one Kubernetes API on this machine (see module doc)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        settings: plan.Settings,
        *,
        restart: RestartPolicy | None = None,
        probe_period_cap: float = 1.0,
        tick: float = 0.2,
    ) -> None:
        self.core = client.CoreV1Api(api_client)
        self.reader = ApiReader(self.core)
        self.settings = settings
        self.restart = restart or RestartPolicy()
        self.probe_period_cap = probe_period_cap
        self.tick = tick
        self.events: queue.Queue[tuple[str, JsonDict]] = queue.Queue()
        self.pods: dict[str, JsonDict] = {}
        """uid → the latest pod object seen."""
        self.running: dict[str, LocalPod | None] = {}
        """uid → its process (None: nothing to run, or it cannot run here)."""
        self.reported: dict[str, tuple[Any, ...]] = {}
        self.plan_errors: dict[str, str] = {}
        self._suspended: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    # -- test controls ------------------------------------------------------------------

    def suspend(self, namespace: str, name: str) -> None:
        """Stop the process of pod ``namespace/name`` and keep it stopped until ``resume``.

        This is a node that loses a process and cannot start it: the pod reports not ready.
        """
        with self._lock:
            self._suspended.add((namespace, name))

    def resume(self, namespace: str, name: str) -> None:
        """Let the pod ``namespace/name`` that ``suspend`` stopped run again."""
        with self._lock:
            self._suspended.discard((namespace, name))

    def _is_suspended(self, pod: JsonDict) -> bool:
        with self._lock:
            return (pod["metadata"]["namespace"], pod["metadata"]["name"]) in self._suspended

    # -- the pod source -----------------------------------------------------------------

    def _watch(self, stop: threading.Event) -> None:
        """List, then watch from the list's resourceVersion; relist after any failure."""
        while not stop.is_set():
            try:
                listing = self.core.api_client.sanitize_for_serialization(
                    self.core.list_pod_for_all_namespaces(label_selector=SELECTOR)
                )
                self.events.put(("SYNC", listing))
                stream = watch.Watch()
                for event in stream.stream(
                    self.core.list_pod_for_all_namespaces,
                    label_selector=SELECTOR,
                    resource_version=listing["metadata"]["resourceVersion"],
                    timeout_seconds=60,
                    _request_timeout=90,
                ):
                    if stop.is_set():
                        stream.stop()
                        break
                    body = self.core.api_client.sanitize_for_serialization(event["object"])
                    self.events.put((event["type"], body))
            except Exception as exc:  # a dropped stream, 410 Gone, the API restarting
                log.debug("pod watch restarts: %s", exc)
                stop.wait(0.5)

    def _absorb(self, kind: str, body: JsonDict) -> None:
        if kind == "SYNC":
            self.pods = {item["metadata"]["uid"]: item for item in body.get("items") or []}
            return
        if kind == "ERROR" or "metadata" not in body:
            return
        uid = body["metadata"]["uid"]
        if kind == "DELETED" or body["metadata"].get("deletionTimestamp"):
            self.pods.pop(uid, None)
        else:
            self.pods[uid] = body

    # -- the loop ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Watch the pods and ``step`` every tick until ``stop`` is set; then stop every process."""
        source = threading.Thread(target=self._watch, args=(stop,), name="pod-watch", daemon=True)
        source.start()
        try:
            while not stop.is_set():
                self.step()
                stop.wait(self.tick)
        finally:
            self.shutdown()

    def step(self) -> None:
        """Take in the pod events, start and stop processes to match, and report pod statuses."""
        while True:
            try:
                self._absorb(*self.events.get_nowait())
            except queue.Empty:
                break
        for uid in [u for u in self.running if u not in self.pods]:
            self._forget(uid)
        for uid, pod in list(self.pods.items()):
            if uid not in self.running:
                self.running[uid] = self._start(pod)
            self._report(uid, pod)

    def _start(self, pod: JsonDict) -> LocalPod | None:
        meta = pod["metadata"]
        component = (meta.get("labels") or {}).get(COMPONENT)
        name = f"{meta['namespace']}/{meta['name']}"
        if component in NO_PROCESS or component not in RUN_CONTAINER:
            return None
        try:
            launch = plan.plan_container(
                pod, pod["spec"]["containers"][0], self.reader, self.settings
            )
        except (plan.PlanError, client.ApiException) as exc:
            self.plan_errors[meta["uid"]] = str(exc)
            log.warning("cannot run pod=%s: %s", name, exc)
            return None
        if component == "databaseds" and launch.readiness_port is not None:
            # PyTango's DataBaseds takes its address from TANGO_HOST and its sqlite file
            # from PYTANGO_DATABASE_NAME, kept per pod name so that it outlives the pod
            # (as the TANGO DB's volume would)
            data = self.settings.workdir / "data" / meta["namespace"]
            data.mkdir(parents=True, exist_ok=True)
            launch.env["TANGO_HOST"] = f"{launch.bind_address}:{launch.readiness_port}"
            launch.env.setdefault("PYTANGO_DATABASE_NAME", str(data / f"{meta['name']}.db"))
        log_path = self.settings.workdir / "logs" / f"{meta['namespace']}_{meta['name']}.log"
        return LocalPod(
            name, launch, log_path, restart=self.restart, probe_period_cap=self.probe_period_cap
        )

    def _observe(self, uid: str, pod: JsonDict) -> Observation:
        local = self.running.get(uid)
        if local is not None and self._is_suspended(pod):
            local.stop()
            return Observation("backoff", restarts=local.restarts, message="suspended")
        if local is not None:
            return local.step()
        if uid in self.plan_errors:
            return Observation("backoff", message=self.plan_errors[uid])
        component = (pod["metadata"].get("labels") or {}).get(COMPONENT)
        if component in NO_PROCESS:
            return Observation("ready", started_at=time.time())
        return Observation("pending")

    def _report(self, uid: str, pod: JsonDict) -> None:
        observation = self._observe(uid, pod)
        fingerprint = (observation.state, observation.restarts, observation.message)
        if self.reported.get(uid) == fingerprint:
            return
        meta = pod["metadata"]
        try:
            self.core.api_client.call_api(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                "PATCH",
                header_params={"Content-Type": MERGE_PATCH, "Accept": "application/json"},
                # the uid makes the patch fail (409) on a newer pod of the same name
                body={
                    "metadata": {"uid": uid},
                    "status": pod_status(pod, observation, _now()),
                },
                auth_settings=["BearerToken"],
                _preload_content=False,
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return  # gone already; the watch says so next
            log.warning("pod status not written pod=%s: %s", meta["name"], exc)
            return
        self.reported[uid] = fingerprint
        log.info("pod=%s/%s state=%s", meta["namespace"], meta["name"], observation.state)

    def _forget(self, uid: str) -> None:
        local = self.running.pop(uid, None)
        self.reported.pop(uid, None)
        self.plan_errors.pop(uid, None)
        if local is not None:
            local.stop()

    def shutdown(self) -> None:
        """Stop every process this kubelet started."""
        for uid in list(self.running):
            self._forget(uid)
