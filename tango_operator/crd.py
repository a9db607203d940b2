"""The ``tango.tango-controls.org/v1`` API as the operator reads it.

Data comes from a custom resource as the Kubernetes API returns it (a JSON dict, already
pruned and defaulted by the CRD schema in ``helm/tango-operator/crds/``); it goes out as
frozen, typed specs that the reconcilers and the renderer use. Everything the CRD schema
cannot reject (JSON inside ``config``, "exactly one of command/script", device-name syntax
inside strings) is checked here and reported as a :class:`SpecError` that names the field,
so a bad spec becomes state ``Error`` with a useful message instead of an exception.

Stdlib only: the watcher may import this module too.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tango_operator import tango_names

GROUP = "tango.tango-controls.org"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
FINALIZER = f"{GROUP}/finalizer"
FIELD_MANAGER = "tango-operator"
MANAGED_BY = "tango-operator"

DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DATABASEDS_PORT = 10000
SERVER_PORT = 45450
HEARTBEAT_PORT = 45460
EVENT_PORT = 45470

JsonDict = dict[str, Any]


class Kind(StrEnum):
    """The kinds of custom resource the operator reconciles."""

    DEVICE_SERVER = "DeviceServer"
    DATABASE_DS = "DatabaseDS"

    @property
    def plural(self) -> str:
        """The resource name of this kind in API paths (``deviceservers``, ``databaseds``)."""
        return _PLURALS[self]


_PLURALS = {Kind.DEVICE_SERVER: "deviceservers", Kind.DATABASE_DS: "databaseds"}

# Pod-level keys of a DeviceServer that are passed through to the pod unchanged.
POD_PASSTHROUGH_KEYS = (
    "env",
    "volumes",
    "volumeMounts",
    "resources",
    "securityContext",
    "nodeSelector",
    "affinity",
    "tolerations",
)


class SpecError(ValueError):
    """A spec the operator cannot act on; ``field`` is the JSON path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- dependencies ---------------------------------------------------------------------------------
_DEVICE_PART = r"[^/\s:]+"
_DEVICE = re.compile(rf"^{_DEVICE_PART}/{_DEVICE_PART}/{_DEVICE_PART}$")
_TANGO_URL = re.compile(
    rf"^tango://([^/:\s]+):(\d+)/({_DEVICE_PART}/{_DEVICE_PART}/{_DEVICE_PART})$"
)
_HOST_PORT = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):(\d+)$")


@dataclass(frozen=True)
class Dependency:
    """One ``dependsOn`` entry: a TANGO device (maybe on another TANGO host) or a TCP endpoint."""

    text: str
    device: str | None = None
    """Lower-cased ``domain/family/member`` for a device dependency."""
    tango_host: str | None = None
    """``host:port`` of the device's TANGO DB when given as a ``tango://`` URL."""
    host: str | None = None
    port: int | None = None

    @property
    def is_device(self) -> bool:
        """Whether this entry names a TANGO device (else it is a TCP endpoint)."""
        return self.device is not None


def parse_dependency(text: str, field_path: str) -> Dependency:
    """Classify one ``dependsOn`` string, or raise SpecError saying what is wrong with it."""
    stripped = text.strip()
    if _DEVICE.match(stripped):
        return Dependency(text=text, device=stripped.lower())
    url = _TANGO_URL.match(stripped)
    if url:
        return Dependency(
            text=text, device=url.group(3).lower(), tango_host=f"{url.group(1)}:{url.group(2)}"
        )
    endpoint = _HOST_PORT.match(stripped)
    if endpoint:
        port = int(endpoint.group(3))
        if not 0 < port < 65536:
            raise SpecError(field_path, f"port {port} out of range in {text!r}")
        return Dependency(text=text, host=endpoint.group(1), port=port)
    raise SpecError(
        field_path,
        f"{text!r} is neither a TANGO device (domain/family/member, optionally "
        "tango://host:port/domain/family/member) nor host:port",
    )


