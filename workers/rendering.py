"""The child manifests of a DeviceServer or DatabaseDS, rendered from Jinja2 templates.

Data comes from the reconcilers (and the ``tango-operator render`` CLI): the CR dict as the API
returns it plus its typed spec from ``tango_operator.crd``. It goes out as complete manifests
(dicts) ready for server-side apply, in a fixed order: ConfigMap/PVC, then Services, then
NetworkPolicies (with ``network_policy`` only), then StatefulSets.

The templates in ``templates/<kind>/`` hold structure only. Every ``{{ expression }}`` is passed
through :func:`to_yaml_json` (the Environment's ``finalize``), so a value always comes out as one
JSON scalar, list or object (JSON is YAML): a newline, ``: `` or ``---`` in a user string can
never add keys or documents. Values are computed here, in Python, where they need logic. The
workers' path (``render_template``) parses a template's text once per shape and fills in the
values after the parse; ``render_text`` is the YAML text it must equal.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import Any, cast

import jinja2
import yaml

from tango_operator import crd, jsontext, names
from tango_operator.observed import digest_of
from workers import settings

JsonDict = dict[str, Any]

DEFAULT_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

PART_OF = "tango"
DEVICE_SERVER_APP = "tango-device-server"
DATABASEDS_APP = "tango-databaseds"
TANGODB_APP = "tango-db"
SCRIPT_HASH_ANNOTATION = f"{crd.GROUP}/script-hash"
CONFIG_HASH_ANNOTATION = f"{crd.GROUP}/config-hash"
"""On the pod template: a changed ``config`` rolls the pod, so the server reads its new
properties at start (TANGO devices read them at init)."""

CONFIG_VOLUME = crd.RESERVED_VOLUME
CONFIG_MOUNT = "/tango-operator"
TANGODB_PORT = 3306
DNS_PORT = 53
TANGO_PORTS = (crd.DATABASEDS_PORT, crd.SERVER_PORT, crd.HEARTBEAT_PORT, crd.EVENT_PORT)
"""What a TANGO client dials: a TANGO DB, and a device server's CORBA, heartbeat and event
ports (the operator's servers all use these)."""
NETWORK_POLICY_SUFFIX = "-network-policy"
# The MariaDB images run mysqld as this user (uid/gid 999); the TANGO DB pod runs as it
# from the start, so the container needs no capability at all.
MYSQL_UID = 999

# Characters a YAML reader refuses or folds inside a double-quoted scalar; JSON leaves them raw
# with ensure_ascii=False, so they are written as \uXXXX escapes (valid in both JSON and YAML).
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
# PyYAML reads a flow-mapping key only if it is shorter than 1024 characters; a longer one gets
# YAML's explicit-key marker.
_LONG_KEY = 1000


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it: rendering is on every reconcile."""


def _scalar(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    if isinstance(value, float) and "." not in text:
        # YAML 1.1 reads 1e+16 as a string; 1.0e+16 is a float in both JSON and YAML.
        return text.replace("e", ".0e", 1)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def to_yaml_json(value: Any) -> str:
    """``value`` as JSON text that a YAML reader turns back into exactly ``value``."""
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            text = _scalar(key if isinstance(key, str) else json.dumps(key))
            marker = "? " if len(text) >= _LONG_KEY else ""
            items.append(f"{marker}{text}: {to_yaml_json(item)}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_yaml_json(item) for item in value) + "]"
    return _scalar(value)


def _finalize(value: Any) -> str:
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming the variable
    values = _captured.values
    if values is None:
        return to_yaml_json(value)
    # the fast path (render_template): a placeholder now, the value after the YAML parse
    if isinstance(value, str):  # nearly every value: names, images, the TANGO host
        values.append(jsontext.dumps(value))
    else:  # json refuses NaN and infinities, which orjson would write as null
        values.append(json.dumps(value, ensure_ascii=False, allow_nan=False))
    return f'"{_MARK_OPEN}{len(values) - 1}{_MARK_CLOSE}"'


def kubelet_literal(text: str) -> str:
    """``text`` with ``$`` doubled, so the kubelet's ``$(VAR)`` expansion gives it back unchanged.

    For strings in a container's command, args and env values that are meant literally.
    """
    return text.replace("$", "$$")


def templates_dir() -> Path:
    """The templates folder: ``TANGO_OPERATOR_TEMPLATES``, else the repository's ``templates/``."""
    return Path(settings.templates_directory() or DEFAULT_TEMPLATES)


@cache
def _environment(directory: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,  # the templates do not change under a running worker
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )


def renderer_digest(directory: Path | None = None) -> str:
    """A digest of the renderer: the templates in ``directory`` and the operator's code.

    Part of every ``inputs_digest``: an operator upgrade (new templates, or new code anywhere
    in ``tango_operator`` or ``workers``, where the spec is parsed and names are made) renders
    every owner again once instead of trusting what the old renderer made of the same inputs.
    """
    return _renderer_digest(directory or templates_dir())


@cache
def _renderer_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    packages = [Path(crd.__file__).parent, Path(__file__).parent]
    sources = [(directory, path) for path in sorted(directory.rglob("*")) if path.is_file()]
    sources += [(root, path) for root in packages for path in sorted(root.rglob("*.py"))]
    for root, path in sources:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def inputs_digest(resource: JsonDict, **parameters: Any) -> str:
    """A digest of everything a render of ``resource`` with ``parameters`` reads.

    The custom resource's identity, labels, annotations and spec (not its status, version or
    finalizers, which no template uses), the keyword parameters of the render function, and
    ``renderer_digest``. Equal digests render equal manifests (``RenderPlan``).
    """
    metadata = resource.get("metadata") or {}
    return digest_of(
        {
            "renderer": renderer_digest(),
            "apiVersion": resource.get("apiVersion"),
            "kind": resource.get("kind"),
            "metadata": {field: metadata.get(field) for field in _RENDERED_METADATA},
            "spec": resource.get("spec"),
            "parameters": parameters,
        }
    )


_RENDERED_METADATA = ("name", "namespace", "uid", "labels", "annotations")
"""The fields of a custom resource's metadata that its children are rendered from."""


# Placeholders of the fast path: characters of Unicode's private use area, which YAML reads as
# they are inside a double-quoted scalar and which no template contains.
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_MARK_OPEN}([0-9]+){_MARK_CLOSE}")
_SKELETONS_MAX = 512


