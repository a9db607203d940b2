"""Reconcile one DeviceServer: from its key to its children, its TANGO config and its status.

Called by the task layer with a Key and the ports; reads the CR and its world through
them and returns an Outcome (when to look again). In order: read → deletion (finalizer: the server
instance leaves the TANGO DB) → ensure the finalizer → validate (Error) → resolve the
TANGO host (Waiting) → apply the device configuration in its mode (the CR's annotation, else
the setting; recorded with the document's hash) → check the dependencies (Waiting,
requeue-after, dependency index) → apply the children with the
StatefulSet at 0 or 1 replica → read the pod and export state (Pending / Running); for a
Running server, its devices' State and Status (``device_health``, read again every
``device_health_seconds``) → one status patch when something changed, and an Event on each
state transition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from tango_operator import crd, names, pod_health
from tango_operator.errors import TemporaryError
from tango_operator.keys import Key
from tango_operator.observed import ChildRecord, RenderPlan
from workers import rendering
from workers.reconcile import children, cycles, databaseds_lookup, device_health, finalizers
from workers.reconcile.ports import (
    ConfigConflictError,
    DeviceHealth,
    Outcome,
    Ports,
    TangoUnavailableError,
)
from workers.reconcile.status import Condition, publish, waiting_delay

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]
KIND = crd.Kind.DEVICE_SERVER
MAX_MESSAGE = 1024
"""Longest status message of a Waiting server (every unmet dependency with its reason)."""
MAX_REASON = 256
"""Longest reason kept per unmet dependency in the status (probe errors can be long)."""
CONTAINER = "device-server"
"""The server's container in its pod (templates/deviceserver/statefulset.yaml.j2)."""
MAX_EVENT_OUTPUT = 600
"""Characters of a crash's last output quoted in its Warning Event."""
NO_DEVICE_HEALTH: JsonDict = {"deviceHealth": None, "deviceSummary": None}
"""The device health fields, dropped from the status of a server that is not Running."""


def reconcile(key: Key, ports: Ports) -> Outcome:
    """Reconcile one DeviceServer (the steps are listed above); what the queue does next."""
    # the watcher's copy of the CR and the children's records, in one read (the API
    # answers for the CR when there is no copy)
    owner, records, plan = ports.ledger.owner_and_records(key)
    resource = owner.obj if owner.known else ports.kube.get_custom(KIND, key.namespace, key.name)
    if resource is None:
        ports.index.forget(key)
        ports.ledger.forget(key)
        return Outcome()
    if resource["metadata"].get("deletionTimestamp"):
        _finalize(key, resource, ports)
        return Outcome()
    resource = finalizers.ensure(ports.kube, resource)
    try:
        spec = crd.parse_device_server(resource)
    except crd.SpecError as exc:
        return _error(resource, ports, "InvalidSpec", str(exc))
    return _reconcile_valid(key, resource, spec, ports, records, plan)


