"""Built-in defaulting of Kubernetes 1.31 objects, as the real apiserver applies it on every write.

The rules are transcribed by hand from upstream's ``pkg/apis/core/v1/defaults.go``,
``pkg/apis/apps/v1/defaults.go``, ``pkg/apis/batch/v1/defaults.go`` and
``pkg/apis/networking/v1/defaults.go`` (with the feature gates at their 1.31 defaults), plus the few
values that the registry strategies of Service and Namespace fill on create.  The store calls
:func:`apply_builtin_defaults` on the decoded body of a create or update, before validation, so
what clients read back carries the same defaulted fields as a real 1.31 cluster.

Go semantics matter: a string field is "unset" when absent, null or ``""``; a plain integer field
when absent, null or ``0``; a pointer field only when absent or null.  Besides true defaults, the
objects also get the zero values that Go's JSON encoder always writes for a few non-pointer
structs (``resources: {}`` in containers, ``metadata: {creationTimestamp: null}`` in templates,
``apiVersion``/``kind`` on StatefulSet ``volumeClaimTemplates``), because a real cluster returns
them too and drift-comparing clients see them.  Not covered: admission plugins (service-account
token volume, default tolerations, priority), Job selector/labels generation, status fields, and
the clusterIP/nodePort allocation done by the Service registry.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from kubeemu.clone import clone

JsonDict = dict[str, Any]

DEFAULT_FILE_MODE = 0o644  # 420, upstream's Default{Secret,ConfigMap,DownwardAPI,Projected}Mode
DEFAULT_IP_FAMILY = "IPv4"  # the emulator is a single-stack IPv4 cluster

_Defaulter = Callable[[JsonDict], None]


def apply_builtin_defaults(
    group: str, version: str, kind: str, obj: JsonDict, *, copy: bool = True
) -> JsonDict:
    """A defaulted copy of ``obj``; kinds without defaults come back as an unchanged copy.

    Without ``copy``, ``obj`` itself is defaulted in place and returned.
    """
    result = clone(obj) if copy else obj
    defaulter = _DEFAULTERS.get((group, version, kind))
    if defaulter is not None:
        defaulter(result)
    return result


def has_builtin_defaults(group: str, version: str, kind: str) -> bool:
    """Whether the kind has any defaulting rule here (ConfigMap and ServiceAccount have none)."""
    return (group, version, kind) in _DEFAULTERS


# --- small helpers (they fill our own deep copy in place) -----------------------------------------
def _unset_string(value: Any) -> bool:
    return value is None or value == ""


def _default_string(holder: JsonDict, key: str, value: str) -> None:
    if _unset_string(holder.get(key)):
        holder[key] = value


def _default_int(holder: JsonDict, key: str, value: int) -> None:
    """A plain (non-pointer) Go integer: 0 counts as unset."""
    if holder.get(key) in (None, 0):
        holder[key] = value


def _default_pointer(holder: JsonDict, key: str, value: Any) -> None:
    """A Go pointer field: only absence or null counts as unset."""
    if holder.get(key) is None:
        holder[key] = clone(value)


def _child(holder: JsonDict, key: str) -> JsonDict:
    """The object at ``key``, created empty when absent (Go non-pointer struct)."""
    value = holder.get(key)
    if not isinstance(value, dict):
        value = {}
        holder[key] = value
    return value


def _dict_or_none(holder: Any, key: str) -> JsonDict | None:
    if not isinstance(holder, dict):
        return None
    value = holder.get(key)
    return value if isinstance(value, dict) else None


def _dicts_in(holder: Any, key: str) -> list[JsonDict]:
    if not isinstance(holder, dict):
        return []
    value = holder.get(key)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


# --- images -----------------------------------------------------------------------------------
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)


def image_tag(image: str) -> str:
    """The tag as upstream's ``parsers.ParseImageName`` sees it.

    ``latest`` when neither a tag nor a digest is given; ``""`` for a digest-only reference or an
    unparsable one (upstream ignores the parse error there).
    """
    match = _IMAGE_REFERENCE.match(image)
    if match is None:
        return ""
    tag = match.group("tag") or ""
    if not tag and not match.group("digest"):
        return "latest"
    return tag


def default_image_pull_policy(image: str) -> str:
    return "Always" if image_tag(image) == "latest" else "IfNotPresent"


# --- pods -------------------------------------------------------------------------------------
_PROBE_KEYS = ("livenessProbe", "readinessProbe", "startupProbe")


def _default_http_get(handler: JsonDict | None) -> None:
    http_get = _dict_or_none(handler, "httpGet")
    if http_get is not None:
        _default_string(http_get, "path", "/")
        _default_string(http_get, "scheme", "HTTP")


def _default_probe(probe: JsonDict) -> None:
    _default_int(probe, "timeoutSeconds", 1)
    _default_int(probe, "periodSeconds", 10)
    _default_int(probe, "successThreshold", 1)
    _default_int(probe, "failureThreshold", 3)
    _default_http_get(probe)
    grpc = _dict_or_none(probe, "grpc")
    if grpc is not None:
        _default_pointer(grpc, "service", "")


def _default_field_ref(holder: JsonDict | None) -> None:
    field_ref = _dict_or_none(holder, "fieldRef")
    if field_ref is not None:
        _default_string(field_ref, "apiVersion", "v1")


def _default_container(container: JsonDict) -> None:
    if _unset_string(container.get("imagePullPolicy")):
        container["imagePullPolicy"] = default_image_pull_policy(str(container.get("image") or ""))
    _default_string(container, "terminationMessagePath", "/dev/termination-log")
    _default_string(container, "terminationMessagePolicy", "File")
    for port in _dicts_in(container, "ports"):
        _default_string(port, "protocol", "TCP")
    for env in _dicts_in(container, "env"):
        _default_field_ref(_dict_or_none(env, "valueFrom"))
    for key in _PROBE_KEYS:
        probe = _dict_or_none(container, key)
        if probe is not None:
            _default_probe(probe)
    lifecycle = _dict_or_none(container, "lifecycle")
    for hook in ("postStart", "preStop"):
        _default_http_get(_dict_or_none(lifecycle, hook))
    _child(container, "resources")  # Go always encodes this struct


def _default_key_to_path_items(source: JsonDict) -> None:
    for item in _dicts_in(source, "items"):
        _default_field_ref(item)


def _default_projected_sources(projected: JsonDict) -> None:
    for source in _dicts_in(projected, "sources"):
        downward = _dict_or_none(source, "downwardAPI")
        if downward is not None:
            _default_key_to_path_items(downward)
        token = _dict_or_none(source, "serviceAccountToken")
        if token is not None:
            _default_pointer(token, "expirationSeconds", 3600)


def _default_pvc_spec(spec: JsonDict) -> None:
    _default_pointer(spec, "volumeMode", "Filesystem")
    _child(spec, "resources")


_VOLUME_SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "configMap": {"defaultMode": DEFAULT_FILE_MODE},
    "secret": {"defaultMode": DEFAULT_FILE_MODE},
    "downwardAPI": {"defaultMode": DEFAULT_FILE_MODE},
    "projected": {"defaultMode": DEFAULT_FILE_MODE},
    "hostPath": {"type": ""},
    "iscsi": {"iscsiInterface": "default"},
    "rbd": {"pool": "rbd", "user": "admin", "keyring": "/etc/ceph/keyring"},
    "azureDisk": {
        "cachingMode": "ReadWrite",
        "fsType": "ext4",
        "readOnly": False,
        "kind": "Shared",
    },
    "scaleIO": {"storageMode": "ThinProvisioned", "fsType": "xfs"},
}
_STRING_VOLUME_FIELDS = {("iscsi", "iscsiInterface"), ("rbd", "pool"), ("rbd", "user")}
_STRING_VOLUME_FIELDS |= {("rbd", "keyring"), ("scaleIO", "storageMode"), ("scaleIO", "fsType")}


def _default_volume(volume: JsonDict) -> None:
    if not any(value is not None for key, value in volume.items() if key != "name"):
        volume["emptyDir"] = {}
        return
    for source_key, defaults in _VOLUME_SOURCE_DEFAULTS.items():
        source = _dict_or_none(volume, source_key)
        if source is None:
            continue
        for field, value in defaults.items():
            if (source_key, field) in _STRING_VOLUME_FIELDS:
                _default_string(source, field, value)
            else:
                _default_pointer(source, field, value)
    downward = _dict_or_none(volume, "downwardAPI")
    if downward is not None:
        _default_key_to_path_items(downward)
    projected = _dict_or_none(volume, "projected")
    if projected is not None:
        _default_projected_sources(projected)
    ephemeral = _dict_or_none(volume, "ephemeral")
    template = _dict_or_none(ephemeral, "volumeClaimTemplate")
    if template is not None:
        _default_template_metadata(template)
        _default_pvc_spec(_child(template, "spec"))


def _default_pod_spec(spec: JsonDict) -> None:
    """``SetDefaults_PodSpec`` plus the container and volume defaulters under it."""
    _default_string(spec, "dnsPolicy", "ClusterFirst")
    _default_string(spec, "restartPolicy", "Always")
    _default_pointer(spec, "securityContext", {})
    _default_pointer(spec, "terminationGracePeriodSeconds", 30)
    _default_string(spec, "schedulerName", "default-scheduler")
    for key in ("initContainers", "containers"):
        for container in _dicts_in(spec, key):
            _default_container(container)
    for volume in _dicts_in(spec, "volumes"):
        _default_volume(volume)


def _default_template_metadata(template: JsonDict) -> None:
    """Go encodes a template's zero ``creationTimestamp`` as null, so real clusters show it."""
    metadata = _child(template, "metadata")
    metadata.setdefault("creationTimestamp", None)