class _Captured(threading.local):
    values: list[str] | None = None


_captured = _Captured()
_skeletons: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_skeletons_lock = threading.Lock()


def render_text(name: str, context: JsonDict) -> str:
    """The YAML text of ``templates/<name>`` rendered with ``context`` (every value as JSON).

    The definition of what a template means: ``render_template`` returns exactly what a YAML
    reader makes of this text (the tests hold it to that).
    """
    return _environment(templates_dir()).get_template(name).render(context)


def render_template(name: str, context: JsonDict) -> JsonDict:
    """Render ``templates/<name>`` with ``context`` into one manifest (a fresh dict every call).

    The YAML parser was most of a reconcile's CPU, so it does not see the values: the template
    is rendered with a placeholder for every ``{{ expression }}``, and that text — the same for
    every resource that takes the same branches of the template — is parsed once and kept
    (its *skeleton*). Each call fills a copy of the skeleton with its values, each the JSON of
    what ``to_yaml_json`` would have written, so the result equals ``yaml.load(render_text())``.
    """
    directory = templates_dir()
    values: list[str] = []
    _captured.values = values
    try:
        text = _environment(directory).get_template(name).render(context)
    finally:
        _captured.values = None
    skeleton = _skeleton(str(directory), name, text)
    return cast(JsonDict, _filled(skeleton, values))


def _skeleton(directory: str, name: str, text: str) -> Any:
    key = (directory, name, text)
    with _skeletons_lock:
        found = _skeletons.get(key)
        if found is not None:
            _skeletons.move_to_end(key)
            return found
    parsed = yaml.load(text, Loader=_YAML_LOADER)
    if not isinstance(parsed, dict):
        raise ValueError(f"template {name} did not render one YAML mapping")
    with _skeletons_lock:
        _skeletons[key] = parsed
        while len(_skeletons) > _SKELETONS_MAX:
            _skeletons.popitem(last=False)
    return parsed


def _filled(node: Any, values: list[str]) -> Any:
    """A copy of ``node`` with every placeholder replaced by a fresh copy of its value."""
    if isinstance(node, dict):
        return {_filled(key, values): _filled(item, values) for key, item in node.items()}
    if isinstance(node, list):
        return [_filled(item, values) for item in node]
    if isinstance(node, str) and _MARK_OPEN in node:
        whole = _PLACEHOLDER.fullmatch(node)
        if whole is None:
            raise ValueError(f"a template puts {{{{ }}}} inside a larger scalar: {node!r}")
        return json.loads(values[int(whole.group(1))])
    return node


