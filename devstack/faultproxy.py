"""A fault-injecting reverse proxy in front of a real kube-apiserver (faults on real semantics).

kubeemu injects errors, throttling, latency, watch drops and compaction into its own answers
(``kubeemu.faults``, its admin API). :class:`FaultProxy` does the same in front of the real
control plane (``devstack.controlplane``): a server on a free loopback port that forwards every
request to kube-apiserver over TLS (verified with the control plane's CA) and streams the answer
back chunk by chunk as it arrives (a watch is a long-lived chunked stream; nothing is buffered).
Request bodies, which are bounded, are read whole before they are sent on.

The proxy speaks HTTPS by default, with a serving certificate of a CA of its own
(``devstack.pki``, in its work directory; :attr:`FaultProxy.ca_file`): Go clients (kubectl,
helm, anything on client-go) send a kubeconfig's credentials only over TLS — against an
``http://`` server they go anonymous. ``tls=False`` serves plain HTTP, which the Python clients
accept with a token.

Identity passes through: the client's headers go upstream as they are (bar the hop-by-hop ones),
so its ``Authorization: Bearer`` token — the admin token of :attr:`FaultProxy.kubeconfig`, or a
ServiceAccount's — is what kube-apiserver authenticates, and RBAC applies to the caller. The proxy
holds no credentials of its own: a request without a token (or with a client certificate, which
a proxy cannot pass on) reaches the server as anonymous.

The faults are kubeemu's, imported from it: rules are :class:`kubeemu.faults.FaultRule`
(``verbs`` / ``resources`` / ``namespaces`` / ``rate`` / ``code`` / ``retry_after_seconds`` /
``latency_ms`` / ``latency_jitter_ms`` / ``message``), chosen by the same seeded
:class:`kubeemu.faults.FaultInjector` (latency adds up over matching rules, the first firing
error rule wins, ``injected`` counts the errors), and an error is answered with the Status body
of ``kubeemu.errors`` (``Retry-After`` and ``details.retryAfterSeconds`` for 429). Both modules
are plain Python (the standard library only), so importing them does not pull in the emulator's
server. What a rule is matched against — verb, resource, group, namespace — is decoded from the
path as kubeemu's router decodes it (:func:`request_info`): only resource requests can fail;
discovery, ``/version``, OpenAPI and health paths pass untouched.

The admin interface is kubeemu's ``KubeEmu`` one, as methods of the in-process object:
:meth:`~FaultProxy.set_faults`, :meth:`~FaultProxy.clear_faults`,
:meth:`~FaultProxy.drop_watches` (ends every open watch stream cleanly, as kubeemu's drop does;
clients see the stream end and re-watch), :meth:`~FaultProxy.compact` (etcd compaction, through
``ControlPlane.compact``) and :meth:`~FaultProxy.stats`. The errors it answers never reach
kube-apiserver, so its audit log has no trace of them: :meth:`~FaultProxy.injections` keeps a
record of each (:class:`Injection`: when, the request and its User-Agent, the code), the
counterpart of kubeemu's audit records with ``injected`` set. The proxy runs its own event loop in a
daemon thread of the process that made it: tests already hold the control plane in-process,
so they get synchronous calls with no admin endpoint and no process to start, and the proxy's
socket serves clients in other processes (the operator, kubectl, helm) all the same.

Not proxied: protocol upgrades (``kubectl exec``/``attach``/``port-forward``) — the
``Upgrade`` header is hop-by-hop and is not passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

import aiohttp
import yaml
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from devstack import pki
from kubeemu.errors import ApiError, status_for_code, too_many_requests
from kubeemu.faults import FaultInjector, FaultRule

JsonDict = dict[str, Any]
T = TypeVar("T")

# RFC 9110 §7.6.1 connection-specific headers, and what aiohttp recomputes itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "expect"}
# Go's strconv.ParseBool, as kube-apiserver (and kubeemu) read ``?watch=``
_GO_TRUE = frozenset({"1", "t", "T", "true", "True", "TRUE"})
# subresources of a namespace: /api/v1/namespaces/{name}/status is not a namespaced resource
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
INJECTIONS_KEPT = 200_000
"""The injected errors :meth:`FaultProxy.injections` keeps (the oldest fall off first)."""


class Upstream(Protocol):
    """What the proxy needs of the server behind it (``devstack.controlplane.ControlPlane``)."""

    url: str
    ca_file: Path
    admin_token: str

    def compact(self) -> int:
        """Compact the server's storage; the revision compacted to."""
        ...


@dataclass(frozen=True)
class Injection:
    """One error the proxy answered in kube-apiserver's place (the request never reached it)."""

    time: float
    """When the request arrived (``time.time()``, before any injected latency)."""
    method: str
    path: str
    verb: str
    resource: str
    group: str
    namespace: str
    user_agent: str
    code: int