# --- dsconfig JSON --------------------------------------------------------------------------------
class ConfigMode(StrEnum):
    """How a DeviceServer's ``config`` is written to the TANGO DB (docs/tango.md).

    ``Update`` (the default, as the SKA charts' ``json2tango -w -a -u``) adds and changes and
    never removes; ``Declarative`` also removes what the document no longer lists. dsconfig's
    protected properties (memorized values ``__value``, ``polled_attr``, ...) stay in both.
    """

    UPDATE = "Update"
    DECLARATIVE = "Declarative"


CONFIG_MODE_ANNOTATION = f"{GROUP}/config-mode"
"""A DeviceServer's own ``ConfigMode``, over the workers' ``TANGO_OPERATOR_CONFIG_MODE``."""


class ConfigReload(StrEnum):
    """How a running server takes in a changed ``config`` (docs/tango.md).

    ``Restart`` (the default) rolls its pod: the pod template carries the document's hash,
    and the server starts again with what the TANGO DB now says. ``Init`` leaves the pod
    running: after writing the DB the workers send ``Init`` to each of the server's devices,
    which re-read their properties; clients keep their connections and event subscriptions.
    """

    RESTART = "Restart"
    INIT = "Init"


CONFIG_RELOAD_ANNOTATION = f"{GROUP}/config-reload"
"""A DeviceServer's own ``ConfigReload``, over the workers' ``TANGO_OPERATOR_CONFIG_RELOAD``."""

_META_KEYS = frozenset({"_version", "_source", "_title", "_date"})


