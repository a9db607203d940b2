"""The node's HTTPS endpoint for ``kubectl logs``: kube-apiserver → here → a container's output.

kube-apiserver (and kubeemu, ``kubeemu.podlogs``, the same way) answers
``GET /api/v1/namespaces/{ns}/pods/{pod}/log`` by forwarding it to the kubelet of the pod's
node: HTTPS to the Node's address (its ``--kubelet-preferred-address-types`` order: Hostname,
InternalDNS, InternalIP, …) on ``status.daemonEndpoints.kubeletEndpoint.Port``, path
``/containerLogs/{ns}/{pod}/{container}``, the request's query passed on. The local control
plane (``devstack.controlplane``) starts kube-apiserver without ``--kubelet-certificate-authority``
and ``--kubelet-client-certificate`` (kubeemu behaves as such a kube-apiserver): it does not
verify this server's certificate and presents none of its own, so the server uses a certificate
of a throw-away CA (``devstack.pki``, made by ``devstack.runner.node``) and asks nothing of its
clients. It listens on loopback only; anyone on this machine may read the logs (a development
stack).

Where the bytes come from: a ``LogSource`` (the local kubelet, ``devstack.runner.kubelet``) names
the log file and the ``Run`` (``devstack.runner.process``) of the container's current or last
finished instance; the answer is that byte range of the file, as text. Query parameters:
``tailLines``, ``limitBytes``, ``previous`` and ``follow`` (streams what the process writes until
that run ends, then closes) are honoured; ``timestamps``, ``sinceSeconds`` and ``sinceTime``
are ignored (the file keeps no time per line). Errors are answered as a kubelet does, as plain
text with 404 (unknown pod or container) or 400 (nothing to show yet), which kube-apiserver
wraps in a Status for the client. ``/healthz`` answers ``ok``.
"""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from devstack.runner.process import Run

log = logging.getLogger(__name__)

FOLLOW_POLL = 0.2
"""Seconds between two looks at a followed log file."""


class LogUnavailableError(Exception):
    """No log to show: ``status`` is the HTTP status a kubelet answers with, the text its body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LogView:
    """Where one container instance's output is: a file and the run's byte range in it."""

    path: Path
    run: Run


class LogSource(Protocol):
    """Finds the output of a container of a pod this node runs."""

    def container_log(self, namespace: str, pod: str, container: str, *, previous: bool) -> LogView:
        """The current run's output (``previous``: the last finished run's).

        Raises ``LogUnavailableError`` when there is none.
        """


def _read(path: Path, start: int, end: int | None) -> bytes:
    """Bytes ``start``..``end`` of ``path`` (to its current end when ``end`` is None)."""
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            return handle.read() if end is None else handle.read(max(0, end - start))
    except FileNotFoundError:
        return b""


def tail(data: bytes, lines: int | None) -> bytes:
    """The last ``lines`` lines of ``data`` (all of it when ``lines`` is None)."""
    if lines is None:
        return data
    if lines <= 0:
        return b""
    return b"".join(data.splitlines(keepends=True)[-lines:])


@dataclass(frozen=True)
class LogQuery:
    """The query parameters of a ``/containerLogs`` request that this server honours."""

    previous: bool = False
    follow: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None

    @classmethod
    def parse(cls, query: str) -> LogQuery:
        """Read the query string; a malformed number raises ``LogUnavailableError`` (400)."""
        values = {key: found[-1] for key, found in parse_qs(query).items()}

        def flag(name: str) -> bool:
            return values.get(name, "false").lower() in ("true", "1")

        def number(name: str) -> int | None:
            if name not in values:
                return None
            try:
                return int(values[name])
            except ValueError:
                raise LogUnavailableError(400, f"{name}: not a number: {values[name]!r}") from None

        return cls(
            previous=flag("previous"),
            follow=flag("follow"),
            tail_lines=number("tailLines"),
            limit_bytes=number("limitBytes"),
        )


class _Handler(BaseHTTPRequestHandler):
    server: KubeletServer

    def setup(self) -> None:
        # the TLS handshake happens here, in the request's own thread, not in the accept loop
        self.request.settimeout(30)
        self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("kubelet server: " + format, *args)

    def do_GET(self) -> None:
        """``/containerLogs/{ns}/{pod}/{container}`` and ``/healthz``."""
        url = urlsplit(self.path)
        parts = [unquote(part) for part in url.path.strip("/").split("/")]
        if parts == ["healthz"]:
            self._answer(200, b"ok")
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._answer(404, b"404 page not found\n")
            return
        _, namespace, pod, container = parts
        try:
            query = LogQuery.parse(url.query)
            view = self.server.source.container_log(
                namespace, pod, container, previous=query.previous
            )
        except LogUnavailableError as missing:
            self._answer(missing.status, str(missing).encode())
            return
        if query.follow and view.run.log_end is None:
            self._follow(view, query)
        else:
            data = tail(_read(view.path, view.run.log_start, view.run.log_end), query.tail_lines)
            if query.limit_bytes is not None:
                data = data[: max(0, query.limit_bytes)]
            self._answer(200, data)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _follow(self, view: LogView, query: LogQuery) -> None:
        """Stream the run's output as it grows, until the run ends (or the client goes)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()  # no length: HTTP/1.0, the body ends when the connection closes
        run, budget = view.run, query.limit_bytes
        end = run.log_end  # read before the file: what the run wrote is all there by then
        data = _read(view.path, run.log_start, end)
        position = run.log_start + len(data)
        data = tail(data, query.tail_lines)
        while True:
            if budget is not None:
                data = data[: max(0, budget)]
                budget -= len(data)
            if data:
                self.wfile.write(data)
                self.wfile.flush()
            if (end is not None and position >= end) or budget == 0:
                return
            if self.server.stopping.wait(FOLLOW_POLL):
                return
            end = run.log_end
            data = _read(view.path, position, end)
            position += len(data)


class KubeletServer(ThreadingHTTPServer):
    """The HTTPS server of the node (see the module doc); ``start`` it, ``stop`` it."""

    daemon_threads = True

    def __init__(
        self,
        source: LogSource,
        cert_file: Path,
        key_file: Path,
        *,
        address: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__((address, port), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert_file), str(key_file))
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )
        self.source = source
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the one the Node advertises)."""
        return int(self.server_address[1])

    def handle_error(self, request: object, client_address: object) -> None:  # noqa: ARG002
        """A client that went away or failed the handshake is no error of the server's."""
        log.debug("kubelet server: request from %s failed", client_address, exc_info=True)

    def start(self) -> None:
        """Serve in a thread of its own."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="kubelet-server"
        )
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; followed streams end too."""
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
        self.server_close()
