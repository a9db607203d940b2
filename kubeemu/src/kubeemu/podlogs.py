"""The ``pods/log`` subresource: kube-apiserver's proxy to the kubelet of the pod's Node.

``GET /api/v1/namespaces/{ns}/pods/{name}/log`` (``kubectl logs``, the Python client's
``read_namespaced_pod_log``) is answered as kube-apiserver answers it (``LogREST.Get`` and
``pod.LogLocation`` of kubernetes' ``pkg/registry/core/pod``), step by step and in its order:

1. the query becomes PodLogOptions (``container``, ``follow``, ``previous``, ``sinceSeconds``,
   ``sinceTime``, ``timestamps``, ``tailLines``, ``limitBytes``; the first value of each; a
   flag is true unless ``0`` or ``false``): a malformed number or time is a 400 with Go's
   ``strconv``/``time`` message;
2. ``ValidatePodLogOptions``: a negative ``tailLines``, a ``limitBytes`` or ``sinceSeconds``
   below 1, or ``sinceSeconds`` with ``sinceTime`` is a 422 naming every problem;
3. the pod, from the store (404 ``pods "x" not found``);
4. the container: the ``container`` parameter, which must name one of the pod's (init and
   ephemeral ones included), else the pod's only container (400 with the names otherwise);
5. no ``spec.nodeName``: 204 No Content, an empty body (nothing runs the pod yet);
6. the Node, from the store (a missing one is worded as a missing pod, as kube-apiserver's
   node getter words it); its address from ``status.addresses`` in kube-apiserver's default
   ``--kubelet-preferred-address-types`` order (Hostname, InternalDNS, InternalIP,
   ExternalDNS, ExternalIP: 500 when none is there); its port from
   ``status.daemonEndpoints.kubeletEndpoint.Port`` (10250 when unset);
7. ``GET https://address:port/containerLogs/{ns}/{pod}/{container}`` with the options that are
   set (sorted, as Go's ``url.Values`` encodes them), without verifying the kubelet's
   certificate or presenting one (a kube-apiserver without ``--kubelet-certificate-authority``
   and ``--kubelet-client-certificate``). The kubelet's answer is streamed to the client as
   ``text/plain``, each piece as it comes (``follow`` streams until the kubelet ends);
   a kubelet error becomes a Status as kube-apiserver's ``GenericHttpResponseChecker`` makes
   it (400 keeps the kubelet's text, 404 does not, 500 is an InternalError); a redirect is
   not followed (500 ``redirects forbidden``); a kubelet that cannot be reached is a 500
   ``Get "URL": dial tcp …`` (Go's wording for a refused or failed connection; other
   transport errors carry Python's text).

Data comes from the emulator's store (pods, Nodes) and from the kubelet's endpoint; it goes
to the client. ``kubeemu.server`` routes the requests here (row C7 of the fidelity table in
kubeemu/README.md).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urljoin

import aiohttp
from aiohttp import web
from multidict import MultiMapping

from kubeemu import errors, fielderrors
from kubeemu.emulator import Emulator, Target
from kubeemu.goformat import go_quote

JsonDict = dict[str, Any]
T = TypeVar("T")

NODES = ("", "nodes")
PREFERRED_ADDRESS_TYPES = ("Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP")
"""kube-apiserver's default ``--kubelet-preferred-address-types``."""
DEFAULT_KUBELET_PORT = 10250
"""kube-apiserver's ``--kubelet-port``, for a Node that advertises no port."""
CONNECT_TIMEOUT = 30.0
REDIRECTS = frozenset({301, 302, 303, 307, 308})
"""The answers Go's HTTP client follows, which kube-apiserver refuses to (``PreventRedirects``)."""
MAX_ERROR_BODY = 50000
"""How much of a kubelet's error answer is read (``maxReadLength`` upstream)."""
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64 = (-(2**63), 2**63 - 1)
RFC3339 = "2006-01-02T15:04:05Z07:00"
_TIME_ELEMENTS = (
    ("2006", r"[0-9]{4}"), ("-", "-"), ("01", r"[0-9]{2}"), ("-", "-"), ("02", r"[0-9]{2}"),
    ("T", "T"), ("15", r"[0-9]{1,2}"), (":", ":"), ("04", r"[0-9]{2}"), (":", ":"),
    ("05", r"[0-9]{2}(\.[0-9]+)?"), ("Z07:00", r"Z|[+-][0-9]{2}:[0-9]{2}"),
)  # fmt: skip
"""Go's ``time.RFC3339`` layout, element by element, with what each element accepts."""