# --- common ---------------------------------------------------------------------------------------
def owner_reference(resource: JsonDict) -> JsonDict:
    """The controller ownerReference pointing at the CR (garbage collection, watch mapping)."""
    metadata = resource["metadata"]
    uid = metadata.get("uid")
    if not uid:
        # A child whose owner uid does not exist is garbage-collected at once: never guess.
        raise ValueError(f"{resource.get('kind')}/{metadata.get('name')} has no metadata.uid")
    return {
        "apiVersion": resource.get("apiVersion") or crd.API_VERSION,
        "kind": resource["kind"],
        "name": metadata["name"],
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def selector_labels(cr_name: str, app: str, component: str) -> dict[str, str]:
    """The immutable StatefulSet selector (and Service selector) of one child workload."""
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/instance": names.label_value(cr_name),
        "app.kubernetes.io/component": component,
    }


def child_labels(cr_name: str, app: str, component: str) -> dict[str, str]:
    """The labels of a child: its selector labels plus part-of and managed-by."""
    return {
        **selector_labels(cr_name, app, component),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": crd.MANAGED_BY,
    }


def _pod_labels(resource: JsonDict, labels: dict[str, str]) -> dict[str, str]:
    """The CR's own labels (SKA's component/function/domain/...) under ours; ours win."""
    own = resource["metadata"].get("labels") or {}
    return {**{k: v for k, v in own.items() if k not in labels}, **labels}


NOT_FOR_PODS = ("kubectl.kubernetes.io/last-applied-configuration",)
"""CR annotations that describe the CR itself and are not copied to its pods."""
NOT_FOR_PODS_PREFIXES = (f"{crd.GROUP}/", "meta.helm.sh/")
"""The operator's own annotations on a CR (settings, not pod metadata) and Helm's release
bookkeeping."""


def pod_annotations(resource: JsonDict, ours: dict[str, str] | None = None) -> dict[str, str]:
    """The CR's annotations for its pods, under ``ours``: the operator's own keys always win.

    The charts' ``global.annotations``, Vault agent injection and the like. Left out:
    kubectl's last-applied-configuration (the CR's whole manifest), the operator's
    ``tango.tango-controls.org/`` settings and Helm's ``meta.helm.sh/`` release keys.
    """
    own = resource["metadata"].get("annotations") or {}
    copied = {
        key: value
        for key, value in own.items()
        if isinstance(value, str)
        and key not in NOT_FOR_PODS
        and not key.startswith(NOT_FOR_PODS_PREFIXES)
    }
    return {**copied, **(ours or {})}


def _common(resource: JsonDict, app: str, component: str) -> JsonDict:
    metadata = resource["metadata"]
    labels = child_labels(metadata["name"], app, component)
    return {
        "namespace": metadata.get("namespace") or "default",
        "owner": owner_reference(resource),
        "labels": labels,
        "selector": selector_labels(metadata["name"], app, component),
        "pod_labels": _pod_labels(resource, labels),
        "pod_annotations": pod_annotations(resource),
    }


def _network_policy(
    context: JsonDict,
    name: str,
    *,
    ingress: tuple[int, ...],
    egress: tuple[int, ...],
    tangodb_selector: dict[str, str] | None = None,
) -> JsonDict:
    """The NetworkPolicy of the pods ``context`` selects (``templates/networkpolicy.yaml.j2``).

    Ingress to ``ingress`` from anywhere (in-cluster clients, the workers' probes, a
    LoadBalancer's outside clients); egress to DNS, to ``egress`` anywhere and, with
    ``tangodb_selector``, to the MariaDB port of those pods.
    """
    return render_template(
        "networkpolicy.yaml.j2",
        {
            **{key: context[key] for key in ("namespace", "owner", "labels", "selector")},
            "network_policy_name": names.network_policy(name, NETWORK_POLICY_SUFFIX),
            "ingress_ports": sorted(set(ingress)),
            "egress_ports": sorted(set(egress)),
            "dns_port": DNS_PORT,
            "tangodb_selector": tangodb_selector,
            "tangodb_port": TANGODB_PORT,
        },
    )


