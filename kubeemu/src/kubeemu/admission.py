"""What the apiserver does to an object between decoding a write and storing it.

Input is the object a client sent (already merged with the live object for updates and patches);
output is the object to store, or an :class:`~kubeemu.errors.ApiError`.  In order: pruning of
unknown fields under the request's ``fieldValidation``, built-in or CRD defaulting, schema and
metadata validation, immutable-field checks, and the per-kind effects the real apiserver applies
synchronously (Service cluster IPs and node ports, CRD status).
"""

from __future__ import annotations

import ipaddress
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from kubeemu import (
    crds,
    defaults,
    errors,
    managed_fields,
    schema_validation,
    structural,
    validation,
)
from kubeemu.goformat import go_quote, string_slice
from kubeemu.registry import ResourceType

JsonDict = dict[str, Any]

_CLUSTER_IP_NETWORK = ipaddress.ip_network("10.96.0.0/12")
_NODE_PORTS = range(30000, 32768)


@dataclass
class Warnings:
    """``Warning:`` headers to return (fieldValidation=Warn and friends)."""

    messages: list[str] = field(default_factory=list)

    def headers(self) -> list[str]:
        return [f'299 - "{_quote(message)}"' for message in self.messages]


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class Allocator:
    """Hands out Service cluster IPs and node ports, never twice (apiserver's allocators)."""

    def __init__(self) -> None:
        self._used_ips: set[str] = set()
        self._used_ports: set[int] = set()
        # skip the network address and .1 (the kubernetes Service in a real cluster)
        self._ips = (str(ip) for ip in itertools.islice(_CLUSTER_IP_NETWORK.hosts(), 1, None))

    def reserve_ip(self, ip: str) -> None:
        self._used_ips.add(ip)

    def release_ip(self, ip: str) -> None:
        self._used_ips.discard(ip)

    def allocate_ip(self) -> str:
        for ip in self._ips:
            if ip not in self._used_ips:
                self._used_ips.add(ip)
                return ip
        raise errors.ApiError(500, "InternalError", "cluster IP range exhausted")

    def allocate_port(self) -> int:
        for port in _NODE_PORTS:
            if port not in self._used_ports:
                self._used_ports.add(port)
                return port
        raise errors.ApiError(500, "InternalError", "node port range exhausted")

    def reserve_port(self, port: int) -> None:
        self._used_ports.add(port)


def prune_unknown_fields(
    rtype: ResourceType,
    obj: JsonDict,
    field_validation: str,
    warnings: Warnings,
    *,
    patched: bool = False,
) -> JsonDict:
    """Drop fields the schema does not know, failing, warning or staying silent as asked.

    ``patched`` says that ``obj`` is the result of a merge, JSON or strategic merge patch: the
    apiserver reports a Strict failure of those as a 422 on the field ``patch`` instead of the
    400 decoding error of a create or update body.
    """
    if not rtype.schema.known:
        return obj
    if not structural.unknown_fields(obj, rtype.schema):
        return obj
    pruned, dropped = structural.prune(obj, rtype.schema)
    names = [path.lstrip(".") for path in dropped]
    if field_validation == "Strict":
        listing = ", ".join(f'unknown field "{name}"' for name in names)
        raise _strict_decoding_error(rtype, f"strict decoding error: {listing}", obj, patched)
    if field_validation != "Ignore":
        warnings.messages.extend(f'unknown field "{name}"' for name in names)
    return pruned


def _strict_decoding_error(
    rtype: ResourceType, detail: str, obj: JsonDict, patched: bool
) -> errors.ApiError:
    if not patched:
        # the handlers' transformDecodeError: "<Kind> in version "<v>" cannot be handled as a ..."
        return errors.bad_request(
            f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
            f"{detail}"
        )
    # jsonPatcher / smpPatcher: NewInvalid(GroupKind{}, "", field.Invalid("patch", <patched>, ...))
    patched_json = json.dumps(obj, separators=(",", ":"), sort_keys=True)
    return errors.invalid(
        "",
        "",
        "",
        [
            (
                "patch",
                "FieldValueInvalid",
                f"Invalid value: {go_quote(patched_json)}: {detail}",
            )
        ],
    )


def default_object(rtype: ResourceType, obj: JsonDict, *, copy: bool = True) -> JsonDict:
    """``obj`` with the kind's defaults: a copy, or ``obj`` itself changed when not ``copy``."""
    if rtype.is_custom:
        return structural.apply_defaults(obj, rtype.schema, copy=copy)
    if rtype.resource == "customresourcedefinitions":
        return crds.default_crd(obj, copy=copy)
    return defaults.apply_builtin_defaults(rtype.group, rtype.version, rtype.kind, obj, copy=copy)