def _parse_int(text: str) -> int:
    """Go's ``strconv.ParseInt(text, 10, 64)``; a 400 with its error text otherwise."""
    if not _GO_INT.fullmatch(text):
        raise errors.bad_request(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not _INT64[0] <= value <= _INT64[1]:
        raise errors.bad_request(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def _parse_time(text: str) -> str:
    """Go's ``time.Parse(time.RFC3339, text)``, as the RFC 3339 text forwarded to the kubelet.

    A 400 with Go's error text otherwise: the first layout element the text does not match, or
    the first field out of range. (Go checks the day against the month; so does this.)
    """
    rest = text
    for element, pattern in _TIME_ELEMENTS:
        found = re.match(pattern, rest)
        if found is None:
            raise errors.bad_request(
                f"parsing time {go_quote(text)} as {go_quote(RFC3339)}: "
                f"cannot parse {go_quote(rest)} as {go_quote(element)}"
            )
        rest = rest[found.end() :]
    if rest:
        raise errors.bad_request(f"parsing time {go_quote(text)}: extra text: {go_quote(rest)}")
    numbers = [int(part) for part in re.findall(r"[0-9]+", text)[:6]]
    for value, (low, high), name in zip(
        numbers[1:],
        ((1, 12), (1, 31), (0, 23), (0, 59), (0, 59)),
        ("month", "day", "hour", "minute", "second"),
        strict=True,
    ):
        if not low <= value <= high:
            raise errors.bad_request(f"parsing time {go_quote(text)}: {name} out of range")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:  # 31 April and the like
        raise errors.bad_request(f"parsing time {go_quote(text)}: day out of range") from None
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _flag(text: str) -> bool:
    """Go's query-parameter bool: false only for ``0`` and ``false`` (any case)."""
    return not (text == "0" or text.lower() == "false")


@dataclass(frozen=True)
class LogOptions:
    """The PodLogOptions of one request (``None``: not given)."""

    container: str = ""
    follow: bool = False
    previous: bool = False
    since_seconds: int | None = None
    since_time: str | None = None
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None

    @classmethod
    def decode(cls, query: MultiMapping[str]) -> LogOptions:
        """Read the query as kube-apiserver's parameter codec does, field by field in order."""

        def given(name: str, parse: Callable[[str], T]) -> T | None:
            return parse(query.getone(name)) if name in query else None

        return cls(
            container=query.get("container", ""),
            follow=bool(given("follow", _flag)),
            previous=bool(given("previous", _flag)),
            since_seconds=given("sinceSeconds", _parse_int),
            since_time=given("sinceTime", _parse_time),
            timestamps=bool(given("timestamps", _flag)),
            tail_lines=given("tailLines", _parse_int),
            limit_bytes=given("limitBytes", _parse_int),
        )

    def validate(self, name: str) -> None:
        """``ValidatePodLogOptions``: a 422 ``PodLogOptions "name" is invalid`` naming all."""
        causes: list[fielderrors.Cause] = []
        if self.tail_lines is not None and self.tail_lines < 0:
            causes.append(
                fielderrors.invalid(
                    "tailLines", self.tail_lines, "must be greater than or equal to 0"
                )
            )
        if self.limit_bytes is not None and self.limit_bytes < 1:
            causes.append(
                fielderrors.invalid("limitBytes", self.limit_bytes, "must be greater than 0")
            )
        if self.since_seconds is not None and self.since_time is not None:
            causes.append(
                fielderrors.forbidden(
                    "[]", "at most one of `sinceTime` or `sinceSeconds` may be specified"
                )
            )
        elif self.since_seconds is not None and self.since_seconds < 1:
            causes.append(
                fielderrors.invalid("sinceSeconds", self.since_seconds, "must be greater than 0")
            )
        if causes:
            raise errors.invalid("PodLogOptions", "", name, causes)

    def kubelet_query(self) -> str:
        """The options the kubelet gets, in ``url.Values.Encode`` order (sorted by key)."""
        values = {
            "follow": "true" if self.follow else None,
            "limitBytes": _text(self.limit_bytes),
            "previous": "true" if self.previous else None,
            "sinceSeconds": _text(self.since_seconds),
            "sinceTime": self.since_time,
            "tailLines": _text(self.tail_lines),
            "timestamps": "true" if self.timestamps else None,
        }
        return urlencode({key: value for key, value in values.items() if value is not None})


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


def container_of(pod: JsonDict, wanted: str) -> str:
    """The container whose log is asked for (``validateContainer`` upstream)."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    names = [
        str(container.get("name", ""))
        for kind in ("initContainers", "containers", "ephemeralContainers")
        for container in spec.get(kind) or []
    ]
    if wanted:
        if wanted not in names:
            raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
        return wanted
    containers = spec.get("containers") or []
    if len(containers) == 1:
        return str(containers[0].get("name", ""))
    if not containers:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    raise errors.bad_request(
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
    )


def kubelet_location(node: JsonDict) -> tuple[str, int]:
    """The address and port kube-apiserver reaches a Node's kubelet at."""
    status = node.get("status") or {}
    addresses = status.get("addresses") or []
    host = next(
        (
            str(address.get("address", ""))
            for kind in PREFERRED_ADDRESS_TYPES
            for address in addresses
            if address.get("type") == kind
        ),
        None,
    )
    if host is None:
        known = " ".join(f"{{{a.get('type', '')} {a.get('address', '')}}}" for a in addresses)
        raise errors.ApiError(500, "", f"no preferred addresses found; known addresses: [{known}]")
    endpoint = (status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}
    port = int(endpoint.get("Port") or 0)
    return host, port if port > 0 else DEFAULT_KUBELET_PORT


def _join_host_port(host: str, port: int) -> str:
    """Go's ``net.JoinHostPort``: brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _dial_failure(url: str, host: str, port: int, error: OSError) -> errors.ApiError:
    """The 500 kube-apiserver answers when the kubelet cannot be reached (Go's words)."""
    address = host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError:
            return errors.ApiError(
                500, "", f"Get {go_quote(url)}: dial tcp: lookup {host}: no such host"
            )
        address = str(found[0][4][0])
    reason = (
        "connection refused"
        if error.errno == errno.ECONNREFUSED
        else (error.strerror or str(error)).lower()
    )
    return errors.ApiError(
        500,
        "",
        f"Get {go_quote(url)}: dial tcp {_join_host_port(address, port)}: connect: {reason}",
    )


_GENERIC_ANSWERS: dict[int, tuple[str, str | None]] = {
    401: ("Unauthorized", "the server has asked for the client to provide credentials"),
    403: ("Forbidden", None),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    406: ("NotAcceptable", None),
    409: ("Conflict", "the server reported a conflict"),
    415: ("UnsupportedMediaType", None),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: (
        "TooManyRequests",
        "the server has received too many requests and has asked us to try again later",
    ),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: (
        "Timeout",
        "the server was unable to return a response in the time allotted, but may still be "
        "processing the request",
    ),
}
"""``NewGenericServerResponse``'s reason and message per code (None: the kubelet's text)."""


def kubelet_error(status: int, text: str, name: str) -> errors.ApiError:
    """A kubelet's error answer as kube-apiserver returns it (``GenericHttpResponseChecker``).

    500 and 400 keep the kubelet's text; any other code gets ``NewGenericServerResponse``'s
    wording for it, with the subresource and pod appended.
    """
    if status == 500:
        causes = {"causes": [{"message": text}]}
        return errors.ApiError(500, "InternalError", f"Internal error occurred: {text}", causes)
    if status == 400:
        return errors.bad_request(text)
    if status == 404:
        reason, message = "NotFound", "the server could not find the requested resource"
    elif status in _GENERIC_ANSWERS:
        reason, fixed = _GENERIC_ANSWERS[status]
        message = fixed or text
        if status == 406 and text in ("", "unknown"):
            message = (
                "the server was unable to respond with a content type that the client supports"
            )
    elif status >= 500:
        reason = "InternalError"
        message = (
            f"an error on the server ({go_quote(text)}) has prevented the request from succeeding"
        )
    else:
        reason = ""
        message = (
            f"the server responded with the status code {status} but did not return more "
            "information"
        )
    return errors.ApiError(
        status, reason, f"{message} ( pods/log {name})", {"name": name, "kind": "pods/log"}
    )


async def serve(emulator: Emulator, request: web.Request, target: Target) -> web.StreamResponse:
    """Answer one ``GET …/pods/{name}/log`` (the steps in the module doc)."""
    options = LogOptions.decode(request.query)
    options.validate(target.name)
    pod = emulator.api.get_shared(target.rtype, target.namespace, target.name)
    container = container_of(pod, options.container)
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        return web.Response(status=204)
    node = emulator.store.get(NODES, "", node_name)
    if node is None:
        raise errors.not_found("pods", "", node_name)
    host, port = kubelet_location(node)
    path = "/".join(quote(part, safe="") for part in (target.namespace, target.name, container))
    url = f"https://{_join_host_port(host, port)}/containerLogs/{path}"
    query = options.kubelet_query()
    if query:
        url += f"?{query}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(ssl=False)
    ) as session:
        try:
            upstream = await session.get(url, allow_redirects=False)
        except aiohttp.ClientSSLError as exc:
            raise errors.ApiError(500, "", f"Get {go_quote(url)}: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            raise await _dial_failure(url, host, port, exc.os_error) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            message = str(exc) or "i/o timeout"
            raise errors.ApiError(500, "", f"Get {go_quote(url)}: {message}") from None
        async with upstream:
            location = upstream.headers.get("Location")
            if upstream.status in REDIRECTS and location:  # PreventRedirects upstream
                moved = urljoin(url, location)
                raise errors.ApiError(500, "", f"Get {go_quote(moved)}: redirects forbidden")
            if not 200 <= upstream.status <= 206:
                body = await upstream.content.read(MAX_ERROR_BODY)
                raise kubelet_error(upstream.status, body.decode("utf-8", "replace"), target.name)
            response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
