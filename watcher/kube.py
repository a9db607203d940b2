"""The watcher's only Kubernetes client: lists, watch streams and the leader Lease.

Everything the watcher asks of the API server goes through :class:`Kube`, over the official
client's ``ApiClient`` (configuration, authentication, connection pool) with plain JSON
dicts in and out: the sources' lists and watches (``watcher.sources``), the resync's lists
(``watcher.resync``) and the Lease of the leader election (``watcher.leader``). Failures
come back as two exceptions of this module, so no other watcher module handles the client's
own: :class:`ApiError` (an HTTP status, with the server's Retry-After) and
:class:`Interrupted` (the connection failed or a stream went quiet or was dropped).
urllib3 does not retry on its own: every caller has its own retry loop and backoff.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import urllib3

from tango_operator import jsontext
from tango_operator.kubeclient import (
    ApiClient,
    ApiException,
    ConfigException,
    Configuration,
    load_incluster_config,
    load_kube_config,
)

JsonDict = dict[str, Any]
Timeout = tuple[float, float]
"""(connect, read) seconds of one request."""


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        """Seconds the server asked to wait (a 429's or 503's Retry-After), else None."""


class Interrupted(Exception):  # noqa: N818 - a condition, not a failure of ours
    """The connection failed, or a stream went silent past its timeout or was dropped."""


class ConfigurationError(Exception):
    """No usable Kubernetes configuration (kubeconfig or in-cluster service account)."""


def _api_error(exc: Any) -> ApiError:
    reason = str(exc.reason or "")
    with contextlib.suppress(TypeError, ValueError):
        body = json.loads(exc.body or "")
        if isinstance(body, dict) and body.get("message"):
            reason = str(body["message"])
    retry_after = None
    with contextlib.suppress(TypeError, ValueError):
        raw = (exc.headers or {}).get("Retry-After")
        retry_after = float(raw) if raw else None
    return ApiError(int(exc.status or 0), reason, retry_after=retry_after)


class WatchStream:
    """One open watch: its events one by one; ``abort`` unblocks a reader from another thread."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def events(self) -> Iterator[JsonDict]:
        """One decoded JSON object per line, until the server ends the stream.

        Raises ``Interrupted`` when the stream is silent past the read timeout or dropped.
        """
        pending = b""
        try:
            for chunk in self._response.stream(4096, decode_content=True):
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        yield jsontext.loads(line)
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError) as exc:
            raise Interrupted(type(exc).__name__) from None
        if pending.strip():
            yield jsontext.loads(pending)

    def abort(self) -> None:
        """Interrupt a read blocked on a quiet stream (the socket is shut down)."""
        with contextlib.suppress(RuntimeError, ValueError, OSError):  # already released
            self._response.shutdown()

    def close(self) -> None:
        """Give the connection back to the pool."""
        self._response.release_conn()


class Kube:
    """JSON requests over one ``ApiClient``; one per watcher process."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client

    @classmethod
    def connect(cls, kubeconfig: str | None) -> Kube:
        """From ``kubeconfig``, or the pod's service account when None."""
        configuration = Configuration()
        try:
            if kubeconfig:
                load_kube_config(config_file=kubeconfig, client_configuration=configuration)
            else:
                load_incluster_config(client_configuration=configuration)
        except (ConfigException, OSError) as exc:
            where = f"KUBECONFIG={kubeconfig}" if kubeconfig else "in-cluster"
            raise ConfigurationError(
                f"no usable Kubernetes configuration ({where}): {exc}"
            ) from None
        configuration.retries = False
        return cls(ApiClient(configuration))

    def close(self) -> None:
        """Close the connection pool."""
        self.api_client.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: JsonDict | None = None,
        timeout: Timeout,
    ) -> Any:
        try:
            return self.api_client.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout,
            )
        except ApiException as exc:
            raise _api_error(exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Interrupted(f"{type(exc).__name__}: {exc}") from None

    def _json(self, method: str, path: str, **kwargs: Any) -> JsonDict:
        response = self._request(method, path, **kwargs)
        try:
            decoded = jsontext.loads(response.data or b"{}")
        except ValueError as exc:
            raise Interrupted(f"not JSON from {path}: {exc}") from None
        return decoded if isinstance(decoded, dict) else {}

    def get(
        self, path: str, *, query: list[tuple[str, str]] | None = None, timeout: Timeout
    ) -> JsonDict:
        """GET an object or a list."""
        return self._json("GET", path, query=query, timeout=timeout)

    def create(self, path: str, body: JsonDict, *, timeout: Timeout) -> JsonDict:
        """POST ``body`` to the collection at ``path``."""
        return self._json("POST", path, body=body, timeout=timeout)

    def replace(self, path: str, body: JsonDict, *, timeout: Timeout) -> JsonDict:
        """PUT ``body`` (its resourceVersion makes it conditional: 409 if it moved)."""
        return self._json("PUT", path, body=body, timeout=timeout)

    def watch(self, path: str, *, query: list[tuple[str, str]], timeout: Timeout) -> WatchStream:
        """Open a watch on the collection at ``path`` (``query`` carries ``watch=true``)."""
        return WatchStream(self._request("GET", path, query=query, timeout=timeout))