def read_custom_object(rtype: ResourceType, obj: JsonDict) -> JsonDict:
    """A stored custom resource as served: decoded in place under its version's schema.

    Pruned, nulls dropped and defaulted as ``structural.decode_stored`` says.
    """
    return structural.decode_stored(obj, rtype.schema)


def validate_object(rtype: ResourceType, obj: JsonDict, old: JsonDict | None) -> None:
    """Raise 422 Invalid with every cause found, like the apiserver's validation."""
    causes = validation.validate_metadata(
        obj, kind=rtype.kind, group=rtype.group, namespaced=rtype.namespaced
    )
    if rtype.is_custom:
        causes += schema_validation.validate(obj, rtype.schema)
    elif rtype.resource == "events":
        causes += validation.validate_event(obj, api_group=rtype.group)
    elif rtype.resource == "customresourcedefinitions":
        causes += crds.validate_crd(obj)
    else:
        causes += validation.validate_workload(rtype.kind, rtype.group, obj)
    if old is not None:
        if rtype.resource == "customresourcedefinitions":
            causes += crds.validate_crd_stored_versions(obj)
        causes += validation.validate_update_immutable(rtype.kind, rtype.group, old, obj)
        causes += _validate_new_finalizers_while_deleting(old, obj)
    if causes:
        name = str(obj.get("metadata", {}).get("name", ""))
        raise errors.invalid(rtype.kind, rtype.group, name, causes)


def _validate_new_finalizers_while_deleting(
    old: JsonDict, new: JsonDict
) -> list[tuple[str, str, str]]:
    old_meta = old.get("metadata", {})
    if not old_meta.get("deletionTimestamp"):
        return []
    added = set(new.get("metadata", {}).get("finalizers") or []) - set(
        old_meta.get("finalizers") or []
    )
    if not added:
        return []
    return [
        (
            "metadata.finalizers",
            "FieldValueForbidden",
            "Forbidden: no new finalizers can be added if the object is being deleted, "
            f"found new finalizers {string_slice(sorted(added)).text}",
        )
    ]


def allocate_service_addresses(obj: JsonDict, old: JsonDict | None, allocator: Allocator) -> None:
    """Give a Service its cluster IP (kept across updates) and node ports, in place."""
    spec = obj.setdefault("spec", {})
    service_type = spec.get("type", "ClusterIP")
    old_spec = (old or {}).get("spec", {})
    if service_type == "ExternalName":
        return
    if old_spec.get("clusterIP") and not spec.get("clusterIP"):
        spec["clusterIP"] = old_spec["clusterIP"]
    if not spec.get("clusterIP"):
        spec["clusterIP"] = allocator.allocate_ip()
    elif spec["clusterIP"] != "None" and old is None:
        allocator.reserve_ip(spec["clusterIP"])
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    if service_type in ("NodePort", "LoadBalancer"):
        old_ports = {
            (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
            for p in old_spec.get("ports", [])
        }
        for port in spec.get("ports", []):
            if port.get("nodePort"):
                allocator.reserve_port(int(port["nodePort"]))
                continue
            previous = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
            port["nodePort"] = previous or allocator.allocate_port()


def release_service_addresses(obj: JsonDict, allocator: Allocator) -> None:
    cluster_ip = obj.get("spec", {}).get("clusterIP")
    if cluster_ip and cluster_ip != "None":
        allocator.release_ip(str(cluster_ip))


def crd_with_status(rtype: ResourceType, crd: JsonDict, now: str) -> JsonDict:
    """A CRD as stored: accepted names, stored versions, NamesAccepted and Established.

    The names and conditions are what kube-apiserver's naming and establishing controllers
    write through the status subresource, so their fields go to manager ``kube-apiserver``'s
    status entry; ``storedVersions`` is set by the write itself and owned by no one.
    """
    status = crds.established_crd_status(crd)
    old_conditions = {c.get("type"): c for c in crd.get("status", {}).get("conditions", [])}
    for condition in status.get("conditions", []):
        previous = old_conditions.get(condition.get("type"))
        if previous and previous.get("status") == condition.get("status"):
            condition["lastTransitionTime"] = previous.get("lastTransitionTime", now)
        else:
            condition["lastTransitionTime"] = now

    def controllers_part(written: JsonDict) -> JsonDict:
        return {**crd, "status": {k: v for k, v in written.items() if k != "storedVersions"}}

    # the typed status has both fields from its creation on (acceptedNames with an empty
    # plural and kind, conditions null): the controllers never own the fields themselves
    before = {"acceptedNames": {"plural": "", "kind": ""}, "conditions": []}
    before.update(crd.get("status") or {})
    recorded = managed_fields.record_update(
        controllers_part(before),
        controllers_part(status),
        manager="kube-apiserver",
        schema=rtype.schema,
        api_version=rtype.group_version,
        now=now,
        subresource="status",
        status_subresource=True,
    )
    return {**recorded, "status": status}
