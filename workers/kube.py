"""All Kubernetes I/O of the workers, over the official Python client.

The reconcilers call this module with plain dicts; it talks to the API server through the
client's ``ApiClient`` (configuration, authentication, connection pool, JSON handling) and
returns plain dicts. Failures come back as the two kinds in ``tango_operator.errors``: a 409, 429
or 5xx is temporary (with the server's Retry-After when given), a 422 permanent.

Children are written with server-side apply under one field manager with ``force=true``
(the documented controller practice): an unchanged manifest mutates nothing, and fields
owned by other managers (a person with kubectl, an HPA) stay theirs.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import urllib3

from tango_operator import crd, jsontext, resources
from tango_operator.errors import PermanentError, TemporaryError
from tango_operator.kubeclient import (
    ApiClient,
    ApiException,
    Configuration,
    load_incluster_config,
    load_kube_config,
)
from workers import metrics
from workers.api_retry import RetryPolicy, retry_after_seconds
from workers.events import EventRecorder

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]

_JSON = "application/json"
_MERGE_PATCH = "application/merge-patch+json"
_APPLY_PATCH = "application/apply-patch+yaml"
_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)
"""A worker never waits long on the API server."""


def _path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """The REST path from the core's table (``tango_operator.resources``)."""
    resource_type = resources.lookup(api_version, kind)
    if resource_type is None:
        raise PermanentError(f"tango-operator does not manage {api_version} {kind}")
    return resource_type.path(namespace, name)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn client exceptions into TemporaryError / PermanentError with a readable message."""
    try:
        yield
    except ApiException as exc:
        message = _status_message(exc) or str(exc.reason)
        if exc.status in (409, 429) or (exc.status or 0) >= 500:
            raise TemporaryError(f"{what}: {message}", delay=_retry_after(exc)) from None
        raise PermanentError(f"{what}: {message}") from None
    except (OSError, urllib3.exceptions.HTTPError) as exc:
        raise TemporaryError(f"{what}: {exc}") from None


def _status_message(exc: Any) -> str | None:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return None
    message = body.get("message") if isinstance(body, dict) else None
    return str(message) if message else None


def _retry_after(exc: Any) -> float | None:
    return retry_after_seconds(exc.headers)


class Kube:
    """A thin, typed facade over one ``ApiClient`` (one per worker process)."""

    def __init__(
        self,
        api_client: Any,
        *,
        field_manager: str = crd.FIELD_MANAGER,
        background_events: bool = False,
        retry: RetryPolicy | None = None,
    ):
        self._client = api_client
        self.retry = retry or RetryPolicy()
        """Transient failures of one request are retried here (``workers.api_retry``)."""
        self.field_manager = field_manager
        self.reporting_instance = socket.gethostname()
        self._pool: urllib3.HTTPConnectionPool | None = None
        """The connection pool of the API server's host (``_send``), found at the first request."""
        self._pool_host = ""
        self._path_prefix = ""
        """The path of the configured host (a server behind a path-routing proxy), or ''."""
        self.events = EventRecorder(self._post_event) if background_events else None
        """Where Events go when posted in the background (``workers.events``); None: at once."""

    @classmethod
    def connect(
        cls, kubeconfig: str | None, *, connections: int = 32, retry: RetryPolicy | None = None
    ) -> Kube:
        """From ``kubeconfig``, or the pod's service account when None; Events in the background.

        ``connections``: the connection pool's size, at least the reconciles in flight in
        this process (the thread pool's size), so that none waits for a connection.
        """
        configuration = Configuration()
        if kubeconfig:
            load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            load_incluster_config(client_configuration=configuration)
        configuration.connection_pool_maxsize = connections
        # Retries in one place, workers.api_retry: urllib3's own (the client's default) would
        # also retry, and sleep a 429's Retry-After up to three times in a worker thread.
        configuration.retries = False
        return cls(ApiClient(configuration), background_events=True, retry=retry)

    # --- raw calls ------------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = _JSON,
    ) -> JsonDict:
        """One request, retried while it fails transiently (``workers.api_retry``)."""
        tries = 1
        while True:
            try:
                return self._call_once(method, path, body, query, content_type)
            except ApiException as exc:
                delay = self.retry.delay(exc.status, exc.headers, tries)
                if delay is None:
                    raise
                failure = str(exc.status)
            except (OSError, urllib3.exceptions.HTTPError) as exc:
                delay = self.retry.delay(None, None, tries)
                if delay is None:
                    raise
                failure = type(exc).__name__
            metrics.API_RETRIES.labels(failure).inc()
            log.debug(
                "retrying method=%s path=%s failure=%s delay=%.2f", method, path, failure, delay
            )
            time.sleep(delay)
            tries += 1

    def _call_once(
        self,
        method: str,
        path: str,
        body: Any,
        query: list[tuple[str, str]] | None,
        content_type: str,
    ) -> JsonDict:
        """One request through the client's connection pool, authentication and errors.

        Not through ``ApiClient.call_api``: that walks every body through
        ``sanitize_for_serialization`` (a deep copy made for the generated models, which these
        plain dicts do not need) and writes it with ``json``; here the body is written once
        by orjson (``jsontext.dump_bytes``) and sent on the client's ``urllib3`` pool
        (``_send``). What the client decides is kept: its default headers (User-Agent), its
        authentication (``update_params_for_auth``, which refreshes an expiring token), its
        pool's TLS and proxy set-up, and its ``ApiException`` for an answer outside 2xx. About
        a quarter of the client's CPU per request (docs/benchmarks.md).
        """
        client = self._client
        headers = {**client.default_headers, "Accept": _JSON, "Content-Type": content_type}
        if client.cookie:
            headers["Cookie"] = client.cookie
        queries = list(query or [])
        client.update_params_for_auth(headers, queries, ["BearerToken"])
        target = path if not queries else f"{path}?{urlencode(queries)}"
        encoded = None if body is None else jsontext.dump_bytes(body)
        try:
            response = self._send(client, method, target, encoded, headers)
        except urllib3.exceptions.SSLError as exc:  # as the client reports it
            raise ApiException(status=0, reason=f"{type(exc).__name__}\n{exc}") from None
        if not 200 <= response.status <= 299:
            error = ApiException(http_resp=response)
            error.body = response.data.decode("utf-8", "replace")
            raise error
        data = jsontext.loads(response.data or b"{}")
        return data if isinstance(data, dict) else {}

    def _send(
        self, client: Any, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> Any:
        """Send one request on the API server's connection pool; the urllib3 response.

        The client's ``PoolManager`` finds that pool again for every request (it parses the
        URL and normalises a pool key each time, about an eighth of a worker's CPU in
        ``make bench-profile``); the pool of the configured host is looked up once instead,
        from that same manager, so TLS, certificates and pool size are the client's. Behind a
        proxy (a ``ProxyManager``, which rewrites requests for the proxy) every request goes
        through the manager as before.
        """
        manager = client.rest_client.pool_manager
        host = client.configuration.host
        if type(manager) is not urllib3.PoolManager:
            return manager.request(
                method, host + target, body=body, headers=headers, timeout=_TIMEOUT
            )
        if self._pool is None or self._pool_host != host:
            self._pool = manager.connection_from_url(host)
            self._pool_host = host
            self._path_prefix = (urllib3.util.parse_url(host).path or "").rstrip("/")
        return self._pool.urlopen(
            method,
            self._path_prefix + target,
            body=body,
            headers=headers,
            timeout=_TIMEOUT,
            retries=False,  # retried in one place: workers.api_retry
            redirect=False,
            assert_same_host=False,
            preload_content=True,
        )

    # --- reads ----------------------------------------------------------------------------------
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> JsonDict | None:
        """The object, or None when it does not exist."""
        with _translated(f"reading {kind} {namespace}/{name}"):
            try:
                return self._call("GET", _path(api_version, kind, namespace, name))
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def get_custom(self, kind: crd.Kind, namespace: str, name: str) -> JsonDict | None:
        """Read one of the operator's custom resources; None when it does not exist."""
        return self.get(crd.API_VERSION, kind.value, namespace, name)

    def list_custom(self, kind: crd.Kind, namespace: str) -> list[JsonDict]:
        """List the custom resources of ``kind`` in ``namespace`` (every namespace for "")."""
        with _translated(f"listing {kind.plural} in {namespace or 'every namespace'}"):
            listed = self._call("GET", _path(crd.API_VERSION, kind.value, namespace))
        items = listed.get("items") or []
        return [item for item in items if isinstance(item, dict)]

    # --- writes ---------------------------------------------------------------------------------
    def apply(self, manifest: JsonDict) -> JsonDict:
        """Server-side apply of one child manifest; returns the object as stored."""
        meta = manifest["metadata"]
        path = _path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
        with _translated(f"applying {manifest['kind']} {meta['namespace']}/{meta['name']}"):
            return self._call(
                "PATCH",
                path,
                body=manifest,
                query=[("fieldManager", self.field_manager), ("force", "true")],
                content_type=_APPLY_PATCH,
            )

    def create_if_absent(self, manifest: JsonDict) -> JsonDict | None:
        """Create ``manifest`` unless an object of that name exists; the created object or None.

        Callers read first (a create that cannot succeed is a wasted write); the 409 is for
        the race with another creator.
        """
        meta = manifest["metadata"]
        path = _path(manifest["apiVersion"], manifest["kind"], meta["namespace"])
        try:
            return self._call(
                "POST", path, body=manifest, query=[("fieldManager", self.field_manager)]
            )
        except ApiException as exc:
            if exc.status == 409:
                return None
            with _translated(f"creating {manifest['kind']} {meta['namespace']}/{meta['name']}"):
                raise

    def merge_patch(
        self, resource: JsonDict, patch: JsonDict, *, subresource: str | None = None
    ) -> JsonDict:
        """A JSON merge patch of a custom resource (``subresource="status"`` for its status)."""
        meta = resource["metadata"]
        path = _path(resource["apiVersion"], resource["kind"], meta["namespace"], meta["name"])
        if subresource:
            path = f"{path}/{subresource}"
        what = f"patching {resource['kind']} {meta['namespace']}/{meta['name']}"
        with _translated(what + (f" {subresource}" if subresource else "")):
            return self._call(
                "PATCH",
                path,
                body=patch,
                query=[("fieldManager", self.field_manager)],
                content_type=_MERGE_PATCH,
            )

    def delete(self, obj: JsonDict) -> bool:
        """Delete ``obj`` if it is still the one read (uid precondition); False if gone."""
        meta = obj["metadata"]
        path = _path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": meta["uid"]}}
        with _translated(f"deleting {obj['kind']} {meta['namespace']}/{meta['name']}"):
            try:
                self._call("DELETE", path, body=body)
            except ApiException as exc:
                if exc.status in (404, 409):  # gone, or a newer object of that name
                    return False
                raise
        return True

    def set_finalizers(self, resource: JsonDict, finalizers: list[str]) -> JsonDict:
        """Replace the finalizers, guarded by the resourceVersion read (409 if it moved)."""
        meta = resource["metadata"]
        return self.merge_patch(
            resource,
            {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}},
        )

    def emit_event(self, resource: JsonDict, *, event_type: str, reason: str, message: str) -> None:
        """Record a core/v1 Event on ``resource`` (shown by ``kubectl describe``).

        Events are best effort, as in client-go's recorder: a failure is logged, not raised.
        With ``background_events`` the Event is posted by ``self.events`` and this returns
        at once.
        """
        meta = resource["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name'][:200]}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": resource["apiVersion"],
                "kind": resource["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.field_manager},
            "reportingComponent": self.field_manager,
            "reportingInstance": self.reporting_instance[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        if self.events is not None:
            self.events.record(event)
        else:
            self._post_event(event)

    def _post_event(self, event: JsonDict) -> None:
        """POST one Event; a failure is logged."""
        involved = event["involvedObject"]
        try:
            self._call("POST", _path("v1", "Event", involved["namespace"]), body=event)
        except (ApiException, OSError, urllib3.exceptions.HTTPError) as exc:
            log.warning(
                "event not recorded kind=%s name=%s/%s reason=%s error=%s",
                involved["kind"],
                involved["namespace"],
                involved["name"],
                event["reason"],
                exc,
            )
