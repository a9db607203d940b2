"""The local kubelet: pods from the Kubernetes API → processes here, and their status back.

Reads pods from the Kubernetes API (list + watch, official client), keeps one ``LocalPod`` per
pod uid, and writes what it observes back to the pod's ``status`` — phase, conditions,
container state and last state, restart count, host and pod IP (127.0.0.1: every process
listens on loopback), start time — through the status subresource, as a kubelet does; the
StatefulSet controller turns that into ``readyReplicas`` and the watcher into a reconcile.

Which pods are its own depends on how it runs:

- without a Node (``node_name`` None, the default; ``python -m devstack kubelet`` against a
  kubeemu with no Node, whose pods are never scheduled): it takes the pods labelled
  ``app.kubernetes.io/managed-by=tango-operator``. A pod that disappears (scale down, a new
  template, the CR deleted) or gets a ``deletionTimestamp`` has its process stopped.
- as a Node's kubelet (``node_name`` set; ``devstack.runner.node`` registers that Node and
  starts this kubelet, on kube-apiserver or on kubeemu — the stack does so on both): the
  scheduler (kube-scheduler, or kubeemu's stand-in) binds pods to the Node, and the kubelet
  takes those (``spec.nodeName`` field selector), whatever made them. A pod being deleted
  keeps its ``deletionTimestamp`` until its kubelet says its containers are gone, so the
  kubelet stops the process and then deletes the pod for good (grace period 0, on the pod's
  uid), as a kubelet does. ``container_log`` serves the node's log endpoint
  (``devstack.runner.logserver``, for ``kubectl logs``).

Only a pod's first container runs (the operator's pods have one), always as with
``restartPolicy: Always``; init containers and probes other than TCP readiness are not run.

What runs depends on the pod's ``app.kubernetes.io/component`` label, set by the operator's
templates: ``device-server`` and ``databaseds`` pods run their container (``plan``; the
DataBaseds of the images is replaced by PyTango's, keeping its sqlite file under the work
directory), ``database`` (MariaDB) pods are reported ready without a process — PyTango's
DataBaseds needs no MariaDB. Without a Node, pods of other components run nothing; a Node's
kubelet runs any other pod's container command (an image's entrypoint cannot run here: such
a pod waits with the reason).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch

from devstack.runner import plan
from devstack.runner.logserver import LogUnavailableError, LogView
from devstack.runner.podstatus import now_text, pod_status
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


@dataclass(frozen=True)
class PlanFailure:
    """A pod whose container could not be set up: why, how often, when to try again."""

    message: str
    attempts: int
    retry_at: float
    """``time.monotonic()`` of the next try."""


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
        node_name: str | None = None,
        simulate: bool = False,
    ) -> None:
        """``node_name``: the Node whose pods to run (a real server); None: kubeemu's way.

        ``simulate``: run no process at all and report every pod Running and Ready at once,
        as kubeemu's ``instant`` StatefulSets do — for tests whose pods name programs that do
        not exist here (the reconcile tier, the RBAC run) on the real control plane.
        """
        self.core = client.CoreV1Api(api_client)
        self.node_name = node_name
        self.simulate = simulate
        self.selectors: dict[str, str] = (
            {"label_selector": SELECTOR}
            if node_name is None
            else {"field_selector": f"spec.nodeName={node_name}"}
        )
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
        self.plan_errors: dict[str, PlanFailure] = {}
        """uid → why its container could not be set up, and when to try again."""
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
                    self.core.list_pod_for_all_namespaces(**self.selectors)
                )
                self.events.put(("SYNC", listing))
                stream = watch.Watch()
                for event in stream.stream(
                    self.core.list_pod_for_all_namespaces,
                    **self.selectors,
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
            self.pods = {
                item["metadata"]["uid"]: item
                for item in body.get("items") or []
                if not self._gone(item)
            }
            return
        if kind == "ERROR" or "metadata" not in body:
            return
        uid = body["metadata"]["uid"]
        if kind == "DELETED" or self._gone(body):
            self.pods.pop(uid, None)
        else:
            self.pods[uid] = body

    def _gone(self, pod: JsonDict) -> bool:
        """A pod being deleted is gone on kubeemu; a node's stays until ``_terminate``."""
        return bool(pod["metadata"].get("deletionTimestamp")) and self.node_name is None

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
            if pod["metadata"].get("deletionTimestamp"):
                self._terminate(uid, pod)
                continue
            failure = self.plan_errors.get(uid)
            if failure is not None and time.monotonic() >= failure.retry_at:
                self.running.pop(uid, None)  # a kubelet retries CreateContainerConfigError
            if uid not in self.running:
                self.running[uid] = self._start(pod)
            self._report(uid, pod)

    def _start(self, pod: JsonDict) -> LocalPod | None:
        meta = pod["metadata"]
        component = (meta.get("labels") or {}).get(COMPONENT)
        name = f"{meta['namespace']}/{meta['name']}"
        if self.simulate or component in NO_PROCESS:
            return None
        if component not in RUN_CONTAINER and self.node_name is None:
            return None
        try:
            launch = plan.plan_container(
                pod, pod["spec"]["containers"][0], self.reader, self.settings
            )
        except (plan.PlanError, client.ApiException) as exc:
            # a missing ConfigMap or Secret may appear, an API error may pass: try again
            # with the crash backoff, as a kubelet retries a container it cannot set up
            earlier = self.plan_errors.get(meta["uid"])
            attempts = 1 if earlier is None else earlier.attempts + 1
            delay = self.restart.delay(attempts)
            self.plan_errors[meta["uid"]] = PlanFailure(
                str(exc), attempts, time.monotonic() + delay
            )
            log.warning("cannot run pod=%s (next try in %.0f s): %s", name, delay, exc)
            return None
        self.plan_errors.pop(meta["uid"], None)
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
            return Observation("config-error", message=self.plan_errors[uid].message)
        component = (pod["metadata"].get("labels") or {}).get(COMPONENT)
        if self.simulate or component in NO_PROCESS:
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
                    "status": pod_status(pod, observation, now_text()),
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

    def _terminate(self, uid: str, pod: JsonDict) -> None:
        """Stop the process of a pod being deleted, then delete the pod (grace 0, on its uid).

        A kubelet confirms that way that the pod's containers are gone; until then the pod
        stays (Terminating) on the server. A failed delete is tried again on the next step.
        """
        self._forget(uid)
        meta = pod["metadata"]
        try:
            self.core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
            )
        except client.ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or a newer pod of that name
                log.warning("pod not deleted pod=%s/%s: %s", meta["namespace"], meta["name"], exc)
                return
        self.pods.pop(uid, None)
        log.info("pod=%s/%s terminated", meta["namespace"], meta["name"])

    # -- the node's log endpoint -----------------------------------------------------------

    def container_log(self, namespace: str, pod: str, container: str, *, previous: bool) -> LogView:
        """Where the output of ``container`` of pod ``namespace/pod`` is (``LogSource``)."""
        # list(): one atomic copy, the loop thread may change the dict meanwhile
        found = [
            (uid, body)
            for uid, body in list(self.pods.items())
            if body["metadata"]["namespace"] == namespace and body["metadata"]["name"] == pod
        ]
        if not found:
            raise LogUnavailableError(404, f'pod "{pod}" does not exist')
        uid, body = found[-1]
        names = [c["name"] for c in body["spec"]["containers"]]
        if container not in names:
            raise LogUnavailableError(404, f'container "{container}" not found in pod "{pod}"')
        local = self.running.get(uid) if container == names[0] else None
        run = None
        if local is not None:
            run = local.last_finished_run() if previous else local.current_run()
        if run is not None and local is not None:
            return LogView(local.log_path, run)
        if previous:
            raise LogUnavailableError(
                400, f'previous terminated container "{container}" in pod "{pod}" not found'
            )
        reason = "CreateContainerConfigError" if uid in self.plan_errors else "ContainerCreating"
        raise LogUnavailableError(
            400, f'container "{container}" in pod "{pod}" is waiting to start: {reason}'
        )

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
