"""The emulator's HTTP front: routes Kubernetes API paths to ``kubeemu.api`` and streams watches.

Requests arrive from real clients (the Python clients, kubectl, helm) over plain HTTP on
127.0.0.1.  Each is parsed into (type, namespace, name, subresource, verb), passed through fault
injection, served from :class:`~kubeemu.api.Api` / :class:`~kubeemu.store.Store`, and recorded in
the audit log.  Discovery and OpenAPI come from ``kubeemu.discovery``; the admin API under
``/_emu/`` is in ``kubeemu.admin``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web
from multidict import CIMultiDict

from kubeemu import discovery, errors, protobuf, selectors, table
from kubeemu.api import Api, DeleteOptions, Result, WriteOptions
from kubeemu.audit import AuditLog, AuditRecord
from kubeemu.controllers import Controllers, ControllerSettings
from kubeemu.faults import FaultInjector
from kubeemu.registry import Registry, ResourceType
from kubeemu.store import Change, Store

JsonDict = dict[str, Any]

_TRUE = {"1", "t", "T", "true", "True", "TRUE"}
_FALSE = {"0", "f", "F", "false", "False", "FALSE"}
DEFAULT_WATCH_TIMEOUT = 1800.0
_LATEST = -1  # a continue token's resourceVersion meaning "the current state" (as etcd3's)


def parse_bool(value: str | None, name: str) -> bool | None:
    """Go's strconv.ParseBool, which the apiserver uses for query booleans."""
    if value is None or value == "":
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise errors.bad_request(f'invalid boolean value for {name}: "{value}"')


@dataclass
class Target:
    """A resource request decoded from the URL."""

    rtype: ResourceType
    namespace: str
    name: str
    subresource: str

    @property
    def storage_namespace(self) -> str:
        return self.namespace if self.rtype.namespaced else ""


@dataclass
class EmulatorSettings:
    bookmark_interval: float = 60.0
    default_watch_timeout: float = DEFAULT_WATCH_TIMEOUT


