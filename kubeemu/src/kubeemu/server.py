"""The emulator's HTTP front: routes each request to the handler that serves it.

Requests arrive from real clients (the Python clients, kubectl, helm) over plain HTTP on
127.0.0.1.  Health, version, discovery and OpenAPI paths are answered from
``kubeemu.discovery``; the admin API under ``/_emu/`` is ``kubeemu.admin``.  A resource path is
decoded into a :class:`~kubeemu.emulator.Target` and a verb, passed through fault injection,
served by :class:`~kubeemu.api.Api` (reads and writes), ``kubeemu.listing`` (lists),
``kubeemu.watch`` (watch streams), ``kubeemu.scale`` (``/scale``) or ``kubeemu.podlogs``
(``pods/log``, proxied to the pod's kubelet), and recorded in the audit log.  :func:`app`
builds the aiohttp application of an :class:`~kubeemu.emulator.Emulator`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from kubeemu import admin, discovery, errors, listing, podlogs, scale, watch, wire
from kubeemu.audit import AuditRecord
from kubeemu.emulator import Emulator, EmulatorSettings, Target
from kubeemu.registry import Registry

__all__ = ["Emulator", "EmulatorSettings", "Target", "app"]

JsonDict = dict[str, Any]


def app(emulator: Emulator) -> web.Application:
    """The aiohttp application serving ``emulator``: the admin API, then every other path."""
    application = web.Application(client_max_size=64 * 1024 * 1024)
    application["emulator"] = emulator
    admin.add_routes(application, emulator)

    async def on_startup(_: web.Application) -> None:
        emulator.controllers.start()

    async def on_cleanup(_: web.Application) -> None:
        emulator.store.drop_all_watches()
        await emulator.controllers.stop()

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        try:
            simple = _simple_endpoint(emulator, path)
            if simple is not None:
                return simple
            return await _handle_api(emulator, request, path)
        except errors.ApiError as exc:
            return wire.status_response(exc)

    application.on_startup.append(on_startup)
    application.on_cleanup.append(on_cleanup)
    application.router.add_route("*", "/{tail:.*}", handle)
    return application


# --- health, version, discovery, OpenAPI ---------------------------------------------------------
def _simple_endpoint(emulator: Emulator, path: str) -> web.StreamResponse | None:
    registry = emulator.registry
    if path in ("/healthz", "/readyz", "/livez"):
        return web.Response(text="ok", content_type="text/plain")
    if path == "/version":
        return wire.json_response(discovery.VERSION_INFO)
    if path == "/api":
        return wire.json_response(discovery.api_versions())
    if path == "/apis":
        return wire.json_response(discovery.api_group_list(registry))
    if path == "/openapi/v3":
        root = emulator.cached_openapi("", lambda: discovery.openapi_root(registry))
        return wire.json_response(root)
    if path.startswith("/openapi/v3/"):
        return _openapi_group_version(emulator, path.removeprefix("/openapi/v3/"))
    if path == "/openapi/v2":
        raise errors.unknown_path()
    return None


def _openapi_group_version(emulator: Emulator, rest: str) -> web.StreamResponse:
    parts = rest.split("/")
    if parts[0] == "api" and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[0] == "apis" and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        raise errors.unknown_path()
    registry = emulator.registry
    if version not in registry.group_versions().get(group, []):
        raise errors.unknown_path()
    document = emulator.cached_openapi(
        rest, lambda: discovery.openapi_group_version(registry, group, version)
    )
    return wire.json_response(document)


# --- resource paths -----------------------------------------------------------------------------
async def _handle_api(emulator: Emulator, request: web.Request, path: str) -> web.StreamResponse:
    registry = emulator.registry
    segments = [s for s in path.split("/") if s]
    if segments and segments[0] == "api" and len(segments) >= 2:
        group, version, rest = "", segments[1], segments[2:]
    elif segments and segments[0] == "apis" and len(segments) >= 2:
        if len(segments) == 2:
            body = discovery.api_group(registry, segments[1])
            if body is None:
                raise _unknown_path(registry, segments[1])
            return wire.json_response({"kind": "APIGroup", "apiVersion": "v1", **body})
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        raise errors.unknown_path()
    if not rest:
        resource_list = discovery.api_resource_list(registry, group, version)
        if resource_list is None:
            raise _unknown_path(registry, group)
        return wire.json_response(resource_list)
    target = _target(registry, group, version, rest)
    if target.subresource == "log" and request.method == "GET":
        return await _serve(emulator, request, target, "get")  # log options, no watch
    return await _serve(emulator, request, target, wire.verb(request, target))


def _target(registry: Registry, group: str, version: str, rest: list[str]) -> Target:
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        candidate = registry.get(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    rtype = registry.get(group, version, rest[0])
    if rtype is None:
        raise _unknown_path(registry, group)
    if len(rest) > 3:
        raise errors.unknown_path()
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if subresource and not (
        (subresource == "status" and rtype.has_status)
        or (subresource == "scale" and rtype.has_scale)
        or (subresource == "log" and rtype.has_log)
        or (subresource == "finalize" and rtype.resource == "namespaces")
    ):
        if rtype.is_custom:  # the CRD handler's default case: the object is "not found"
            raise errors.not_found(rtype.resource, rtype.group, name)
        raise errors.unknown_path()
    if rtype.namespaced and name and not namespace:
        raise errors.unknown_path()
    return Target(rtype, namespace, name, subresource)


def _unknown_path(registry: Registry, group: str) -> errors.ApiError:
    """A path of ``group`` that nothing serves: a Status in a built-in group, else plain text."""
    return errors.unknown_path() if registry.is_builtin_group(group) else errors.PageNotFoundError()


async def _serve(
    emulator: Emulator, request: web.Request, target: Target, verb: str
) -> web.StreamResponse:
    """Fault injection, then the verb's handler; every request ends up in the audit log."""
    rv_before = str(emulator.store.revision)
    record = AuditRecord(
        seq=emulator.audit.next_seq(),
        time=time.time(),
        verb=verb,
        method=request.method,
        path=request.path_qs,
        group=target.rtype.group,
        resource=target.rtype.resource,
        namespace=target.namespace,
        name=target.name,
        subresource=target.subresource,
        field_manager=request.query.get("fieldManager", ""),
        user_agent=request.headers.get("User-Agent", ""),
        code=0,
        rv_before=rv_before,
        rv_after=rv_before,
        changed=False,
    )
    try:
        decision = emulator.faults.decide(
            verb, target.rtype.resource, target.rtype.group, target.namespace
        )
        if decision.delay_seconds:
            await asyncio.sleep(decision.delay_seconds)
        if decision.code:
            record.injected = str(decision.code)
            if decision.code == 429:
                raise errors.too_many_requests(decision.retry_after_seconds)
            raise errors.status_for_code(decision.code, decision.message)
        if verb == "watch":
            record.code = 200
            emulator.audit.append(record)
            return await watch.serve(emulator, request, target)
        response, changed = await _dispatch(emulator, request, target, verb)
        record.code = response.status
        record.changed = changed
        return response
    except errors.ApiError as exc:
        record.code = exc.code
        return wire.status_response(exc)
    finally:
        if verb != "watch":
            record.rv_after = str(emulator.store.revision)
            emulator.audit.append(record)


