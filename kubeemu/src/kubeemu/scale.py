"""The ``/scale`` subresource: an ``autoscaling/v1`` Scale view of a workload's replica count.

Reads and writes ``spec.replicas`` of StatefulSets, Deployments and ReplicaSets, or the paths a
CRD declares in ``subresources.scale``; an HPA or ``kubectl scale`` uses it (row C4 of the
fidelity table in kubeemu/README.md).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from kubeemu import errors, patch
from kubeemu.api import WriteOptions
from kubeemu.clone import clone
from kubeemu.emulator import Emulator, Target
from kubeemu.schema import builtin_schema

JsonDict = dict[str, Any]


def _path(dotted: str) -> list[str]:
    return [p for p in dotted.split(".") if p]


def _read(obj: JsonDict, dotted: str) -> Any:
    node: Any = obj
    for part in _path(dotted):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _write(obj: JsonDict, dotted: str, value: Any) -> None:
    parts = _path(dotted)
    node = obj
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _paths(target: Target) -> tuple[str, str, str | None]:
    if target.rtype.scale_paths is not None:
        return target.rtype.scale_paths
    return (".spec.replicas", ".status.replicas", None)


def _selector_text(obj: JsonDict, selector_path: str | None) -> str:
    if selector_path:
        return str(_read(obj, selector_path) or "")
    match_labels = obj.get("spec", {}).get("selector", {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


def to_scale(obj: JsonDict, target: Target) -> JsonDict:
    spec_path, status_path, selector_path = _paths(target)
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        # ScaleSpec.replicas is omitempty: a Scale of 0 replicas has an empty spec
        "spec": {"replicas": replicas} if (replicas := int(_read(obj, spec_path) or 0)) else {},
        "status": {
            "replicas": int(_read(obj, status_path) or 0),
            "selector": _selector_text(obj, selector_path),
        },
    }


async def serve(
    emulator: Emulator, request: web.Request, target: Target, verb: str
) -> tuple[web.StreamResponse, bool]:
    api = emulator.api
    obj = api.get(target.rtype, target.storage_namespace, target.name)
    scale = to_scale(obj, target)
    if verb == "get":
        return web.json_response(scale), False
    raw = await request.read()
    if verb == "update":
        desired = json.loads(raw)
    elif verb == "patch":
        # Scale is a built-in type: strategic merge works on a built-in's /scale, but a custom
        # resource's /scale accepts only JSON, merge and apply patches (415 otherwise)
        desired = patch.apply_patch(
            request.headers.get("Content-Type", "").split(";")[0],
            scale,
            raw,
            builtin_schema("autoscaling", "v1", "Scale"),
            is_custom_resource=target.rtype.is_custom,
        )
    else:
        raise errors.method_not_allowed()
    expected_rv = desired.get("metadata", {}).get("resourceVersion")
    if expected_rv and expected_rv != obj["metadata"]["resourceVersion"]:
        raise errors.conflict(target.rtype.resource, target.rtype.group, target.name)
    updated = clone(obj)
    _write(updated, _paths(target)[0], int(desired.get("spec", {}).get("replicas", 0)))
    options = WriteOptions(
        field_manager=request.query.get("fieldManager") or None,
        user_agent=request.headers.get("User-Agent", ""),
    )
    result = api.update(target.rtype, target.storage_namespace, target.name, updated, None, options)
    return web.json_response(to_scale(result.body, target)), result.changed