def _default_pod_template(template: JsonDict) -> None:
    _default_template_metadata(template)
    _default_pod_spec(_child(template, "spec"))


def _requests_from_limits(container: JsonDict) -> None:
    resources = _dict_or_none(container, "resources")
    limits = _dict_or_none(resources, "limits")
    if resources is None or limits is None:
        return
    requests = _child(resources, "requests")
    for name, quantity in limits.items():
        requests.setdefault(name, quantity)


def _host_network_ports(containers: list[JsonDict]) -> None:
    for container in containers:
        for port in _dicts_in(container, "ports"):
            if port.get("hostPort") in (None, 0):
                port["hostPort"] = port.get("containerPort")


def _default_pod(pod: JsonDict) -> None:
    """``SetDefaults_Pod``: only real Pods (not templates) get these."""
    spec = _child(pod, "spec")
    _default_pod_spec(spec)
    containers = _dicts_in(spec, "containers") + _dicts_in(spec, "initContainers")
    for container in containers:
        _requests_from_limits(container)
    _default_pointer(spec, "enableServiceLinks", True)
    if spec.get("hostNetwork") is True:
        _host_network_ports(containers)


def _default_pod_template_object(obj: JsonDict) -> None:
    _default_pod_template(_child(obj, "template"))


# --- workloads --------------------------------------------------------------------------------
def _default_deployment(obj: JsonDict) -> None:
    spec = _child(obj, "spec")
    _default_pointer(spec, "replicas", 1)
    strategy = _child(spec, "strategy")
    _default_string(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _child(strategy, "rollingUpdate")
        _default_pointer(rolling, "maxUnavailable", "25%")
        _default_pointer(rolling, "maxSurge", "25%")
    _default_pointer(spec, "revisionHistoryLimit", 10)
    _default_pointer(spec, "progressDeadlineSeconds", 600)
    _default_pod_template(_child(spec, "template"))


def _default_daemon_set(obj: JsonDict) -> None:
    spec = _child(obj, "spec")
    strategy = _child(spec, "updateStrategy")
    _default_string(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _child(strategy, "rollingUpdate")
        _default_pointer(rolling, "maxUnavailable", 1)
        _default_pointer(rolling, "maxSurge", 0)
    _default_pointer(spec, "revisionHistoryLimit", 10)
    _default_pod_template(_child(spec, "template"))


def _default_volume_claim_template(claim: JsonDict) -> None:
    """A StatefulSet claim template is a full PVC: typed, defaulted, with a Pending status."""
    claim.setdefault("apiVersion", "v1")
    claim.setdefault("kind", "PersistentVolumeClaim")
    _default_template_metadata(claim)
    _default_persistent_volume_claim(claim)


def _default_stateful_set(obj: JsonDict) -> None:
    spec = _child(obj, "spec")
    _default_string(spec, "podManagementPolicy", "OrderedReady")
    strategy = _child(spec, "updateStrategy")
    if _unset_string(strategy.get("type")):
        strategy["type"] = "RollingUpdate"
        _default_pointer(strategy, "rollingUpdate", {})
    rolling = _dict_or_none(strategy, "rollingUpdate")
    if strategy["type"] == "RollingUpdate" and rolling is not None:
        _default_pointer(rolling, "partition", 0)
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if not isinstance(retention, dict):
        retention = spec["persistentVolumeClaimRetentionPolicy"] = {}
    _default_string(retention, "whenDeleted", "Retain")
    _default_string(retention, "whenScaled", "Retain")
    _default_pointer(spec, "replicas", 1)
    _default_pointer(spec, "revisionHistoryLimit", 10)
    _default_pod_template(_child(spec, "template"))
    for claim in _dicts_in(spec, "volumeClaimTemplates"):
        _default_volume_claim_template(claim)


def _default_replica_set(obj: JsonDict) -> None:
    spec = _child(obj, "spec")
    _default_pointer(spec, "replicas", 1)
    _default_pod_template(_child(spec, "template"))


def _default_replication_controller(obj: JsonDict) -> None:
    spec = _child(obj, "spec")
    template = _dict_or_none(spec, "template")
    template_labels = _dict_or_none(_dict_or_none(template, "metadata"), "labels") or {}
    if template_labels:
        if not spec.get("selector"):
            spec["selector"] = dict(template_labels)
        metadata = _child(obj, "metadata")
        if not metadata.get("labels"):
            metadata["labels"] = dict(template_labels)
    _default_pointer(spec, "replicas", 1)
    if template is not None:
        _default_pod_template(template)


def _default_job(obj: JsonDict) -> None:
    spec = _child(obj, "spec")
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    _default_pointer(spec, "parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    template = _child(spec, "template")
    template_labels = _dict_or_none(_dict_or_none(template, "metadata"), "labels")
    metadata = _child(obj, "metadata")
    if template_labels is not None and not metadata.get("labels"):
        metadata["labels"] = dict(template_labels)
    _default_pointer(spec, "completionMode", "NonIndexed")
    _default_pointer(spec, "suspend", False)
    failure_policy = _dict_or_none(spec, "podFailurePolicy")
    for rule in _dicts_in(failure_policy, "rules"):
        for pattern in _dicts_in(rule, "onPodConditions"):
            _default_string(pattern, "status", "True")
    replacement = "Failed" if failure_policy is not None else "TerminatingOrFailed"
    _default_pointer(spec, "podReplacementPolicy", replacement)
    _default_pod_template(template)


def _default_cron_job(obj: JsonDict) -> None:
    spec = _child(obj, "spec")
    _default_string(spec, "concurrencyPolicy", "Allow")
    _default_pointer(spec, "suspend", False)
    _default_pointer(spec, "successfulJobsHistoryLimit", 3)
    _default_pointer(spec, "failedJobsHistoryLimit", 1)
    job_template = _child(spec, "jobTemplate")
    _default_template_metadata(job_template)
    _default_pod_template(_child(_child(job_template, "spec"), "template"))


# --- services, storage, config ----------------------------------------------------------------
def _externally_accessible(spec: JsonDict) -> bool:
    service_type = spec.get("type")
    return service_type in ("LoadBalancer", "NodePort") or (
        service_type == "ClusterIP" and bool(spec.get("externalIPs"))
    )


def _default_service_ports(spec: JsonDict) -> None:
    for port in _dicts_in(spec, "ports"):
        _default_string(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")


def _default_session_affinity(spec: JsonDict) -> None:
    _default_string(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = _dict_or_none(_dict_or_none(spec, "sessionAffinityConfig"), "clientIP")
        if client_ip is None or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}


def _default_ip_families(spec: JsonDict) -> None:
    """What the Service registry fills on a single-stack IPv4 cluster (not ExternalName)."""
    if spec.get("type") == "ExternalName":
        return
    headless_without_selector = spec.get("clusterIP") == "None" and not spec.get("selector")
    if (
        headless_without_selector
        and spec.get("ipFamilyPolicy") is None
        and not spec.get("ipFamilies")
    ):
        spec["ipFamilyPolicy"] = "RequireDualStack"
    _default_pointer(spec, "ipFamilyPolicy", "SingleStack")
    if not spec.get("ipFamilies"):
        spec["ipFamilies"] = [DEFAULT_IP_FAMILY]


def _default_service(obj: JsonDict) -> None:
    spec = _child(obj, "spec")
    _default_session_affinity(spec)
    _default_string(spec, "type", "ClusterIP")
    _default_service_ports(spec)
    if _externally_accessible(spec):
        _default_string(spec, "externalTrafficPolicy", "Cluster")
    if spec["type"] in ("NodePort", "LoadBalancer", "ClusterIP"):
        _default_pointer(spec, "internalTrafficPolicy", "Cluster")
    if spec["type"] == "LoadBalancer":
        _default_pointer(spec, "allocateLoadBalancerNodePorts", True)
    _default_ip_families(spec)


def _default_persistent_volume_claim(obj: JsonDict) -> None:
    _default_pvc_spec(_child(obj, "spec"))
    _default_string(_child(obj, "status"), "phase", "Pending")


def _default_persistent_volume(obj: JsonDict) -> None:
    spec = _child(obj, "spec")
    _default_string(spec, "persistentVolumeReclaimPolicy", "Retain")
    _default_pointer(spec, "volumeMode", "Filesystem")
    _default_string(_child(obj, "status"), "phase", "Pending")


def _default_secret(obj: JsonDict) -> None:
    """``type`` defaulting, and ``stringData`` folded into ``data``.

    As upstream's conversion to the internal type does (``Convert_v1_Secret_To_core_Secret``):
    stringData is write-only, its keys win over ``data``'s, and it is never stored or served.
    """
    _default_string(obj, "type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        existing = obj.get("data")
        data: JsonDict = existing if isinstance(existing, dict) else {}
        for key, value in string_data.items():
            data[str(key)] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")
        obj["data"] = data
    _drop_empty_data(obj)


def _default_namespace(obj: JsonDict) -> None:
    """Label from ``SetDefaults_Namespace``; finalizer and phase as the registry sets on create.

    Upstream always overwrites the ``kubernetes.io/metadata.name`` label.  ``spec.finalizers`` is
    only filled when absent: on update the store must keep the stored finalizers and status.
    """
    metadata = _child(obj, "metadata")
    name = metadata.get("name")
    if name:
        labels = metadata.get("labels")
        if not isinstance(labels, dict):
            labels = metadata["labels"] = {}
        labels["kubernetes.io/metadata.name"] = name
    _default_pointer(_child(obj, "spec"), "finalizers", ["kubernetes"])
    _default_string(_child(obj, "status"), "phase", "Active")


def _drop_empty_data(obj: JsonDict) -> None:
    """ConfigMap and Secret: an empty ``data``/``binaryData``/``stringData`` is not kept.

    Not a default but Go's encoding: the maps are ``omitempty``, so ``data: {}`` is read back
    as no ``data`` at all, and no ``f:data`` is recorded in managedFields.
    """
    for key in ("data", "binaryData", "stringData"):
        if obj.get(key) == {}:
            del obj[key]


def _default_event(obj: JsonDict) -> None:
    """``eventTime`` is a non-pointer MicroTime: kube-apiserver always writes it (null if unset)."""
    obj.setdefault("eventTime", None)


def _default_network_policy(obj: JsonDict) -> None:
    spec = _child(obj, "spec")
    for direction in ("ingress", "egress"):
        for rule in _dicts_in(spec, direction):
            for port in _dicts_in(rule, "ports"):
                _default_pointer(port, "protocol", "TCP")
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])


_DEFAULTERS: dict[tuple[str, str, str], _Defaulter] = {
    ("", "v1", "Pod"): _default_pod,
    ("", "v1", "PodTemplate"): _default_pod_template_object,
    ("", "v1", "ReplicationController"): _default_replication_controller,
    ("", "v1", "Service"): _default_service,
    ("", "v1", "Secret"): _default_secret,
    ("", "v1", "ConfigMap"): _drop_empty_data,
    ("", "v1", "Event"): _default_event,
    ("", "v1", "Namespace"): _default_namespace,
    ("", "v1", "PersistentVolumeClaim"): _default_persistent_volume_claim,
    ("", "v1", "PersistentVolume"): _default_persistent_volume,
    ("apps", "v1", "Deployment"): _default_deployment,
    ("apps", "v1", "StatefulSet"): _default_stateful_set,
    ("apps", "v1", "DaemonSet"): _default_daemon_set,
    ("apps", "v1", "ReplicaSet"): _default_replica_set,
    ("batch", "v1", "Job"): _default_job,
    ("batch", "v1", "CronJob"): _default_cron_job,
    ("networking.k8s.io", "v1", "NetworkPolicy"): _default_network_policy,
}
