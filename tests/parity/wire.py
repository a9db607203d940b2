"""Raw requests through the official client to either API server, and what may differ.

``Wire`` sends one request with the official client's transport (so kubeemu's plain HTTP and
kube-apiserver's TLS with a client certificate look the same to a scenario) and returns the
status code and decoded body, errors included — the parity tests compare exactly those.
``normalise`` blanks only what is meant to vary between two servers: uids, timestamps,
resourceVersion values, allocated cluster IPs and continue tokens. Everything else (keys,
defaults, managedFields entries, Status messages, reasons, details) must be equal.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

JsonDict = dict[str, Any]
UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
VARYING_KEYS = frozenset(
    {"uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "time", "continue"}
)
ADDRESS_KEYS = frozenset({"clusterIP", "clusterIPs"})
JSON = "application/json"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


@dataclass(frozen=True)
class Answer:
    """A status code and the decoded JSON body (None when the body was empty)."""

    status: int
    body: Any


class Wire:
    """Requests to the server of ``kubeconfig`` through the official client's transport."""

    def __init__(self, kubeconfig: Path) -> None:
        self.api = config.new_client_from_config(config_file=str(kubeconfig))

    def close(self) -> None:
        self.api.close()

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = JSON,
        accept: str = JSON,
        query: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request; the answer whatever its status."""
        try:
            response = self.api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params={"Content-Type": content_type, "Accept": accept},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
            )
        except client.ApiException as error:
            return Answer(error.status, _decode(error.body))
        return Answer(response.status, _decode(response.data))

    def watch(
        self, path: str, query: Mapping[str, str], *, events: int, timeout: float = 10
    ) -> Iterator[JsonDict]:
        """Up to ``events`` watch events of ``path`` (stops at the server's timeout)."""
        response = self.api.call_api(
            path,
            "GET",
            query_params=[*query.items(), ("watch", "true"), ("timeoutSeconds", str(int(timeout)))],
            header_params={"Accept": JSON},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
        )
        seen = 0
        try:
            for line in response.stream(decode_content=True):
                for part in line.splitlines():
                    if part.strip():
                        yield json.loads(part)
                        seen += 1
                        if seen >= events:
                            return
        finally:
            response.release_conn()

    def eventually(
        self, path: str, predicate: Any, *, timeout: float = 30, what: str = "a condition"
    ) -> Answer:
        """GET ``path`` until ``predicate(answer)`` holds; the answer that made it hold."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.call("GET", path)
            if predicate(answer):
                return answer
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not happen in {timeout}s: last {answer}")
            time.sleep(0.1)


def _decode(payload: bytes | str | None) -> Any:
    if not payload:
        return None
    text = payload.decode() if isinstance(payload, bytes) else payload
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def normalise(value: Any, key: str = "") -> Any:
    """``value`` with what legitimately varies between servers replaced by placeholders."""
    if isinstance(value, dict):
        # managedFields keys name owners by uid: k:{"uid":"…"}
        return {UID.sub("<uid>", k): normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(item, key) for item in value]
    if key in VARYING_KEYS and value not in (None, ""):
        return f"<{key}>"
    if key in ADDRESS_KEYS and value not in (None, "None"):
        return "<address>"
    if isinstance(value, str):
        return TIME.sub("<time>", UID.sub("<uid>", value))
    return value