class Emulator:
    """All state of one emulated apiserver; :meth:`app` builds its aiohttp application."""

    def __init__(
        self,
        settings: EmulatorSettings | None = None,
        seed: int | None = None,
        controller_settings: ControllerSettings | None = None,
    ):
        self.settings = settings or EmulatorSettings()
        self.store = Store()
        self.registry = Registry()
        self.api = Api(self.store, self.registry)
        self.audit = AuditLog()
        self.faults = FaultInjector(seed)
        self.controllers = Controllers(self.api, controller_settings)
        self._openapi_cache: dict[str, tuple[int, JsonDict]] = {}
        self._registry_generation = 0
        self.store.add_listener(self._track_crds)
        self._bootstrap_namespaces()

    # --- bootstrap ------------------------------------------------------------------------------
    def _bootstrap_namespaces(self) -> None:
        namespaces = self.registry.get("", "v1", "namespaces")
        assert namespaces is not None
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.api.create(
                namespaces,
                "",
                {"metadata": {"name": name}},
                WriteOptions(field_manager="kube-apiserver"),
            )

    def _track_crds(self, change: Change) -> None:
        """Serve a CRD's versions once stored, stop serving them once it is gone."""
        if change.group_resource != ("apiextensions.k8s.io", "customresourcedefinitions"):
            return
        if change.event_type == "DELETED":
            self.registry.remove_crd(change.name)
        else:
            self.registry.install_crd(change.obj)
        self._registry_generation += 1
        self._openapi_cache.clear()

    # --- application ----------------------------------------------------------------------------
    def app(self) -> web.Application:
        from kubeemu import admin

        application = web.Application(client_max_size=64 * 1024 * 1024)
        application["emulator"] = self
        admin.add_routes(application, self)
        application.on_startup.append(self._on_startup)
        application.on_cleanup.append(self._on_cleanup)
        application.router.add_route("*", "/{tail:.*}", self.handle)
        return application

    async def _on_startup(self, _: web.Application) -> None:
        self.controllers.start()

    async def _on_cleanup(self, _: web.Application) -> None:
        self.store.drop_all_watches()
        await self.controllers.stop()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        try:
            simple = self._simple_endpoint(path)
            if simple is not None:
                return simple
            return await self._handle_api(request, path)
        except errors.ApiError as exc:
            return _status_response(exc)

    def _simple_endpoint(self, path: str) -> web.StreamResponse | None:
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/version":
            return _json(discovery.VERSION_INFO)
        if path == "/api":
            return _json(discovery.api_versions())
        if path == "/apis":
            return _json(discovery.api_group_list(self.registry))
        if path == "/openapi/v3":
            return _json(self._cached_openapi("", lambda: discovery.openapi_root(self.registry)))
        if path.startswith("/openapi/v3/"):
            return self._openapi_group_version(path.removeprefix("/openapi/v3/"))
        if path == "/openapi/v2":
            raise errors.unknown_path()
        return None

    def _cached_openapi(self, key: str, build: Callable[[], JsonDict]) -> JsonDict:
        cached = self._openapi_cache.get(key)
        if cached is None or cached[0] != self._registry_generation:
            cached = (self._registry_generation, build())
            self._openapi_cache[key] = cached
        return cached[1]

    def _openapi_group_version(self, rest: str) -> web.StreamResponse:
        parts = rest.split("/")
        if parts[0] == "api" and len(parts) == 2:
            group, version = "", parts[1]
        elif parts[0] == "apis" and len(parts) == 3:
            group, version = parts[1], parts[2]
        else:
            raise errors.unknown_path()
        if version not in self.registry.group_versions().get(group, []):
            raise errors.unknown_path()
        document = self._cached_openapi(
            rest, lambda: discovery.openapi_group_version(self.registry, group, version)
        )
        return _json(document)

    # --- API requests ---------------------------------------------------------------------------
    async def _handle_api(self, request: web.Request, path: str) -> web.StreamResponse:
        segments = [s for s in path.split("/") if s]
        if segments and segments[0] == "api" and len(segments) >= 2:
            group, version, rest = "", segments[1], segments[2:]
        elif segments and segments[0] == "apis" and len(segments) >= 2:
            if len(segments) == 2:
                body = discovery.api_group(self.registry, segments[1])
                if body is None:
                    raise errors.unknown_path()
                return _json({"kind": "APIGroup", "apiVersion": "v1", **body})
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            raise errors.unknown_path()
        if not rest:
            resource_list = discovery.api_resource_list(self.registry, group, version)
            if resource_list is None:
                raise errors.unknown_path()
            return _json(resource_list)
        target = self._target(group, version, rest)
        verb = _verb(request, target)
        return await self._serve(request, target, verb)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = self.registry.get(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        rtype = self.registry.get(group, version, rest[0])
        if rtype is None or len(rest) > 3:
            raise errors.unknown_path()
        name = rest[1] if len(rest) > 1 else ""
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource and not (
            (subresource == "status" and rtype.has_status)
            or (subresource == "scale" and rtype.has_scale)
            or (subresource == "finalize" and rtype.resource == "namespaces")
        ):
            raise errors.unknown_path()
        if rtype.namespaced and name and not namespace:
            raise errors.unknown_path()
        return Target(rtype, namespace, name, subresource)

    async def _serve(self, request: web.Request, target: Target, verb: str) -> web.StreamResponse:
        started = time.time()
        rv_before = str(self.store.revision)
        manager = request.query.get("fieldManager", "")
        record = AuditRecord(
            seq=self.audit.next_seq(),
            time=started,
            verb=verb,
            method=request.method,
            path=request.path_qs,
            group=target.rtype.group,
            resource=target.rtype.resource,
            namespace=target.namespace,
            name=target.name,
            subresource=target.subresource,
            field_manager=manager,
            user_agent=request.headers.get("User-Agent", ""),
            code=0,
            rv_before=rv_before,
            rv_after=rv_before,
            changed=False,
        )
        try:
            decision = self.faults.decide(
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
                self.audit.append(record)
                return await self._watch(request, target)
            response, changed = await self._dispatch(request, target, verb)
            record.code = response.status
            record.changed = changed
            return response
        except errors.ApiError as exc:
            record.code = exc.code
            return _status_response(exc)
        finally:
            if verb != "watch":
                record.rv_after = str(self.store.revision)
                self.audit.append(record)

    async def _dispatch(
        self, request: web.Request, target: Target, verb: str
    ) -> tuple[web.StreamResponse, bool]:
        rtype = target.rtype
        if verb not in rtype.verbs and verb not in ("get",):
            raise errors.method_not_allowed()
        if target.subresource == "scale":
            from kubeemu import scale

            return await scale.serve(self, request, target, verb)
        ns = target.storage_namespace
        if verb == "get":
            obj = self.api.get(rtype, ns, target.name)
            return self._object_response(request, rtype, obj), False
        if verb == "list":
            return self._list(request, target), False
        if verb == "create":
            body = await _read_body(request, rtype)
            result = self.api.create(rtype, target.namespace, body, _write_options(request))
            return _result_response(result), result.changed
        if verb == "update":
            body = await _read_body(request, rtype)
            result = self.api.update(
                rtype, ns, target.name, body, target.subresource or None, _write_options(request)
            )
            return _result_response(result), result.changed
        if verb == "patch":
            raw = await request.read()
            result = self.api.patch(
                rtype,
                ns,
                target.name,
                request.headers.get("Content-Type", ""),
                raw,
                target.subresource or None,
                _write_options(request),
            )
            return _result_response(result), result.changed
        if verb == "delete":
            options = await _delete_options(request)
            result = self.api.delete(rtype, ns, target.name, options)
            return _result_response(result), result.changed
        if verb == "deletecollection":
            return await self._delete_collection(request, target)
        raise errors.method_not_allowed()

    async def _delete_collection(
        self, request: web.Request, target: Target
    ) -> tuple[web.StreamResponse, bool]:
        options = await _delete_options(request)
        matching = self._select(request, target)
        changed = False
        for obj in matching:
            meta = obj["metadata"]
            try:
                result = self.api.delete(
                    target.rtype, str(meta.get("namespace") or ""), meta["name"], options
                )
                changed = changed or result.changed
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise
        listing = self._list_body(
            target.rtype, matching, {"resourceVersion": str(self.store.revision)}
        )
        return _json(listing), changed

    # --- list -----------------------------------------------------------------------------------
    def _select(self, request: web.Request, target: Target) -> list[JsonDict]:
        rtype = target.rtype
        namespace = target.namespace if rtype.namespaced and target.namespace else None
        label_text = request.query.get("labelSelector", "")
        field_text = request.query.get("fieldSelector", "")
        labels = selectors.parse_label_selector(label_text) if label_text else None
        fields = (
            selectors.parse_field_selector(
                field_text,
                allowed=selectors.supported_field_labels(rtype.group, rtype.resource),
                # built-ins word an unsupported label by their conversion; CRs generically
                group=None if rtype.is_custom else rtype.group,
                resource=None if rtype.is_custom else rtype.resource,
            )
            if field_text
            else None
        )
        selected = []
        for obj in self.store.list(rtype.group_resource, namespace):
            if labels is not None and not labels.matches(obj["metadata"].get("labels") or {}):
                continue
            if fields is not None and not fields.matches(obj):
                continue
            selected.append(obj)
        return selected

    def _list(self, request: web.Request, target: Target) -> web.StreamResponse:
        rtype = target.rtype
        selected = self._select(request, target)
        list_rv = self.store.revision
        start_after: tuple[str, str] | None = None
        token = request.query.get("continue")
        if token:
            list_rv, start_after = _decode_continue(token)
            if list_rv == _LATEST:
                list_rv = self.store.revision
            elif list_rv < self.store.oldest_watchable:
                # the apiserver offers a token that continues, inconsistently, at the latest state
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter, or use the "
                    "continue token in this response to retrieve the remainder of the results. "
                    "Continuing with the provided token results in an inconsistent list - objects "
                    "that were created, modified, or deleted between the time the first chunk was "
                    "returned and now may show up in the list.",
                    {"continue": _encode_continue(_LATEST, start_after)},
                )
            selected = [o for o in selected if _sort_key(o) > start_after]
        metadata: JsonDict = {"resourceVersion": str(list_rv)}
        limit = int(request.query.get("limit") or 0)
        if limit > 0 and len(selected) > limit:
            remaining = len(selected) - limit
            selected = selected[:limit]
            metadata["continue"] = _encode_continue(list_rv, _sort_key(selected[-1]))
            metadata["remainingItemCount"] = remaining
        if _wants_table(request):
            objects = [self.api.present(rtype, obj) for obj in selected]
            return _json(self._table(request, rtype, objects, metadata))
        return _json(self._list_body(rtype, selected, metadata))

    def _list_body(
        self, rtype: ResourceType, stored: list[JsonDict], metadata: JsonDict
    ) -> JsonDict:
        """A ``<Kind>List`` of stored objects, served at ``rtype``'s version."""
        items = [self.api.present(rtype, o) for o in stored]
        if not rtype.is_custom:
            # items of a built-in list are encoded without their TypeMeta (typed clients see
            # kind=None); custom resources are unstructured and keep apiVersion and kind
            for item in items:
                del item["apiVersion"], item["kind"]
        return {
            "kind": rtype.list_kind,
            "apiVersion": rtype.group_version,
            "metadata": metadata,
            "items": items,
        }

    def _table(
        self, request: web.Request, rtype: ResourceType, objects: list[JsonDict], metadata: JsonDict
    ) -> JsonDict:
        columns: list[Any] | None
        if rtype.is_custom:
            columns = list(rtype.printer_columns) or None
        else:
            columns = table.builtin_columns(rtype.group, rtype.resource)
        include = request.query.get("includeObject", "Metadata")
        return table.to_table(
            objects, columns=columns, list_metadata=metadata, include_object=include
        )

    def _object_response(
        self, request: web.Request, rtype: ResourceType, obj: JsonDict
    ) -> web.StreamResponse:
        if _wants_table(request):
            return _json(
                self._table(
                    request,
                    rtype,
                    [obj],
                    {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                )
            )
        return _json(obj)

    # --- watch ----------------------------------------------------------------------------------
    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        from kubeemu import watch

        return await watch.serve(self, request, target)


_DECODABLE_BODY_TYPES = frozenset(
    {"application/json", "application/yaml", "application/x-yaml", "text/yaml", ""}
)


async def _read_body(request: web.Request, rtype: ResourceType) -> JsonDict:
    raw = await request.read()
    content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
    if content_type == protobuf.MEDIA_TYPE:
        return protobuf.decode(raw)
    if content_type not in _DECODABLE_BODY_TYPES:
        raise errors.unsupported_media_type(
            errors.CUSTOM_BODY_MEDIA_TYPES if rtype.is_custom else errors.BUILTIN_BODY_MEDIA_TYPES
        )
    try:
        if content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
            decoded = yaml.safe_load(raw.decode("utf-8"))
        else:
            decoded = json.loads(raw.decode("utf-8")) if raw else None
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"error decoding the request body: {exc}") from None
    if not isinstance(decoded, dict):
        raise errors.bad_request("the request body must be a JSON object")
    return decoded


def _write_options(request: web.Request) -> WriteOptions:
    query = request.query
    dry_run = query.getall("dryRun", [])
    field_validation = query.get("fieldValidation") or "Warn"
    if field_validation not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f'fieldValidation must be one of "Ignore", "Strict", or "Warn", got {field_validation}'
        )
    return WriteOptions(
        field_manager=query.get("fieldManager") or None,
        dry_run="All" in dry_run,
        field_validation=field_validation,
        force=parse_bool(query.get("force"), "force"),
        user_agent=request.headers.get("User-Agent", ""),
    )