def _reconcile_valid(
    key: Key,
    resource: JsonDict,
    spec: crd.DeviceServerSpec,
    ports: Ports,
    records: dict[str, ChildRecord],
    plan: RenderPlan | None,
) -> Outcome:
    """The pass for a valid spec; ``records`` and ``plan``: the child ledger at its start."""
    kube, tango, settings = ports.kube, ports.tango, ports.settings
    namespace = key.namespace
    tango_host = crd.tango_host_for(
        spec.databaseds, namespace=namespace, cluster_domain=spec.cluster_domain
    )
    address = settings.reachable(tango_host)
    extra: JsonDict = {
        "tangoHost": tango_host,
        "devices": list(spec.devices) or None,
        **NO_DEVICE_HEALTH,
    }

    host_wait = databaseds_lookup.wait_reason(
        ports, namespace=namespace, databaseds=spec.databaseds
    )
    if host_wait is None:
        probe = tango.database_alive(address)
        host_wait = None if probe.ok else f"TANGO host {tango_host} not answering: {probe.reason}"
    if host_wait is not None:
        unmet = [(tango_host, host_wait)]
        return _waiting(resource, spec, ports, unmet, host_wait, extra, host=True)

    mode = spec.config_mode or settings.config_mode
    reload = spec.config_reload or settings.config_reload
    config_hash = spec.config.applied_as(mode) if spec.config is not None else None
    status = resource.get("status") or {}
    if spec.config is not None and (
        status.get("configHash") != config_hash or status.get("state") != "Running"
    ):
        try:
            result = tango.apply_config(
                address, spec.server_instance, spec.config.document, mode=mode
            )
        except ConfigConflictError as exc:
            return _error(resource, ports, "DeviceClaimed", f"spec.config: {exc}", extra)
        except TangoUnavailableError as exc:
            message = f"TANGO host {tango_host} unavailable while configuring: {exc}"
            unmet = [(tango_host, message)]
            return _waiting(resource, spec, ports, unmet, message, extra, host=True)
        except ValueError as exc:
            return _error(resource, ports, "ConfigRejected", f"spec.config: {exc}", extra)
        if result.changed:
            log.info(
                "configuration applied key=%s server=%s mode=%s", key, spec.server_instance, mode
            )
            if reload == crd.ConfigReload.INIT and status.get("state") == "Running":
                _reload_devices(resource, spec, address, ports)
    extra["configHash"] = config_hash

    current = children.known_state(records, "StatefulSet", names.statefulset(key.name))
    started = bool(current and int(current.detail.get("replicas") or 0) > 0)
    # dependencies gate the start only: a started server is not checked again
    missing = [] if started else _unmet_dependencies(spec, namespace, address, ports)
    if missing:
        waited_devices = tuple(m.dependency.device for m in missing if m.dependency.device)
        ports.index.register(key, waited_devices)
        _apply_children(
            key, resource, spec, tango_host, replicas=0, ports=ports, records=records, plan=plan
        )
        cycle = (
            cycles.find_cycle(
                key.name,
                kube.list_custom(KIND, namespace),
                namespace=namespace,
                tango_host=tango_host,
            )
            if waited_devices
            else None
        )
        if cycle is not None:
            message = f"spec.dependsOn: dependency cycle {cycles.describe(cycle)}"
            # looked at again when a member changes or starts (dependency index), and slowly
            # in case the cycle is broken by deleting a member
            outcome = _error(resource, ports, "DependencyCycle", message, extra)
            return replace(outcome, requeue_after=ports.settings.waiting_max_seconds)
        message = "waiting for " + "; ".join(f"{m.name} ({m.reason})" for m in missing)
        message = message[:MAX_MESSAGE]
        unmet = [(m.name, m.reason) for m in missing]
        return _waiting(resource, spec, ports, unmet, message, extra, host=False)
    if not started:
        # its waits end with the start; a started server is not checked, so it registers none
        ports.index.forget(key)
    applied = _apply_children(
        key, resource, spec, tango_host, replicas=1, ports=ports, records=records, plan=plan
    )
    return _observe_pod(key, resource, spec, applied, ports, extra, address)


@dataclass(frozen=True)
class Unmet:
    """A dependency that is not ready: how ``waitingFor`` names it, and the probe's reason."""

    dependency: crd.Dependency
    reason: str

    @property
    def name(self) -> str:
        """The full form: ``a/b/c``, ``tango://host:port/a/b/c`` or ``host:port``."""
        if self.dependency.device is None:
            return self.dependency.text.strip()
        if self.dependency.tango_host:
            return f"tango://{self.dependency.tango_host}/{self.dependency.device}"
        return self.dependency.device


