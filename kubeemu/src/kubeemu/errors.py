"""The apiserver's ``Status`` failures, as an exception every layer of the emulator can raise.

Handlers raise :class:`ApiError`; the HTTP layer turns it into the ``Status`` JSON body that real
clients parse (``kind``, ``status: Failure``, ``reason``, ``code``, ``details``).  Message texts
are the real apiserver's, reason for reason (the "Errors" row of the fidelity table in
kubeemu/README.md names the tests that pin them).
"""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]


class ApiError(Exception):
    """A failed API request, carrying the exact Status body to send."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: JsonDict | None = None,
        headers: dict[str, str] | None = None,
        list_meta: JsonDict | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.list_meta = list_meta or {}

    def status(self) -> JsonDict:
        body: JsonDict = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": dict(self.list_meta),
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:  # StatusReasonUnknown ("") is omitted, as Go's omitempty does
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(name: str, group: str, kind: str) -> JsonDict:
    """StatusDetails as Go serializes them: empty name, group and kind are omitted (omitempty)."""
    details: JsonDict = {"name": name} if name else {}
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    return details


def qualified_resource(resource: str, group: str) -> str:
    """``configmaps`` for the core group, ``widgets.example.com`` otherwise."""
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified_resource(resource, group)} "{name}" not found',
        _details(name, group, resource),
    )


def unknown_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


class PageNotFoundError(ApiError):
    """A path no API serves, answered as kube-apiserver's last handler (``http.NotFound``) does.

    Plain text, not a Status. Paths under a group that no built-in kind has (a CRD's group, a
    version a CRD does not serve, an unknown group) end there.
    """

    TEXT = "404 page not found\n"

    def __init__(self) -> None:
        super().__init__(404, "NotFound", self.TEXT)


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified_resource(resource, group)} "{name}" already exists',
        _details(name, group, resource),
    )


def conflict(resource: str, group: str, name: str, why: str | None = None) -> ApiError:
    reason = why or (
        "the object has been modified; "
        "please apply your changes to the latest version and try again"
    )
    return ApiError(
        409,
        "Conflict",
        f"Operation cannot be fulfilled on {qualified_resource(resource, group)} "
        f'"{name}": {reason}',
        _details(name, group, resource),
    )


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid; ``causes`` are ``(field, reason, message)`` with k8s field paths."""
    qualified_kind = f"{kind}.{group}" if group else kind
    summary = ", ".join(f"{field}: {message}" for field, _, message in causes)
    if len(causes) > 1:
        summary = f"[{summary}]"
    details = _details(name, group, kind)
    details["causes"] = [
        {"reason": reason, "message": message, "field": field} for field, reason, message in causes
    ]
    return ApiError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(message: str, details: JsonDict | None = None) -> ApiError:
    return ApiError(403, "Forbidden", message, details)


def method_not_allowed() -> ApiError:
    """A method no route serves; upstream's body carries an empty ``details``, as here."""
    return ApiError(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        {},
    )


PATCH_MEDIA_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)
BUILTIN_BODY_MEDIA_TYPES = (
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
)
CUSTOM_BODY_MEDIA_TYPES = ("application/json", "application/yaml")


def unsupported_media_type(accepted: tuple[str, ...] = PATCH_MEDIA_TYPES) -> ApiError:
    """415 for a PATCH of an unknown type (or SMP on a CR), or a body nobody can decode."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


def expired(message: str, list_meta: JsonDict | None = None) -> ApiError:
    return ApiError(410, "Expired", message, list_meta=list_meta)


def gone_too_old(requested: int, current: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {requested} ({current})")


def too_many_requests(retry_after_seconds: int) -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        "the server has received too many requests and has asked us to try again later",
        {"retryAfterSeconds": retry_after_seconds},
        headers={"Retry-After": str(retry_after_seconds)},
    )


def status_for_code(code: int, message: str) -> ApiError:
    """A generic injected failure for any status code (fault injection)."""
    reasons = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        410: "Gone",
        422: "Invalid",
        429: "TooManyRequests",
        500: "InternalError",
        503: "ServiceUnavailable",
        504: "Timeout",
    }
    return ApiError(code, reasons.get(code, "InternalError"), message)


# A JSON patch that fails to apply (or a strategic merge of lists of lists) gets this 422.
GENERIC_UNPROCESSABLE = "the server rejected our request due to an error in our request"


def generic_unprocessable(reason: str) -> ApiError:
    """The generic 422 of ``NewGenericServerResponse`` (a JSON patch or a merge that fails)."""
    return ApiError(422, "Invalid", GENERIC_UNPROCESSABLE, {"causes": [{"message": reason}]})
