"""Raw HTTP against kubeemu for the contract tests that must see bytes the clients hide.

Status codes, headers (``Warning``, ``Content-Type``) and exact Status bodies.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any

from kubeemu.testing import KubeEmu

JsonDict = dict[str, Any]


@dataclass
class Reply:
    status: int
    headers: Message
    body: Any

    def warnings(self) -> list[str]:
        return self.headers.get_all("Warning") or []


def call(
    kubeemu: KubeEmu,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    accept: str = "application/json",
    raw: bytes | None = None,
) -> Reply:
    """One request; the body is JSON-encoded unless ``raw`` bytes are given."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(kubeemu.url + path, data=data, method=method)
    request.add_header("Accept", accept)
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = response.read()
            return Reply(response.status, response.headers, _decode(payload))
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, _decode(error.read()))


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode()


def status_body(code: int, reason: str, message: str, details: JsonDict | None = None) -> JsonDict:
    """A failure Status exactly as the apiserver serializes it (key order aside)."""
    body: JsonDict = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body