def _unmet_dependencies(
    spec: crd.DeviceServerSpec, namespace: str, address: str, ports: Ports
) -> list[Unmet]:
    """The dependencies that are not ready, each probed as the server's pod would reach it.

    Short host names (``db:3306``, ``tango://db:10000/a/b/c``) are Services of the CR's
    namespace, qualified with it and ``clusterDomain`` before they are dialled; ``waitingFor``
    keeps them as written.
    """
    missing: list[Unmet] = []
    for dependency in spec.depends_on:
        if dependency.device is not None:
            host = address
            if dependency.tango_host:
                name, _, port = dependency.tango_host.rpartition(":")
                qualified = crd.in_cluster_host(name, namespace, spec.cluster_domain)
                host = ports.settings.reachable(f"{qualified}:{port}")
            probe = ports.tango.device_ready(host, dependency.device)
        elif dependency.host is not None and dependency.port is not None:
            qualified = crd.in_cluster_host(dependency.host, namespace, spec.cluster_domain)
            target = ports.settings.reachable(f"{qualified}:{dependency.port}")
            target_host, _, target_port = target.rpartition(":")
            probe = ports.tango.endpoint_reachable(target_host, int(target_port))
        else:  # parse_dependency makes every entry a device or an endpoint
            continue
        if not probe.ok:
            missing.append(Unmet(dependency, probe.reason or "not ready"))
    return missing


def _unmet_status(unmet: list[tuple[str, str]]) -> JsonDict:
    """``waitingFor`` (the names) and ``unmetDependencies`` (each with its reason)."""
    return {
        "waitingFor": [name for name, _ in unmet],
        "unmetDependencies": [
            {"name": name, "reason": reason[:MAX_REASON]} for name, reason in unmet
        ],
    }


def _apply_children(
    key: Key,
    resource: JsonDict,
    spec: crd.DeviceServerSpec,
    tango_host: str,
    *,
    replicas: int,
    ports: Ports,
    records: dict[str, ChildRecord],
    plan: RenderPlan | None,
) -> children.Children:
    """Render the children and apply what changed; no render when the ledger's plan holds."""
    parameters: JsonDict = {
        "tango_host": tango_host,
        "replicas": replicas,
        "config_reload": spec.config_reload or ports.settings.config_reload,
        "network_policy": ports.settings.network_policy,
    }
    return children.apply_planned(
        key,
        rendering.inputs_digest(resource, **parameters),
        lambda: rendering.render_device_server(resource, spec, **parameters),
        ports,
        records,
        plan,
    )


