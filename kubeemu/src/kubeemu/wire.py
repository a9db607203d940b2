"""Request decoding and response encoding shared by the HTTP handlers.

From an aiohttp request: query booleans (Go's ``strconv.ParseBool``), the verb, request bodies
(JSON, YAML, or the protobuf kinds ``kubeemu.protobuf`` knows), write options and
DeleteOptions for ``kubeemu.api``.  Towards the client: compact JSON responses, a
``kubeemu.api.Result`` with its ``Warning`` headers, and an ``ApiError`` as a Status body.
Used by ``kubeemu.server``, ``kubeemu.scale`` and ``kubeemu.watch``.
"""

from __future__ import annotations

from typing import Any

import yaml
from aiohttp import web
from multidict import CIMultiDict

from kubeemu import errors, jsonio, protobuf
from kubeemu.api import DeleteOptions, Result, WriteOptions
from kubeemu.emulator import Target
from kubeemu.registry import ResourceType

JsonDict = dict[str, Any]

GO_TRUE = frozenset({"1", "t", "T", "true", "True", "TRUE"})
GO_FALSE = frozenset({"0", "f", "F", "false", "False", "FALSE"})
_YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})
_DECODABLE_BODY_TYPES = frozenset({"application/json", "", *_YAML_TYPES})


def parse_bool(value: str | None, name: str) -> bool | None:
    """Go's strconv.ParseBool, which the apiserver uses for query booleans."""
    if value is None or value == "":
        return None
    if value in GO_TRUE:
        return True
    if value in GO_FALSE:
        return False
    raise errors.bad_request(f'invalid boolean value for {name}: "{value}"')


def verb(request: web.Request, target: Target) -> str:
    """The Kubernetes verb of a request (``watch``, ``list``, ``deletecollection``...)."""
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


def wants_table(request: web.Request) -> bool:
    """Whether the client asked for a ``meta.k8s.io/v1`` Table (``Accept: ...;as=Table``)."""
    accept = request.headers.get("Accept", "")
    return any("as=Table" in part for part in accept.split(","))


async def read_body(request: web.Request, rtype: ResourceType) -> JsonDict:
    """The object in a create or update body; 415 for a media type the apiserver refuses."""
    raw = await request.read()
    content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
    if content_type == protobuf.MEDIA_TYPE:
        return protobuf.decode(raw)
    if content_type not in _DECODABLE_BODY_TYPES:
        raise errors.unsupported_media_type(
            errors.CUSTOM_BODY_MEDIA_TYPES if rtype.is_custom else errors.BUILTIN_BODY_MEDIA_TYPES
        )
    try:
        if content_type in _YAML_TYPES:
            decoded = yaml.safe_load(raw.decode("utf-8"))
        else:
            decoded = jsonio.loads(raw.decode("utf-8")) if raw else None
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"error decoding the request body: {exc}") from None
    if not isinstance(decoded, dict):
        raise errors.bad_request("the request body must be a JSON object")
    return decoded


def write_options(request: web.Request) -> WriteOptions:
    """``fieldManager``, ``dryRun``, ``fieldValidation`` and ``force`` from the query."""
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


async def delete_options(request: web.Request) -> DeleteOptions:
    """DeleteOptions from the body (JSON or protobuf), else from the query."""
    body: JsonDict = {}
    raw = await request.read()
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    if raw and content_type == protobuf.MEDIA_TYPE:
        body = protobuf.decode(raw)
    elif raw.strip():
        try:
            decoded = jsonio.loads(raw)
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


def json_response(
    body: JsonDict, status: int = 200, headers: CIMultiDict[str] | None = None
) -> web.Response:
    """A compact ``application/json`` response."""
    return web.Response(
        body=jsonio.dumps(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def result_response(result: Result) -> web.Response:
    """The body and code of a write, with its warnings as ``Warning`` headers."""
    headers: CIMultiDict[str] = CIMultiDict()
    for warning in result.warnings.headers():
        headers.add("Warning", warning)
    return json_response(result.body, result.code, headers)


def status_response(exc: errors.ApiError) -> web.Response:
    """An API error as the apiserver sends it: a Status body and the error's headers."""
    if isinstance(exc, errors.PageNotFoundError):
        return web.Response(
            text=exc.message,
            status=exc.code,
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )
    headers: CIMultiDict[str] = CIMultiDict(exc.headers)
    return json_response(exc.status(), exc.code, headers)
