"""The emulator's admin API under ``/_emu/``: faults, watch drops, compaction, audit, kubelet.

Tests, benchmarks and the command line (``python -m kubeemu ...``) drive the emulator through
these endpoints, so the same controls work whether it runs in-process or as a subprocess.
Nothing here is part of the Kubernetes API; real clients never call it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from kubeemu import errors
from kubeemu.emulator import Emulator
from kubeemu.faults import FaultRule

JsonDict = dict[str, Any]


def add_routes(application: web.Application, emulator: Emulator) -> None:
    routes = web.RouteTableDef()

    @routes.get("/_emu/audit")
    async def get_audit(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        limit = int(request.query["limit"]) if "limit" in request.query else None
        records = emulator.audit.since(since, limit)
        return _ok({"next": emulator.audit.next, "records": [r.as_dict() for r in records]})

    @routes.delete("/_emu/audit")
    async def clear_audit(_: web.Request) -> web.Response:
        emulator.audit.clear()
        return _ok({"next": emulator.audit.next})

    @routes.get("/_emu/faults")
    async def get_faults(_: web.Request) -> web.Response:
        return _ok(
            {
                "rules": [r.as_dict() for r in emulator.faults.rules],
                "injected": emulator.faults.injected,
            }
        )

    @routes.put("/_emu/faults")
    async def put_faults(request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            rules = [FaultRule.from_dict(r) for r in body.get("rules", [])]
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        emulator.faults.set_rules(rules, body.get("seed"))
        return _ok({"rules": [r.as_dict() for r in rules]})

    @routes.delete("/_emu/faults")
    async def clear_faults(_: web.Request) -> web.Response:
        emulator.faults.set_rules([])
        return _ok({"rules": []})

    @routes.post("/_emu/watches/drop")
    async def drop_watches(_: web.Request) -> web.Response:
        return _ok({"dropped": emulator.store.drop_all_watches()})

    @routes.post("/_emu/compact")
    async def compact(_: web.Request) -> web.Response:
        return _ok({"compactedAt": emulator.store.compact()})

    @routes.get("/_emu/controllers")
    async def get_controllers(_: web.Request) -> web.Response:
        return _ok(emulator.controllers.settings.as_dict())

    @routes.put("/_emu/controllers")
    async def put_controllers(request: web.Request) -> web.Response:
        try:
            emulator.controllers.settings.update(await _body(request))
        except ValueError as exc:
            return _error(400, str(exc))
        emulator.controllers.resync_all()
        return _ok(emulator.controllers.settings.as_dict())

    @routes.post("/_emu/pods/{namespace}/{name}/{state}")
    async def set_pod_state(request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            pod = emulator.controllers.set_pod_state(
                request.match_info["namespace"],
                request.match_info["name"],
                request.match_info["state"],
                str(body.get("message", "")),
            )
        except errors.ApiError as exc:
            return web.json_response(exc.status(), status=exc.code)
        return _ok(pod)

    @routes.get("/_emu/stats")
    async def stats(_: web.Request) -> web.Response:
        return _ok(
            {
                "resourceVersion": emulator.store.revision,
                "objects": emulator.store.count(),
                "openWatches": emulator.store.open_watches,
                "oldestWatchable": emulator.store.oldest_watchable,
                "auditNext": emulator.audit.next,
                "faultsInjected": emulator.faults.injected,
            }
        )

    application.router.add_routes(routes)


async def _body(request: web.Request) -> JsonDict:
    raw = await request.read()
    if not raw.strip():
        return {}
    decoded = json.loads(raw)
    if not isinstance(decoded, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return decoded


def _ok(body: JsonDict) -> web.Response:
    return web.json_response(body)


def _error(code: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=code)