def _observe_pod(
    key: Key,
    resource: JsonDict,
    spec: crd.DeviceServerSpec,
    applied: children.Children,
    ports: Ports,
    extra: JsonDict,
    address: str,
) -> Outcome:
    statefulset = children.current_status(
        applied, key.namespace, "StatefulSet", names.statefulset(key.name), ports
    )
    detail = statefulset.detail if statefulset is not None else {}
    generation = int(detail.get("generation") or 0)
    observed_generation = int(detail.get("observedGeneration") or 0)
    ready = int(detail.get("readyReplicas") or 0)
    extra.update(replicas=1, readyReplicas=ready, waitingFor=None, unmetDependencies=None)
    deps_ok = Condition("DependenciesReady", True, "DependenciesReady", "all dependencies ready")
    config_ok = _config_condition(spec)

    def not_ready(
        state: str,
        reason: str,
        message: str,
        requeue: float | None,
        others: list[Condition] | None = None,
    ) -> Outcome:
        stored = (resource.get("status") or {}).get("state")
        if applied.changed and stored != state:
            # the children were just written: a pod that starts at once makes this state
            # last milliseconds, so it is published only if it is still so a moment later
            grace = ports.settings.settling_seconds
            return Outcome(state=state, requeue_after=min(grace, requeue or grace))
        conditions = [Condition("Ready", False, reason, message), *(others or [deps_ok, config_ok])]
        publish(
            ports.kube, resource, state=state, message=message, conditions=conditions, extra=extra
        )
        return Outcome(state=state, requeue_after=requeue)

    poll = ports.settings.pending_poll_seconds
    if observed_generation < generation:
        # the rollout being seen, and the pod's readiness, are events that wake this key
        return not_ready("Building", "Building", "StatefulSet rollout in progress", None)
    starting = (address, spec.devices) if spec.devices else None
    if ready < 1:
        # the container's trouble (a crash, a restart, one that cannot start) is an event
        # that wakes this key too (watcher.pods); a pod just created has none to show
        pod = None if applied.changed else _server_pod(key, ports)
        report = pod_health.report(pod, CONTAINER)
        if pod is not None and report is not None and report.failing:
            stale = _replace_stale_pod(resource, pod, detail, ports)
            return stale or _failing(resource, ports, report, extra, [deps_ok, config_ok])
        # a server started again after a crash keeps showing how it last ended
        restarted = report is not None and report.restarts > 0
        extra["container"] = report.as_status() if report is not None and restarted else None
        others = [deps_ok, config_ok, _container_condition(report)]
        # The pod's readiness change is an event that wakes this key. Meanwhile the export
        # watcher looks for the devices in TANGO, so that the servers waiting for them start
        # the moment they are exported, not when the kubelet's next readiness probe passes;
        # the poll is only the fallback.
        pending = _pending_message(report)
        if not spec.devices:
            return not_ready("Pending", "PodNotReady", pending, None, others)
        if _unexported(key, spec, address, ports):
            outcome = not_ready("Pending", "PodNotReady", pending, poll, others)
            return replace(outcome, starting=starting)
        message = "devices exported; device server pod not ready yet"
        outcome = not_ready("Pending", "PodNotReady", message, None, others)
        return replace(outcome, wake=tuple(ports.index.waiters_of(spec.devices)))
    extra["container"] = None
    unexported = _unexported(key, spec, address, ports)
    if unexported:
        message = f"devices not exported yet: {', '.join(unexported)}"
        outcome = not_ready("Pending", "DevicesNotExported", message, poll)
        return replace(outcome, starting=starting)
    message = "device server running"
    running = Condition("ContainerHealthy", True, "Running", "the server's container is running")
    conditions = [Condition("Ready", True, "Running", message), deps_ok, config_ok, running]
    devices = _read_devices(key, spec, address, ports)
    if devices is not None:
        extra.update(device_health.status_fields(devices))
        conditions.append(device_health.condition(devices))
    stored = resource.get("status") or {}
    publish(
        ports.kube, resource, state="Running", message=message, conditions=conditions, extra=extra
    )
    if devices is not None:
        device_health.announce(ports.kube, resource, stored, conditions[-1])
    wake: tuple[Key, ...] = ()
    if stored.get("state") != "Running" and spec.devices:
        wake = tuple(ports.index.waiters_of(spec.devices))
    interval = ports.settings.device_health_seconds
    requeue = device_health.next_read(interval) if devices is not None else None
    return Outcome(state="Running", wake=wake, requeue_after=requeue)


def _read_devices(
    key: Key, spec: crd.DeviceServerSpec, address: str, ports: Ports
) -> list[DeviceHealth] | None:
    """The devices' State and Status (None: no devices known, or the read is turned off)."""
    if not spec.devices or ports.settings.device_health_seconds <= 0:
        return None
    try:
        return ports.tango.device_health(address, spec.server_instance, spec.devices)
    except TangoUnavailableError as exc:
        log.info("device health not read key=%s error=%s", key, exc)
        reason = f"not read: {exc}"[: device_health.MAX_MESSAGE]
        return [DeviceHealth(device, False, "UNKNOWN", reason) for device in spec.devices]


def _server_pod(key: Key, ports: Ports) -> JsonDict | None:
    """The server's pod, read while it is not ready (None: no pod yet)."""
    return ports.kube.get("v1", "Pod", key.namespace, f"{names.statefulset(key.name)}-0")