class FaultProxyError(RuntimeError):
    """The proxy did not start."""


@dataclass(frozen=True)
class RequestInfo:
    """What a fault rule is matched against: the request's verb and resource."""

    verb: str
    resource: str
    group: str
    namespace: str


def request_info(method: str, path: str, query: Mapping[str, str]) -> RequestInfo | None:
    """The verb, resource, group and namespace of a resource request; ``None`` for any other.

    Decoded from the path the way kubeemu's router does, so that a rule matches the same
    requests on both servers: ``/api/{version}/...`` (the core group) and
    ``/apis/{group}/{version}/...``; the namespace only of ``namespaces/{ns}/{resource}...``
    (a Namespace object itself, and its ``status``/``finalize``, are cluster-scoped, as in
    kubeemu); the resource is the plural, whatever the subresource; GET is ``watch`` with a
    true ``watch`` parameter (or under the legacy ``/watch/`` prefix), else ``get`` with a name
    and ``list`` without; DELETE without a name is ``deletecollection``.
    """
    segments = [segment for segment in path.split("/") if segment]
    if len(segments) >= 3 and segments[0] == "api":
        group, rest = "", segments[2:]
    elif len(segments) >= 4 and segments[0] == "apis":
        group, rest = segments[1], segments[3:]
    else:
        return None
    legacy_watch = rest[0] == "watch"
    if legacy_watch:
        rest = rest[1:]
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    named = len(rest) > 1
    if method in ("GET", "HEAD"):
        if legacy_watch or query.get("watch", "") in _GO_TRUE:
            verb = "watch"
        else:
            verb = "get" if named else "list"
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    return RequestInfo(verb, rest[0], group, namespace)


def status_error(code: int, message: str, retry_after_seconds: int) -> ApiError:
    """The error kubeemu answers an injected fault with (the same Status body and headers)."""
    if code == 429:
        return too_many_requests(retry_after_seconds)
    return status_for_code(code, message)


def kubeconfig_document(
    server: str, token: str, ca_file: Path | None = None, user: str = "proxy-user"
) -> JsonDict:
    """A kubeconfig for ``server`` that authenticates with the bearer ``token``.

    ``ca_file`` is the CA that signed an ``https://`` server's certificate.
    """
    cluster: JsonDict = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "faultproxy", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "faultproxy", "context": {"cluster": "faultproxy", "user": user}}],
        "current-context": "faultproxy",
    }