async def _dispatch(
    emulator: Emulator, request: web.Request, target: Target, verb: str
) -> tuple[web.StreamResponse, bool]:
    rtype = target.rtype
    api = emulator.api
    if verb not in rtype.verbs and verb not in ("get",):
        raise errors.method_not_allowed()
    if target.subresource == "scale":
        return await scale.serve(emulator, request, target, verb)
    if target.subresource == "log":
        if verb != "get":
            raise errors.method_not_allowed()
        return await podlogs.serve(emulator, request, target), False
    ns = target.storage_namespace
    if verb == "get":
        obj = api.get_shared(rtype, ns, target.name)
        return _object_response(request, target, obj), False
    if verb == "list":
        return listing.list_response(emulator, request, target), False
    if verb == "create":
        body = await wire.read_body(request, rtype)
        result = api.create(rtype, target.namespace, body, wire.write_options(request))
        return wire.result_response(result), result.changed
    if verb == "update":
        body = await wire.read_body(request, rtype)
        result = api.update(
            rtype, ns, target.name, body, target.subresource or None, wire.write_options(request)
        )
        return wire.result_response(result), result.changed
    if verb == "patch":
        raw = await request.read()
        result = api.patch(
            rtype,
            ns,
            target.name,
            request.headers.get("Content-Type", ""),
            raw,
            target.subresource or None,
            wire.write_options(request),
        )
        return wire.result_response(result), result.changed
    if verb == "delete":
        options = await wire.delete_options(request)
        result = api.delete(rtype, ns, target.name, options)
        return wire.result_response(result), result.changed
    if verb == "deletecollection":
        return await _delete_collection(emulator, request, target)
    raise errors.method_not_allowed()


async def _delete_collection(
    emulator: Emulator, request: web.Request, target: Target
) -> tuple[web.StreamResponse, bool]:
    options = await wire.delete_options(request)
    matching = listing.select(emulator, request, target)
    changed = False
    for obj in matching:
        meta = obj["metadata"]
        try:
            result = emulator.api.delete(
                target.rtype, str(meta.get("namespace") or ""), meta["name"], options
            )
            changed = changed or result.changed
        except errors.ApiError as exc:
            if exc.code != 404:
                raise
    listed = listing.list_body(
        emulator, target.rtype, matching, {"resourceVersion": str(emulator.store.revision)}
    )
    return wire.json_response(listed), changed


def _object_response(request: web.Request, target: Target, obj: JsonDict) -> web.StreamResponse:
    if wire.wants_table(request):
        metadata = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
        include = request.query.get("includeObject", "Metadata")
        return wire.json_response(listing.table_of(target.rtype, [obj], metadata, include))
    return wire.json_response(obj)