def _replace_stale_pod(
    resource: JsonDict, pod: JsonDict, statefulset: JsonDict, ports: Ports
) -> Outcome | None:
    """Delete a failing pod of an older template, which its StatefulSet never replaces.

    With ``podManagementPolicy: OrderedReady`` the StatefulSet controller rolls nothing while
    a pod is not running and ready (kubernetes/kubernetes#67250): a server that crashes keeps
    crashing with its old spec although the fix was applied. The operator deletes that pod
    (uid precondition), the controller creates it from the new template. None when the pod
    is of the current template (or the revision is not known).
    """
    wanted = statefulset.get("updateRevision")
    labels = (pod.get("metadata") or {}).get("labels") or {}
    current = labels.get("controller-revision-hash")
    if not wanted or not current or current == wanted:
        return None
    name = pod["metadata"]["name"]
    if ports.kube.delete(pod):
        log.info("failing pod of an old template deleted pod=%s", name)
        ports.kube.emit_event(
            resource,
            event_type="Normal",
            reason="FailingPodReplaced",
            message=f"pod {name} of the previous spec was failing: deleted so that "
            "its StatefulSet starts it with the new one",
        )
    return Outcome(state="Pending")


def _reload_devices(
    resource: JsonDict, spec: crd.DeviceServerSpec, address: str, ports: Ports
) -> None:
    """A running server's config changed in the DB: its devices re-read it (``Init``).

    With ``config-reload: Init`` the pod is not rolled; an Event says whether every device
    took it in (a device that fails Init keeps running on what it read before).
    """
    try:
        failures = ports.tango.init_devices(address, spec.server_instance, spec.devices)
    except TangoUnavailableError as exc:
        failures = [f"TANGO host unavailable: {exc}"]
    if failures:
        ports.kube.emit_event(
            resource,
            event_type="Warning",
            reason="InitFailed",
            message=(
                "configuration written to the TANGO DB; Init failed for " + "; ".join(failures)
            )[:MAX_MESSAGE],
        )
        return
    ports.kube.emit_event(
        resource,
        event_type="Normal",
        reason="ConfigReloaded",
        message=f"configuration written to the TANGO DB; Init sent to {len(spec.devices)} "
        "device(s), the pod kept running",
    )


def _container_condition(report: pod_health.ContainerReport | None) -> Condition:
    if report is None or not report.restarts:
        return Condition("ContainerHealthy", True, "Starting", "the server's container is starting")
    return Condition(
        "ContainerHealthy", True, report.reason, f"started again after: {report.describe()}"
    )


def _pending_message(report: pod_health.ContainerReport | None) -> str:
    if report is None or not report.restarts:
        return "device server pod not ready"
    return f"device server pod not ready; {report.describe()}"


def _failing(
    resource: JsonDict,
    ports: Ports,
    report: pod_health.ContainerReport,
    extra: JsonDict,
    others: list[Condition],
) -> Outcome:
    """The server's container crashes or cannot start: say why in the status, and warn once.

    State stays Pending (the states are an API); ``Ready`` and ``ContainerHealthy`` carry the
    reason (CrashLoopBackOff, CannotStart, ImagePullBackOff, ...), ``status.container`` the
    exit code, restarts and last output. A Warning Event each time the trouble changes
    (a new restart, a new reason); the pod's next change wakes this key (``watcher.pods``).
    """
    message = f"device server container failing: {report.describe()}"[:MAX_MESSAGE]
    extra["container"] = report.as_status()
    conditions = [
        Condition("Ready", False, report.reason, message),
        *others,
        Condition("ContainerHealthy", False, report.reason, message),
    ]
    before = (resource.get("status") or {}).get("container") or {}
    publish(
        ports.kube, resource, state="Pending", message=message, conditions=conditions, extra=extra
    )
    if (before.get("restartCount"), before.get("reason")) != (report.restarts, report.reason):
        output = report.last_output[-MAX_EVENT_OUTPUT:]
        ports.kube.emit_event(
            resource,
            event_type="Warning",
            reason=report.reason,
            message=f"{message}\n{output}".rstrip() if output else message,
        )
    return Outcome(state="Pending")


