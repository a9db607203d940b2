"""Discovery and OpenAPI documents built from the type registry.

Data comes from :class:`~kubeemu.registry.Registry` (built-ins and established CRDs) and the
Kubernetes 1.31 JSON schemas; it goes out as the ``/version``, ``/api``, ``/apis``,
``/api/v1``, ``/apis/<g>/<v>`` (with the subresources served: ``/status``, ``/scale``,
``pods/log``) and ``/openapi/v3`` bodies that kubectl, helm and the Python clients read before
anything else (rows D1-D3 and D6 of the fidelity table in kubeemu/README.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from kubeemu.registry import Registry, ResourceType
from kubeemu.schema import _builtin_definitions

JsonDict = dict[str, Any]

VERSION_INFO: JsonDict = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.9",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.22.12",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions() -> JsonDict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def api_group(registry: Registry, group: str) -> JsonDict | None:
    versions = registry.group_versions().get(group)
    if not versions or not group:
        return None
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": dict(entries[0])}


def api_group_list(registry: Registry) -> JsonDict:
    groups = [api_group(registry, group) for group in sorted(registry.group_versions()) if group]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [g for g in groups if g]}


def api_resource_list(registry: Registry, group: str, version: str) -> JsonDict | None:
    types = [t for t in registry if (t.group, t.version) == (group, version)]
    if not types:
        return None
    resources: list[JsonDict] = []
    for resource_type in types:
        entry: JsonDict = {
            "name": resource_type.resource,
            "singularName": resource_type.singular,
            "namespaced": resource_type.namespaced,
            "kind": resource_type.kind,
            "verbs": list(resource_type.verbs),
        }
        if resource_type.short_names:
            entry["shortNames"] = list(resource_type.short_names)
        if resource_type.categories:
            entry["categories"] = list(resource_type.categories)
        entry["storageVersionHash"] = storage_version_hash(resource_type)
        resources.append(entry)
        if resource_type.has_log:
            resources.append(_subresource(resource_type, "log", resource_type.kind, ["get"]))
        if resource_type.has_status:
            resources.append(
                _subresource(
                    resource_type, "status", resource_type.kind, ["get", "patch", "update"]
                )
            )
        if resource_type.has_scale:
            scale = _subresource(resource_type, "scale", "Scale", ["get", "patch", "update"])
            scale["group"] = "autoscaling"
            scale["version"] = "v1"
            resources.append(scale)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": types[0].group_version,
        "resources": resources,
    }


def _subresource(rtype: ResourceType, name: str, kind: str, verbs: list[str]) -> JsonDict:
    return {
        "name": f"{rtype.resource}/{name}",
        "singularName": "",
        "namespaced": rtype.namespaced,
        "kind": kind,
        "verbs": verbs,
    }


def storage_version_hash(rtype: ResourceType) -> str:
    """Upstream's ``discovery.StorageVersionHash``: base64 of sha256("group/version/kind")[:8].

    kube-apiserver hashes the storage version: every served version of a CRD shows its storage
    version's hash; a built-in kind is hashed at its served version.
    """
    version = rtype.storage_version or rtype.version
    digest = hashlib.sha256(f"{rtype.group}/{version}/{rtype.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- OpenAPI v3 ---------------------------------------------------------------------------------
def openapi_root(registry: Registry) -> JsonDict:
    """``/openapi/v3``: one entry per group/version, each with a content hash."""
    paths: JsonDict = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            key = f"apis/{group}/{version}" if group else f"api/{version}"
            document = openapi_group_version(registry, group, version)
            digest = _hash(json.dumps(document, sort_keys=True))[:32].upper()
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def openapi_group_version(registry: Registry, group: str, version: str) -> JsonDict:
    """One GV's document: a PATCH operation per resource that advertises ``fieldValidation``.

    kubectl and helm look for exactly that to decide that the server validates fields itself
    (they then send ``fieldValidation=Strict``); ``components.schemas`` lets ``kubectl explain``
    and client-side apply find the built-in schemas.
    """
    types = [t for t in registry if (t.group, t.version) == (group, version)]
    paths: JsonDict = {}
    schemas: JsonDict = {}
    for resource_type in types:
        gvk = {"group": group, "version": version, "kind": resource_type.kind}
        schema_name = _schema_name(resource_type)
        prefix = resource_type.path_prefix()
        if resource_type.namespaced:
            item = f"{prefix}/namespaces/{{namespace}}/{resource_type.resource}/{{name}}"
        else:
            item = f"{prefix}/{resource_type.resource}/{{name}}"
        operation = {
            "operationId": f"patch{resource_type.kind}",
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [
                {
                    "name": "dryRun",
                    "in": "query",
                    "schema": {"type": "string", "uniqueItems": True},
                },
                {
                    "name": "fieldManager",
                    "in": "query",
                    "schema": {"type": "string", "uniqueItems": True},
                },
                {
                    "name": "fieldValidation",
                    "in": "query",
                    "schema": {"type": "string", "uniqueItems": True},
                },
                {
                    "name": "force",
                    "in": "query",
                    "schema": {"type": "boolean", "uniqueItems": True},
                },
            ],
            "responses": {
                "200": {
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{schema_name}"}
                        }
                    }
                }
            },
        }
        get_operation = {
            "operationId": f"read{resource_type.kind}",
            "x-kubernetes-action": "get",
            "x-kubernetes-group-version-kind": gvk,
            "responses": operation["responses"],
        }
        paths[item] = {"get": get_operation, "patch": operation}
        schemas.update(_component_schemas(resource_type, schema_name, gvk))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.31.9"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _schema_name(rtype: ResourceType) -> str:
    if rtype.is_custom:
        reversed_group = ".".join(reversed(rtype.group.split(".")))
        return f"{reversed_group}.{rtype.version}.{rtype.kind}"
    _defs, by_gvk = _builtin_definitions()
    return by_gvk.get((rtype.group, rtype.version, rtype.kind), rtype.kind)


def _component_schemas(rtype: ResourceType, schema_name: str, gvk: JsonDict) -> JsonDict:
    if rtype.is_custom:
        raw = dict(rtype.schema.raw)
        raw["x-kubernetes-group-version-kind"] = [gvk]
        raw["properties"] = {k: v for k, v in raw.get("properties", {}).items() if k != "metadata"}
        raw["properties"]["metadata"] = {
            "allOf": [
                {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
            ]
        }
        found = {schema_name: _to_openapi(raw)}
        found.update(_closure("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"))
        return found
    return _closure(schema_name)


def _closure(root: str) -> JsonDict:
    """A definition and every definition it references, in OpenAPI v3 form."""
    defs, _ = _builtin_definitions()
    found: JsonDict = {}
    pending = [root]
    while pending:
        name = pending.pop()
        if name in found or name not in defs:
            continue
        converted = _to_openapi(defs[name])
        found[name] = converted
        pending.extend(_refs(converted))
    return found


def _refs(node: Any) -> list[str]:
    names: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                names.append(value.rsplit("/", 1)[-1])
            else:
                names.extend(_refs(value))
    elif isinstance(node, list):
        for value in node:
            names.extend(_refs(value))
    return names


def _to_openapi(node: Any) -> Any:
    """JSON-schema draft form (``type: [x, null]``, ``$defs`` refs) to OpenAPI v3 form."""
    if isinstance(node, list):
        return [_to_openapi(v) for v in node]
    if not isinstance(node, dict):
        return node
    converted: JsonDict = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            converted["$ref"] = "#/components/schemas/" + value.rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            if kinds:
                converted["type"] = kinds[0]
        elif key in ("properties", "patternProperties") and isinstance(value, dict):
            converted[key] = {k: _to_openapi(v) for k, v in value.items()}
        elif key in ("enum", "x-kubernetes-group-version-kind", "default", "example"):
            converted[key] = value
        else:
            converted[key] = _to_openapi(value)
    if "$ref" in converted and len(converted) > 1:
        ref = converted.pop("$ref")
        converted["allOf"] = [{"$ref": ref}]
    return converted