def _tango_host_port(tango_host: str) -> tuple[int, ...]:
    """The port of a ``host:port`` TANGO host, if it has one."""
    port = tango_host.rpartition(":")[2]
    return (int(port),) if port.isdigit() else ()


def _merge_env(ours: list[JsonDict], theirs: list[Any]) -> list[Any]:
    """Our variables, then the user's; a user entry replaces any earlier one of the same name."""
    merged: list[Any] = list(ours)
    position = {entry["name"]: index for index, entry in enumerate(merged)}
    for entry in theirs:
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name in position:
            merged[position[name]] = entry
        else:
            if isinstance(name, str):
                position[name] = len(merged)
            merged.append(entry)
    return merged


def _fqdn(service: str, namespace: str, cluster_domain: str) -> str:
    return f"{service}.{namespace}.svc.{cluster_domain}"


# --- DeviceServer ---------------------------------------------------------------------------------
def render_device_server(
    resource: JsonDict,
    spec: crd.DeviceServerSpec,
    *,
    tango_host: str,
    replicas: int,
    config_reload: crd.ConfigReload = crd.ConfigReload.RESTART,
    network_policy: bool = False,
) -> list[JsonDict]:
    """ConfigMap, Service, [NetworkPolicy] and StatefulSet of one DeviceServer.

    With ``config_reload`` Restart the pod template carries the config's hash, so a changed
    config rolls the pod; with Init it does not (the workers send Init to the devices).
    With ``network_policy`` the server's pod may be reached on its ports and reach DNS and
    the TANGO ports (its own TANGO host's too), nothing else.
    """
    name = resource["metadata"]["name"]
    context = _common(resource, DEVICE_SERVER_APP, "device-server")
    namespace = context["namespace"]
    service = names.service(name)
    config_map_name = names.config_map(name, "-config")
    pod = spec.pod
    config_json = (
        json.dumps(spec.config.document, sort_keys=True, indent=2) if spec.config else "{}"
    )
    if spec.script is not None:
        # PyTango names the server after its script file (argv[0] without .py), so the
        # launcher is mounted as <dsname>.py: the process registers as dsname/args.
        script_file = f"{spec.dsname}.py"
        command = ["python3", f"{CONFIG_MOUNT}/{script_file}"]
        config_items: list[JsonDict] | None = [
            {"key": "config.json", "path": "config.json"},
            {"key": "server.py", "path": script_file},
        ]
        mounts = [{"name": CONFIG_VOLUME, "mountPath": CONFIG_MOUNT, "readOnly": True}]
        annotations = {
            SCRIPT_HASH_ANNOTATION: hashlib.sha256(spec.script.encode("utf-8")).hexdigest()
        }
    else:
        command = [spec.command or ""]
        config_items = None
        mounts = []
        annotations = {}
    if spec.config is not None and config_reload == crd.ConfigReload.RESTART:
        annotations[CONFIG_HASH_ANNOTATION] = spec.config.digest
    endpoint = "giop:tcp::" if spec.legacy_compatibility else "giop:tcp:0.0.0.0:"
    ours = [
        {"name": "TANGO_HOST", "value": kubelet_literal(tango_host)},
        {"name": "TANGO_SERVER_PORT", "value": str(crd.SERVER_PORT)},
        {"name": "TANGO_ZMQ_HEARTBEAT_PORT", "value": str(crd.HEARTBEAT_PORT)},
        {"name": "TANGO_ZMQ_EVENT_PORT", "value": str(crd.EVENT_PORT)},
        {
            "name": "TANGO_SERVER_PUBLISH_HOSTNAME",
            "value": kubelet_literal(_fqdn(service, namespace, spec.cluster_domain)),
        },
    ]
    context.update(
        replicas=replicas,
        config_map_name=config_map_name,
        service_name=service,
        statefulset_name=names.statefulset(name),
        service_type="LoadBalancer" if spec.enable_load_balancer else "ClusterIP",
        server_port=crd.SERVER_PORT,
        heartbeat_port=crd.HEARTBEAT_PORT,
        event_port=crd.EVENT_PORT,
        config_json=config_json,
        script=spec.script,
        pod_annotations=pod_annotations(resource, annotations),
        image=spec.image,
        image_pull_policy=spec.image_pull_policy,
        command=[kubelet_literal(part) for part in command],
        args=[
            kubelet_literal(spec.args),
            "-ORBendPoint",
            endpoint + "$(TANGO_SERVER_PORT)",
            "-ORBendPointPublish",
            "giop:tcp:$(TANGO_SERVER_PUBLISH_HOSTNAME):$(TANGO_SERVER_PORT)",
        ],
        env=_merge_env(ours, pod.get("env") or []),
        resources=pod.get("resources"),
        security_context=pod.get("securityContext"),
        volume_mounts=[*(pod.get("volumeMounts") or []), *mounts],
        post_start=spec.post_start,  # one argv element of sh -c: data, never expanded
        pre_stop=spec.pre_stop,
        volumes=[
            *(pod.get("volumes") or []),
            {
                "name": CONFIG_VOLUME,
                "configMap": {"name": config_map_name}
                | ({"items": config_items} if config_items else {}),
            },
        ],
        node_selector=pod.get("nodeSelector"),
        affinity=pod.get("affinity"),
        tolerations=pod.get("tolerations"),
    )
    manifests = [
        render_template("deviceserver/configmap.yaml.j2", context),
        render_template("deviceserver/service.yaml.j2", context),
    ]
    if network_policy:
        server_ports = (crd.SERVER_PORT, crd.HEARTBEAT_PORT, crd.EVENT_PORT)
        egress = TANGO_PORTS + _tango_host_port(tango_host)
        manifests.append(_network_policy(context, name, ingress=server_ports, egress=egress))
    return [*manifests, render_template("deviceserver/statefulset.yaml.j2", context)]