async def _delete_options(request: web.Request) -> DeleteOptions:
    body: JsonDict = {}
    raw = await request.read()
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    if raw and content_type == protobuf.MEDIA_TYPE:
        body = protobuf.decode(raw)
    elif raw.strip():
        try:
            decoded = json.loads(raw)
        except ValueError as exc:
            raise errors.bad_request(f"error decoding DeleteOptions: {exc}") from None
        if isinstance(decoded, dict):
            body = decoded
    query = request.query
    preconditions = body.get("preconditions") or {}
    grace = body.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
    dry_run = body.get("dryRun") or query.getall("dryRun", [])
    return DeleteOptions(
        propagation_policy=body.get("propagationPolicy") or query.get("propagationPolicy"),
        grace_period_seconds=int(grace) if grace not in (None, "") else None,
        precondition_uid=preconditions.get("uid"),
        precondition_resource_version=preconditions.get("resourceVersion"),
        dry_run="All" in (dry_run or []),
    )


def _verb(request: web.Request, target: Target) -> str:
    method = request.method
    if method == "GET":
        if parse_bool(request.query.get("watch"), "watch"):
            return "watch"
        return "get" if target.name else "list"
    if method == "POST":
        if target.name:
            raise errors.method_not_allowed()
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    raise errors.method_not_allowed()


def _wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return any("as=Table" in part for part in accept.split(","))


def _sort_key(obj: JsonDict) -> tuple[str, str]:
    meta = obj["metadata"]
    return (str(meta.get("namespace") or ""), str(meta["name"]))


def _encode_continue(resource_version: int, last: tuple[str, str]) -> str:
    payload = json.dumps({"v": "emu/1", "rv": resource_version, "start": list(last)})
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(payload["rv"]), (str(payload["start"][0]), str(payload["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError):
        raise errors.bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion"
        ) from None


def _json(
    body: JsonDict, status: int = 200, headers: CIMultiDict[str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _result_response(result: Result) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    for warning in result.warnings.headers():
        headers.add("Warning", warning)
    return _json(result.body, result.code, headers)


def _status_response(exc: errors.ApiError) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict(exc.headers)
    return _json(exc.status(), exc.code, headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