@dataclass(frozen=True)
class TangoConfig:
    """The dsconfig JSON of one DeviceServer, checked for shape and cut to its own instance."""

    document: JsonDict
    """dsconfig JSON holding only this server instance (``servers → dsname → args``) and
    ``classes``: what gets written to the TANGO DB."""
    devices: tuple[str, ...]
    """Lower-cased device names of this instance, sorted."""
    ignored_instances: tuple[str, ...] = ()
    """Other ``server/instance`` entries present in the CR's config, which are not applied."""

    @property
    def digest(self) -> str:
        """A short hash of ``document`` (key order and spacing do not matter).

        On the pod template, so a change rolls the pod; in the status with the mode
        (``applied_as``).
        """
        canonical = json.dumps(self.document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def applied_as(self, mode: ConfigMode) -> str:
        """``status.configHash`` once applied in ``mode``: ``<digest>-<mode>``.

        The document or the mode changing is what makes the workers apply it again.
        """
        return f"{self.digest}-{mode}"


def _check_name(problem: str | None, path: str) -> None:
    if problem:
        raise SpecError(path, problem)


def _check_properties(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise SpecError(path, "must be an object of property name → list of strings")
    for name, values in value.items():
        _check_name(tango_names.label_problem(name), f"{path}.{name}")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SpecError(f"{path}.{name}", "property values must be a list of strings")
        if any("\x00" in v for v in values):
            raise SpecError(f"{path}.{name}", "a NUL character cannot be stored in the TANGO DB")


def _check_attribute_properties(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise SpecError(path, "must be an object of attribute → properties")
    for attribute, properties in value.items():
        _check_name(tango_names.label_problem(attribute), f"{path}.{attribute}")
        _check_properties(properties, f"{path}.{attribute}")


def _check_device(device: str, body: Any, path: str) -> None:
    _check_name(tango_names.device_problem(device), path)
    if not isinstance(body, dict):
        raise SpecError(path, "a device entry must be an object")
    for key, value in body.items():
        if key == "properties":
            _check_properties(value, f"{path}.properties")
        elif key == "attribute_properties":
            _check_attribute_properties(value, f"{path}.attribute_properties")
        elif key == "alias":
            if not isinstance(value, str):
                raise SpecError(f"{path}.alias", "must be a string")
            if value:  # "" is no alias
                _check_name(tango_names.word_problem(value, tango_names.NAME_MAX), f"{path}.alias")
        else:
            raise SpecError(
                f"{path}.{key}", "unknown key (expected properties, attribute_properties)"
            )


def _instances_of(servers: JsonDict) -> dict[tuple[str, str], Any]:
    """``{(server, instance): classes}`` from both the split and the ``Server/instance`` forms."""
    found: dict[tuple[str, str], Any] = {}
    for server_key, body in servers.items():
        if not isinstance(body, dict):
            raise SpecError(f"spec.config.servers.{server_key}", "must be an object")
        if "/" in server_key:
            server, instance = server_key.split("/", 1)
            found[(server, instance)] = body
        else:
            for instance, classes in body.items():
                found[(server_key, instance)] = classes
    return found


def _load_document(text: str) -> JsonDict:
    """Decode the ``config`` string into a dsconfig document with only the keys it may have."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError("spec.config", f"is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SpecError(
            "spec.config", "must be a JSON object with a 'servers' key (dsconfig format)"
        )
    unknown = set(document) - {"servers", "classes"} - _META_KEYS
    if unknown:
        raise SpecError(
            "spec.config", f"unknown top-level keys {sorted(unknown)} (dsconfig format)"
        )
    return document


def _select_instance(servers: JsonDict, dsname: str, instance: str) -> tuple[Any, list[str]]:
    """Find the classes of ``dsname/instance`` (case-insensitively) among ``servers``.

    Returns those classes (None when the instance is absent) and the other instances, as
    ``Server/instance`` names in sorted order.
    """
    wanted = (dsname.lower(), instance.lower())
    mine: Any = None
    ignored: list[str] = []
    for (server, inst), classes in sorted(_instances_of(servers).items()):
        if (server.lower(), inst.lower()) == wanted:
            mine = classes
        else:
            ignored.append(f"{server}/{inst}")
    return mine, ignored


def _instance_devices(mine: Any, dsname: str, instance: str) -> list[str]:
    """Check the classes of this server instance; return its device names, lower-cased."""
    if not isinstance(mine, dict):
        raise SpecError(f"spec.config.servers.{dsname}.{instance}", "must be an object")
    devices: list[str] = []
    for class_name, class_devices in mine.items():
        path = f"spec.config.servers.{dsname}.{instance}.{class_name}"
        _check_name(tango_names.word_problem(class_name, tango_names.NAME_MAX), path)
        if not isinstance(class_devices, dict):
            raise SpecError(path, "must be an object of device name → device")
        for device, body in class_devices.items():
            _check_device(device, body, f"{path}.{device}")
            devices.append(device.lower())
    return devices


def _check_classes(classes: Any) -> None:
    """Check the ``classes`` section: class → properties and attribute properties."""
    if not isinstance(classes, dict):
        raise SpecError("spec.config.classes", "must be an object")
    for class_name, body in classes.items():
        path = f"spec.config.classes.{class_name}"
        _check_name(tango_names.word_problem(class_name, tango_names.NAME_MAX), path)
        if not isinstance(body, dict):
            raise SpecError(path, "must be an object")
        if "properties" in body:
            _check_properties(body["properties"], f"{path}.properties")
        if "attribute_properties" in body:
            _check_attribute_properties(
                body["attribute_properties"], f"{path}.attribute_properties"
            )


def _spelling_hint(dsname: str, instance: str, found: list[str]) -> str:
    """Why ``Server/ps_2`` in the config is not this ``Server/ps-2`` (charts render both).

    TANGO matches server instance names exactly (up to case): a server started as ps-2 finds
    no device registered under ps_2, so the operator does not write the config under another
    instance than the one the pod runs, nor silently take one for the other.
    """
    wanted = f"{dsname}/{instance}".lower().replace("_", "-")
    near = [name for name in found if name.lower().replace("_", "-") == wanted]
    if not near:
        return ""
    return (
        f"; {near[0]} differs from spec.dsname/spec.args only in '-' and '_', which TANGO does "
        f"not treat as the same name (a server started as {dsname}/{instance} would find no "
        f"devices under {near[0]}): write spec.args and the config's instance key alike"
    )


def parse_config(text: str, *, dsname: str, instance: str) -> TangoConfig:
    """Parse the ``config`` string; keep only ``dsname/instance`` and the class properties."""
    document = _load_document(text)
    servers = document.get("servers", {})
    if not isinstance(servers, dict):
        raise SpecError("spec.config.servers", "must be an object")
    mine, ignored = _select_instance(servers, dsname, instance)
    devices: list[str] = []
    if mine is not None:
        devices = _instance_devices(mine, dsname, instance)
    elif servers:
        raise SpecError(
            "spec.config.servers",
            f"has no entry for this server instance {dsname}/{instance} "
            f"(found: {', '.join(ignored)}){_spelling_hint(dsname, instance, ignored)}",
        )
    classes = document.get("classes", {})
    _check_classes(classes)
    duplicates = sorted({d for d in devices if devices.count(d) > 1})
    if duplicates:
        raise SpecError("spec.config", f"devices listed twice: {', '.join(duplicates)}")
    own: JsonDict = {}
    if mine is not None:
        own["servers"] = {dsname: {instance: mine}}
    if classes:
        own["classes"] = classes
    return TangoConfig(
        document=own, devices=tuple(sorted(devices)), ignored_instances=tuple(ignored)
    )


# --- DeviceServer ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceServerSpec:
    """A validated DeviceServer spec."""

    dsname: str
    args: str
    command: str | None
    script: str | None
    config: TangoConfig | None
    config_text: str | None
    databaseds: str
    cluster_domain: str
    legacy_compatibility: bool
    enable_load_balancer: bool
    image: str
    image_pull_policy: str | None
    depends_on: tuple[Dependency, ...]
    pod: JsonDict = field(default_factory=dict)
    """The pod-level pass-through keys (POD_PASSTHROUGH_KEYS) that are set and not null."""
    post_start: str | None = None
    pre_stop: str | None = None
    config_mode: ConfigMode | None = None
    """The annotation ``CONFIG_MODE_ANNOTATION``; None: the workers' setting decides."""
    config_reload: ConfigReload | None = None
    """The annotation ``CONFIG_RELOAD_ANNOTATION``; None: the workers' setting decides."""

    @property
    def server_instance(self) -> str:
        """The TANGO server instance name, ``dsname/args``."""
        return f"{self.dsname}/{self.args}"

    @property
    def devices(self) -> tuple[str, ...]:
        """The lower-cased names of the devices the config gives this server instance."""
        return self.config.devices if self.config else ()


def _optional_str(spec: JsonDict, key: str) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpecError(f"spec.{key}", "must be a string")
    return value or None


def _required_str(spec: JsonDict, key: str) -> str:
    value = _optional_str(spec, key)
    if value is None or not value.strip():
        raise SpecError(f"spec.{key}", "is required")
    return value


RESERVED_VOLUME = "tango-operator-config"
"""The pod volume the operator adds for the launcher script and the config."""


class SeveralSpecError(SpecError):
    """Several problems in one spec, each in ``problems``.

    ``field`` and ``message`` are the first's (callers that show one still can); ``str()``
    names every one.
    """

    def __init__(self, problems: Sequence[SpecError]) -> None:
        super().__init__(problems[0].field, problems[0].message)
        self.problems = tuple(problems)
        self.args = ("; ".join(str(problem) for problem in self.problems),)


class _Problems:
    """Collects the SpecErrors of independent checks: a spec reports all of them at once."""

    def __init__(self) -> None:
        self.found: list[SpecError] = []

    @contextmanager
    def check(self) -> Iterator[None]:
        """Run one check; its SpecError is kept and the next check runs."""
        try:
            yield
        except SpecError as error:
            self.found.append(error)

    def raise_any(self) -> None:
        """Raise the one problem found, or all of them (``SeveralSpecError``)."""
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise SeveralSpecError(self.found)


def parse_device_server(resource: JsonDict) -> DeviceServerSpec:
    """The typed spec of a DeviceServer resource, or SpecError naming every problem found.

    Independent fields are checked independently (``SeveralSpecError`` when several are wrong);
    the config is checked once dsname and args are valid, as it is keyed by them.
    """
    spec = resource.get("spec")
    if not isinstance(spec, dict):
        raise SpecError("spec", "is required")
    problems = _Problems()
    dsname = args = ""
    command = script = config_text = None
    config: TangoConfig | None = None
    with problems.check():
        dsname = _required_str(spec, "dsname")
        _check_name(tango_names.server_problem(dsname), "spec.dsname")
    with problems.check():
        args = _required_str(spec, "args")
        _check_name(tango_names.word_problem(args), "spec.args")
    named = not problems.found
    with problems.check():
        command = _optional_str(spec, "command")
        script = _optional_str(spec, "script")
        if command and script:
            raise SpecError("spec.command", "give either command or script, not both")
        if not command and not script:
            raise SpecError("spec.command", "one of command or script is required")
    with problems.check():
        config_text = _optional_str(spec, "config")
        if config_text and named:
            config = parse_config(config_text, dsname=dsname, instance=args)
    depends_on: list[Dependency] = []
    with problems.check():
        depends_on_raw = spec.get("dependsOn") or []
        if not isinstance(depends_on_raw, list):
            raise SpecError("spec.dependsOn", "must be a list of strings")
        for index, entry in enumerate(depends_on_raw):
            with problems.check():
                depends_on.append(_own_dependency(entry, index, config))
    databaseds = ""
    with problems.check():
        databaseds = _required_str(spec, "databaseds")
        check_tango_host_name(databaseds, "spec.databaseds")
    pod = {key: spec[key] for key in POD_PASSTHROUGH_KEYS if spec.get(key) not in (None, {}, [])}
    for index, volume in enumerate(pod.get("volumes") or []):
        if isinstance(volume, dict) and volume.get("name") == RESERVED_VOLUME:
            problems.found.append(
                SpecError(f"spec.volumes[{index}].name", f"{RESERVED_VOLUME!r} is reserved")
            )
    cluster_domain = DEFAULT_CLUSTER_DOMAIN
    with problems.check():
        cluster_domain = _optional_str(spec, "clusterDomain") or DEFAULT_CLUSTER_DOMAIN
        check_dns_name(cluster_domain, "spec.clusterDomain")
    image = ""
    with problems.check():
        image = _required_str(spec, "image")
    image_pull_policy = post_start = pre_stop = None
    with problems.check():
        image_pull_policy = _optional_str(spec, "imagePullPolicy")
    with problems.check():
        post_start = _optional_str(spec, "postStart")
    with problems.check():
        pre_stop = _optional_str(spec, "preStop")
    config_mode = config_reload = None
    with problems.check():
        config_mode = _config_mode(resource)
    with problems.check():
        config_reload = _config_reload(resource)
    problems.raise_any()
    return DeviceServerSpec(
        dsname=dsname,
        args=args,
        command=command,
        script=script,
        config=config,
        config_text=config_text,
        databaseds=databaseds,
        cluster_domain=cluster_domain,
        legacy_compatibility=bool(spec.get("legacycompatibility", True)),
        enable_load_balancer=bool(spec.get("enableLoadBalancer", False)),
        image=image,
        image_pull_policy=image_pull_policy,
        depends_on=tuple(depends_on),
        pod=pod,
        post_start=post_start,
        pre_stop=pre_stop,
        config_mode=config_mode,
        config_reload=config_reload,
    )


def _config_mode(resource: JsonDict) -> ConfigMode | None:
    """The annotation ``CONFIG_MODE_ANNOTATION``: None when absent, SpecError when not a mode."""
    value = _annotation_choice(resource, CONFIG_MODE_ANNOTATION, ConfigMode, "configuration mode")
    return None if value is None else ConfigMode(value)


def _config_reload(resource: JsonDict) -> ConfigReload | None:
    """The annotation ``CONFIG_RELOAD_ANNOTATION``: None when absent, SpecError otherwise."""
    value = _annotation_choice(
        resource, CONFIG_RELOAD_ANNOTATION, ConfigReload, "way to reload a configuration"
    )
    return None if value is None else ConfigReload(value)


def _annotation_choice(
    resource: JsonDict, annotation: str, choices: type[StrEnum], what: str
) -> str | None:
    """The value of ``annotation`` if it is one of ``choices``; None when absent."""
    annotations = (resource.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(annotation)
    if value is None:
        return None
    if value not in {str(choice) for choice in choices}:
        expected = " or ".join(str(choice) for choice in choices)
        raise SpecError(
            f"metadata.annotations[{annotation}]",
            f"{value!r} is not a {what} (expected {expected})",
        )
    return str(value)


def _own_dependency(entry: Any, index: int, config: TangoConfig | None) -> Dependency:
    """One ``dependsOn`` entry, checked; a device of this server itself is refused."""
    if not isinstance(entry, str):
        raise SpecError(f"spec.dependsOn[{index}]", "must be a string")
    dependency = parse_dependency(entry, f"spec.dependsOn[{index}]")
    if dependency.device and config and dependency.device in config.devices:
        raise SpecError(
            f"spec.dependsOn[{index}]",
            f"{entry!r} is a device of this DeviceServer itself (a self-dependency never resolves)",
        )
    return dependency


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_dns_name(name: str, field_path: str) -> None:
    """A DNS name made of labels of at most 63 characters (``clusterDomain``)."""
    if len(name) > 253 or not all(_DNS_LABEL.match(label) for label in name.split(".")):
        raise SpecError(field_path, f"{name!r} is not a valid DNS name")


def check_tango_host_name(name: str, field_path: str) -> None:
    """A ``databaseds`` value: a DatabaseDS/Service name or a DNS name, with an optional port."""
    host = name.rsplit(":", 1)[0] if ":" in name else name
    if ":" in name and not name.rsplit(":", 1)[1].isdigit():
        raise SpecError(field_path, f"{name!r}: the port after ':' must be a number")
    labels = host.split(".")
    for label in labels:
        if len(label) > 63:
            raise SpecError(
                field_path,
                f"{name!r}: DNS label {label[:20]!r}... is {len(label)} characters, "
                "longer than the 63 Kubernetes allows for a Service name",
            )
        if not _DNS_LABEL.match(label):
            raise SpecError(field_path, f"{name!r} is not a valid DNS name")


# --- DatabaseDS -----------------------------------------------------------------------------------
# the images the SKA chart ska-tango-base 0.4.x runs for DataBaseds and the TANGO DB
DEFAULT_DATABASEDS_IMAGE = "artefact.skao.int/ska-tango-images-tango-cpp:9.5.0"
DEFAULT_TANGODB_IMAGE = "artefact.skao.int/ska-tango-images-tango-db:11.0.2"


@dataclass(frozen=True)
class DatabaseDSSpec:
    """A validated DatabaseDS spec (defaults for what the SKA chart does not emit)."""

    cluster_domain: str
    use_pv: bool
    enable_load_balancer: bool
    image_pull_policy: str | None
    storage_class: str | None
    storage_size: str
    databaseds_image: str
    tangodb_image: str
    databaseds_resources: JsonDict | None
    tangodb_resources: JsonDict | None
    credentials_secret: str | None
    """A user Secret with MYSQL_PASSWORD and MYSQL_ROOT_PASSWORD; None: the operator makes one."""
    retain_data: bool = True
    """``persistentVolumeClaimRetentionPolicy.whenDeleted``: Retain (the default) keeps the TANGO
    DB's claim when the DatabaseDS is deleted; Delete lets it go with the DatabaseDS."""


def parse_database_ds(resource: JsonDict) -> DatabaseDSSpec:
    """The typed spec of a DatabaseDS resource, or SpecError."""
    spec = resource.get("spec") or {}
    if not isinstance(spec, dict):
        raise SpecError("spec", "must be an object")
    name = str(resource.get("metadata", {}).get("name", ""))
    if len(name) > 63:
        raise SpecError(
            "metadata.name",
            f"is {len(name)} characters; a DatabaseDS names the Service DeviceServers reach "
            "as <name>:10000, and a Service name is at most 63 characters",
        )
    if not _DNS_LABEL.match(name) or not name[0].isalpha():
        raise SpecError(
            "metadata.name",
            f"{name!r} must be a DNS label starting with a letter (it names a Service)",
        )
    cluster_domain = _optional_str(spec, "clusterDomain") or DEFAULT_CLUSTER_DOMAIN
    check_dns_name(cluster_domain, "spec.clusterDomain")
    return DatabaseDSSpec(
        cluster_domain=cluster_domain,
        use_pv=bool(spec.get("usePV", False)),
        enable_load_balancer=bool(spec.get("enableLoadBalancer", False)),
        image_pull_policy=_optional_str(spec, "imagePullPolicy"),
        storage_class=_optional_str(spec, "tangoDBStorageClass"),
        storage_size=_optional_str(spec, "storageSize") or "1Gi",
        databaseds_image=_optional_str(spec, "databasedsImage") or DEFAULT_DATABASEDS_IMAGE,
        tangodb_image=_optional_str(spec, "tangoDBImage") or DEFAULT_TANGODB_IMAGE,
        databaseds_resources=spec.get("databasedsResources") or None,
        tangodb_resources=spec.get("tangoDBResources") or None,
        credentials_secret=_optional_str(spec, "credentialsSecret"),
        retain_data=_when_deleted(spec.get("persistentVolumeClaimRetentionPolicy")) == "Retain",
    )


RETENTION_POLICIES = ("Retain", "Delete")


def _when_deleted(policy: Any) -> str:
    """``spec.persistentVolumeClaimRetentionPolicy.whenDeleted`` (Retain unless set)."""
    policy = policy or {}
    path = "spec.persistentVolumeClaimRetentionPolicy"
    if not isinstance(policy, dict):
        raise SpecError(path, "must be an object with whenDeleted: Retain or Delete")
    value = policy.get("whenDeleted", "Retain")
    if value not in RETENTION_POLICIES:
        raise SpecError(f"{path}.whenDeleted", f"{value!r} is not Retain or Delete")
    return str(value)


def tango_host_for(databaseds: str, *, namespace: str, cluster_domain: str) -> str:
    """The in-cluster ``host:port`` TANGO_HOST for a ``databaseds`` value.

    A bare name is a Service in the CR's namespace (a DatabaseDS is served under its own
    name); a name with dots is taken as a DNS name. The port defaults to 10000.
    """
    host, _, port = databaseds.partition(":")
    return f"{in_cluster_host(host, namespace, cluster_domain)}:{port or DATABASEDS_PORT}"


def in_cluster_host(host: str, namespace: str, cluster_domain: str) -> str:
    """A host name as a pod in ``namespace`` resolves it, fully qualified.

    A name without a dot is a Service of the pod's own namespace (the first entry of its
    DNS search path): ``db`` → ``db.<namespace>.svc.<cluster_domain>``. Names with dots
    (qualified names, IP addresses) and ``localhost`` are left as written. The workers run in
    another namespace, so they must dial the qualified name, not the short one.
    """
    if "." in host or host == "localhost":
        return host
    return f"{host}.{namespace}.svc.{cluster_domain}"
