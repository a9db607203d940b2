"""workers.kube's requests reach the API server behind a path-routing proxy and a forward proxy.

A worker sends on the connection pool of the configured host (``Kube._send``), found once;
the host may carry a path (Rancher's ``/k8s/clusters/<id>``, a gateway's prefix), and a
configured ``proxy`` makes the client's pool manager a ``ProxyManager`` whose requests must
stay as the manager writes them. Both are played by one small relay in front of kubeemu that
records the request line it was sent; kubeemu's audit log says what reached the server.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from kubernetes import client, config

from kubeemu.testing import KubeEmu
from workers.kube import Kube

PREFIX = "/k8s/clusters/c-7x9"


@dataclass
class Relay:
    """A relay to one upstream: strips ``PREFIX`` from paths, accepts absolute URIs as a proxy."""

    upstream: str
    server: ThreadingHTTPServer | None = None
    request_lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"


def _handler(relay: Relay) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(relay.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            """Quiet."""

        def _relay(self) -> None:
            relay.request_lines.append(self.requestline)
            target = self.path
            if target.startswith("http://"):  # a forward proxy's request line
                parts = urlsplit(target)
                target = parts.path + (f"?{parts.query}" if parts.query else "")
            elif target.startswith(PREFIX):
                target = target[len(PREFIX) :]
            else:
                self.send_error(404, "not behind the prefix")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            connection = http.client.HTTPConnection(upstream.hostname or "", upstream.port)
            try:
                connection.request(self.command, target, body=body or None, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
            finally:
                connection.close()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._relay()

        def do_PATCH(self) -> None:
            self._relay()

        def do_POST(self) -> None:
            self._relay()

        def do_DELETE(self) -> None:
            self._relay()

    return Handler


@pytest.fixture
def relay(kubeemu: KubeEmu) -> Iterator[Relay]:
    emu = config.new_client_from_config(config_file=str(kubeemu.kubeconfig))
    relay = Relay(emu.configuration.host)
    emu.close()
    relay.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(relay))
    thread = threading.Thread(target=relay.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        relay.server.shutdown()
        relay.server.server_close()


def _kube(kubeemu: KubeEmu, *, host: str | None = None, proxy: str | None = None) -> Kube:
    configuration = client.Configuration()
    config.load_kube_config(str(kubeemu.kubeconfig), client_configuration=configuration)
    if host is not None:
        configuration.host = host
    configuration.proxy = proxy
    configuration.retries = False
    return Kube(client.ApiClient(configuration))


def _config_map(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"k": name},
    }


def test_a_host_with_a_path_keeps_it_on_every_request(kubeemu: KubeEmu, relay: Relay) -> None:
    kube = _kube(kubeemu, host=relay.url + PREFIX)
    mark = kubeemu.mark()
    for name in ("a", "b"):
        assert kube.apply(_config_map(name))["data"] == {"k": name}
    assert kube.get("v1", "ConfigMap", "default", "b") is not None
    assert kube.get("v1", "ConfigMap", "default", "absent") is None
    assert [line.split()[1].split("?")[0] for line in relay.request_lines] == [
        f"{PREFIX}/api/v1/namespaces/default/configmaps/a",
        f"{PREFIX}/api/v1/namespaces/default/configmaps/b",
        f"{PREFIX}/api/v1/namespaces/default/configmaps/b",
        f"{PREFIX}/api/v1/namespaces/default/configmaps/absent",
    ]
    written = [r["name"] for r in kubeemu.audit(mark) if r["verb"] == "patch"]
    assert written == ["a", "b"]


def test_behind_a_forward_proxy_every_request_goes_through_it(
    kubeemu: KubeEmu, relay: Relay
) -> None:
    kube = _kube(kubeemu, proxy=relay.url)
    emu_host = client.Configuration()
    config.load_kube_config(str(kubeemu.kubeconfig), client_configuration=emu_host)
    assert kube.apply(_config_map("via-proxy"))["data"] == {"k": "via-proxy"}
    assert kube.get("v1", "ConfigMap", "default", "via-proxy") is not None
    assert [line.split()[:2] for line in relay.request_lines] == [
        [
            "PATCH",
            f"{emu_host.host}/api/v1/namespaces/default/configmaps/via-proxy"
            "?fieldManager=tango-operator&force=true",
        ],
        ["GET", f"{emu_host.host}/api/v1/namespaces/default/configmaps/via-proxy"],
    ]