class FaultProxy:
    """A running proxy: its URL and kubeconfig, and kubeemu's fault-injection admin methods.

    Make one with :meth:`start`; it answers on :attr:`url` until :meth:`stop` (or the end of a
    ``with`` block).
    """

    def __init__(self, upstream: Upstream, workdir: Path):
        self.upstream = upstream
        self.workdir = workdir
        self.url = ""
        self.kubeconfig = workdir / "kubeconfig"
        self.ca_file: Path | None = None  # the CA of the proxy's own certificate (HTTPS only)
        self._serving: ssl.SSLContext | None = None
        self._faults = FaultInjector()
        self._injections: deque[Injection] = deque(maxlen=INJECTIONS_KEPT)
        self._watches: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="faultproxy", daemon=True
        )
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ssl = ssl.create_default_context(cafile=str(upstream.ca_file))

    # --- lifecycle ------------------------------------------------------------------------------
    @classmethod
    def start(
        cls, upstream: Upstream, workdir: Path, *, tls: bool = True, timeout: float = 10.0
    ) -> FaultProxy:
        """Listen on a free loopback port; write :attr:`kubeconfig` (the upstream's admin token).

        ``tls``: HTTPS with a certificate of a CA made in ``workdir`` (:attr:`ca_file`), else
        plain HTTP.
        """
        workdir.mkdir(parents=True, exist_ok=True)
        proxy = cls(upstream, workdir)
        if tls:
            ca = pki.make_ca(workdir / "pki", "faultproxy-ca")
            serving = pki.issue(ca, workdir / "pki", "faultproxy")
            proxy.ca_file = ca.cert_file
            proxy._serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            proxy._serving.load_cert_chain(str(serving.cert_file), str(serving.key_file))
        proxy._thread.start()
        try:
            port = proxy._run(proxy._serve(), timeout)
        except BaseException as error:
            proxy.stop()
            raise FaultProxyError(f"the fault proxy did not start: {error!r}") from error
        proxy.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        proxy.write_kubeconfig(proxy.kubeconfig, upstream.admin_token, user="admin")
        return proxy

    async def _serve(self) -> int:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,  # Content-Encoding passes through with the bytes it names
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # a client that goes away cancels its handler, which closes the upstream request
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._serving)
        await site.start()
        port: int = self._runner.addresses[0][1]
        return port

    def stop(self) -> None:
        """End the open watches, stop serving, and stop the event loop's thread."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._run(self._shutdown(), 15.0)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    async def _shutdown(self) -> None:
        self._drop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, coroutine: Awaitable[T], timeout: float = 10.0) -> T:
        async def wrapped() -> T:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)

    def _call(self, function: Callable[[], T]) -> T:
        """``function()`` on the proxy's loop (the state it touches is the loop's)."""

        async def on_loop() -> T:
            return function()

        return self._run(on_loop())

    # --- admin: kubeemu's KubeEmu methods -------------------------------------------------------
    def set_faults(self, rules: Iterable[JsonDict], seed: int | None = None) -> None:
        """Replace the rules (kubeemu's format; ``ValueError`` for an unknown field)."""
        parsed = [FaultRule.from_dict(rule) for rule in rules]
        self._call(lambda: self._faults.set_rules(parsed, seed))

    def clear_faults(self) -> None:
        """No more faults (the injected-error count is kept, as kubeemu keeps it)."""
        self._call(lambda: self._faults.set_rules([]))

    def drop_watches(self) -> int:
        """End every open watch stream cleanly; the number ended."""
        return self._call(self._drop)

    def compact(self) -> int:
        """Compact the upstream's etcd (``ControlPlane.compact``); the revision compacted to."""
        return self.upstream.compact()

    def stats(self) -> JsonDict:
        """``faultsInjected`` and ``openWatches``, named as in kubeemu's ``stats()``."""
        return self._call(
            lambda: {"faultsInjected": self._faults.injected, "openWatches": len(self._watches)}
        )

    def injections(self) -> list[Injection]:
        """The errors injected so far, oldest first (at most ``INJECTIONS_KEPT``)."""
        return self._call(lambda: list(self._injections))

    def write_kubeconfig(self, path: Path, token: str, *, user: str = "proxy-user") -> Path:
        """Write a kubeconfig for the proxy that authenticates with ``token``; return ``path``."""
        path.write_text(yaml.safe_dump(kubeconfig_document(self.url, token, self.ca_file, user)))
        path.chmod(0o600)
        return path

    def _drop(self) -> int:
        watches = list(self._watches)
        for pump in watches:
            pump.cancel()
        return len(watches)

    # --- serving --------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        info = request_info(request.method, request.path, request.query)
        if info is not None:
            arrived = time.time()
            decision = self._faults.decide(info.verb, info.resource, info.group, info.namespace)
            if decision.delay_seconds:
                await asyncio.sleep(decision.delay_seconds)
            if decision.code:
                self._injections.append(
                    Injection(
                        time=arrived,
                        method=request.method,
                        path=request.path,
                        verb=info.verb,
                        resource=info.resource,
                        group=info.group,
                        namespace=info.namespace,
                        user_agent=request.headers.get("User-Agent", ""),
                        code=decision.code,
                    )
                )
                error = status_error(decision.code, decision.message, decision.retry_after_seconds)
                return web.Response(
                    body=json.dumps(error.status(), separators=(",", ":")).encode(),
                    status=error.code,
                    content_type="application/json",
                    headers=error.headers,
                )
        return await self._forward(request, watch=info is not None and info.verb == "watch")

    async def _forward(self, request: web.Request, *, watch: bool) -> web.StreamResponse:
        assert self._session is not None
        headers = CIMultiDict(
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in _NOT_FORWARDED
        )
        body = await request.read()
        try:
            upstream = await self._session.request(
                request.method,
                URL(self.upstream.url + request.raw_path, encoded=True),
                headers=headers,
                data=body if body else None,
                allow_redirects=False,
                # only what the client sent: no Accept-Encoding the client could not decode
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            )
        except aiohttp.ClientError as error:
            failure = ApiError(502, "InternalError", f"fault proxy: kube-apiserver: {error}")
            return web.json_response(failure.status(), status=502)
        async with upstream:
            response = web.StreamResponse(
                status=upstream.status,
                reason=upstream.reason,
                headers=CIMultiDict(
                    (name, value)
                    for name, value in upstream.headers.items()
                    if name.lower() not in HOP_BY_HOP
                ),
            )
            await response.prepare(request)
            if not watch:
                await _copy(upstream, response)
                await response.write_eof()
                return response
            pump = asyncio.get_running_loop().create_task(_copy(upstream, response))
            self._watches.add(pump)
            try:
                # not ``await pump``: a drop cancels the pump, and the stream then ends cleanly
                await asyncio.wait({pump})
            finally:
                self._watches.discard(pump)
                pump.cancel()
                upstream.close()  # a dropped watch's connection is not reused
            if not pump.cancelled():
                pump.result()
            await response.write_eof()
            return response


async def _copy(upstream: aiohttp.ClientResponse, response: web.StreamResponse) -> None:
    """Each chunk of the upstream body as soon as it arrives."""
    async for chunk in upstream.content.iter_any():
        await response.write(chunk)