# --- DatabaseDS -----------------------------------------------------------------------------------
def render_database_ds(
    resource: JsonDict,
    spec: crd.DatabaseDSSpec,
    *,
    credentials_secret: str,
    databaseds_replicas: int,
    network_policy: bool = False,
) -> list[JsonDict]:
    """[PVC], TANGO DB and DataBaseds Services, [their NetworkPolicies], their StatefulSets.

    With ``network_policy``: MariaDB may be reached on its port and reach DNS; DataBaseds may
    be reached on the TANGO DB port and reach DNS, the TANGO ports and its own MariaDB.
    """
    name = resource["metadata"]["name"]
    tangodb = _common(resource, TANGODB_APP, "database")
    databaseds = _common(resource, DATABASEDS_APP, "databaseds")
    namespace = tangodb["namespace"]
    shared = {
        "image_pull_policy": spec.image_pull_policy,
        "credentials_secret": credentials_secret,
        "tangodb_port": TANGODB_PORT,
        "databaseds_port": crd.DATABASEDS_PORT,
        "tangodb_service_name": names.service(name, "-tangodb"),
        "pvc_name": names.persistent_volume_claim(name, "-tangodb-storage"),
    }
    tangodb.update(
        shared,
        statefulset_name=names.statefulset(name, "-tangodb"),
        image=spec.tangodb_image,
        resources=spec.tangodb_resources,
        use_pv=spec.use_pv,
        storage_size=spec.storage_size,
        storage_class=spec.storage_class,
        mysql_uid=MYSQL_UID,
    )
    databaseds.update(
        shared,
        service_name=name,  # DeviceServers reach <name>:10000 (a DNS label, checked by api)
        statefulset_name=names.statefulset(name),
        replicas=databaseds_replicas,
        image=spec.databaseds_image,
        resources=spec.databaseds_resources,
        service_type="LoadBalancer" if spec.enable_load_balancer else "ClusterIP",
        mysql_host=f"{shared['tangodb_service_name']}:{TANGODB_PORT}",
        publish_hostname=kubelet_literal(_fqdn(name, namespace, spec.cluster_domain)),
    )
    manifests = []
    if spec.use_pv:
        manifests.append(render_template("databaseds/tangodb-pvc.yaml.j2", tangodb))
    manifests += [
        render_template("databaseds/tangodb-service.yaml.j2", tangodb),
        render_template("databaseds/service.yaml.j2", databaseds),
    ]
    if network_policy:
        manifests += [
            _network_policy(tangodb, f"{name}-tangodb", ingress=(TANGODB_PORT,), egress=()),
            _network_policy(
                databaseds,
                name,
                ingress=(crd.DATABASEDS_PORT,),
                egress=TANGO_PORTS,
                tangodb_selector=tangodb["selector"],
            ),
        ]
    manifests += [
        render_template("databaseds/tangodb-statefulset.yaml.j2", tangodb),
        render_template("databaseds/statefulset.yaml.j2", databaseds),
    ]
    return manifests