def _unexported(key: Key, spec: crd.DeviceServerSpec, address: str, ports: Ports) -> list[str]:
    try:
        return ports.tango.unexported_devices(address, spec.devices)
    except TangoUnavailableError as exc:
        log.info("export check failed key=%s error=%s", key, exc)
        return list(spec.devices)


def _config_condition(spec: crd.DeviceServerSpec) -> Condition:
    if spec.config is None:
        return Condition("ConfigApplied", True, "NoConfig", "no device configuration given")
    message = f"{len(spec.devices)} device(s) configured in the TANGO DB"
    if spec.config.ignored_instances:
        message += (
            f"; other instances in config ignored: {', '.join(spec.config.ignored_instances)}"
        )
    return Condition("ConfigApplied", True, "Applied", message)


def _waiting(
    resource: JsonDict,
    spec: crd.DeviceServerSpec,
    ports: Ports,
    unmet: list[tuple[str, str]],
    message: str,
    extra: JsonDict,
    *,
    host: bool,
) -> Outcome:
    reason = "TangoHostNotReady" if host else "DependenciesNotReady"
    extra.update(_unmet_status(unmet), replicas=0, readyReplicas=0)
    conditions = [
        Condition("Ready", False, reason, message),
        Condition("DependenciesReady", False, reason, message),
    ]
    if not host:
        conditions.append(_config_condition(spec))
    status = publish(
        ports.kube, resource, state="Waiting", message=message, conditions=conditions, extra=extra
    )
    delay = waiting_delay({**resource, "status": status}, ports.settings)
    return Outcome(state="Waiting", requeue_after=delay)


def _error(
    resource: JsonDict, ports: Ports, reason: str, message: str, extra: JsonDict | None = None
) -> Outcome:
    """A permanent problem: state Error with the message; retried when the spec changes."""
    conditions = [Condition("Ready", False, reason, message)]
    if reason in ("DeviceClaimed", "ConfigRejected"):
        conditions.append(Condition("ConfigApplied", False, reason, message))
    if reason == "DependencyCycle":
        conditions.append(Condition("DependenciesReady", False, reason, message))
    publish(
        ports.kube,
        resource,
        state="Error",
        message=message,
        conditions=conditions,
        extra={
            **(extra or {}),
            **NO_DEVICE_HEALTH,
            "waitingFor": None,
            "unmetDependencies": None,
        },
    )
    return Outcome(state="Error", message=message)


def _finalize(key: Key, resource: JsonDict, ports: Ports) -> None:
    """The CR is being deleted: take its server instance out of the TANGO DB, then let go."""
    if crd.FINALIZER not in (resource["metadata"].get("finalizers") or []):
        return
    ports.index.forget(key)
    if ports.settings.remove_from_tango_db_on_delete:
        try:
            spec = crd.parse_device_server(resource)
        except crd.SpecError:
            spec = None  # an invalid spec never reached the TANGO DB
        if spec is not None and spec.config is not None:
            tango_host = crd.tango_host_for(
                spec.databaseds, namespace=key.namespace, cluster_domain=spec.cluster_domain
            )
            try:
                ports.tango.remove_server(
                    ports.settings.reachable(tango_host), spec.server_instance
                )
            except TangoUnavailableError as exc:
                if databaseds_lookup.being_deleted(
                    ports, namespace=key.namespace, databaseds=spec.databaseds
                ):
                    # the TANGO DB goes away with its DatabaseDS: nothing left to clean
                    log.info("TANGO DB gone, skipping cleanup key=%s", key)
                else:
                    raise TemporaryError(
                        f"cannot remove {spec.server_instance} from TANGO DB {tango_host}: {exc}"
                    ) from exc
    finalizers.remove(ports.kube, resource)
