"""The TANGO side of the soak: which TANGO hosts answer and which devices are exported.

The soak cannot run 500 PyTango device servers on its machine, so the workers talk to
``tests.support.standin_tango.SoakStandIn``, which answers from two files this module
keeps up to date, so that dependencies still mean something:

- the registry (JSON): a TANGO host answers once the DataBaseds pod of its DatabaseDS is
  ready, and a DeviceServer's devices are exported once its own pod is ready — both read
  from the StatefulSets in kubeemu (``status.readyReplicas``), which the operator scales
  and kubeemu's StatefulSet controller (instant mode) makes ready;
- the outage flag: while the file exists every TANGO DB is down (``TangoSide.outage``).

The StatefulSets are followed with a list + watch of its own (relisting after any
error, 410 or dropped stream), through an API client whose User-Agent
(``DRIVER_AGENT``) keeps the soak's own requests out of the operator's figures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from tango_operator import crd
from tests.soak.plan import Plan

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]
DRIVER_AGENT = "tango-soak-driver/1.0"
SELECTOR = f"app.kubernetes.io/managed-by={crd.MANAGED_BY}"
STATEFULSETS = "/apis/apps/v1/statefulsets"


def driver_client(kubeconfig: Path) -> client.ApiClient:
    """An API client for the soak's own requests, marked by its User-Agent."""
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    api_client.user_agent = DRIVER_AGENT
    return api_client


@dataclass
class TangoSide:
    """Follows the StatefulSets of ``plan``'s resources and publishes the registry."""

    kubeconfig: Path
    plan: Plan
    workdir: Path
    registry: Path = field(init=False)
    outage_flag: Path = field(init=False)
    exported_at: dict[str, float] = field(default_factory=dict)
    """Device → when it was first published as exported (time.time())."""
    relists: int = 0
    _ready: dict[tuple[str, str], bool] = field(default_factory=dict)
    _published: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _response: Any = None

    def __post_init__(self) -> None:
        self.registry = self.workdir / "tango-registry.json"
        self.outage_flag = self.workdir / "tango-outage"
        self._providers: dict[tuple[str, str], tuple[str, tuple[str, ...] | None]] = {}
        """(namespace, StatefulSet) → (TANGO host, devices; None: the DataBaseds itself)."""
        for resource in self.plan.resources:
            provided = None if resource.kind == "DatabaseDS" else resource.devices
            self._providers[(resource.namespace, resource.name)] = (resource.tango_host, provided)
        self._publish()

    def environment(self) -> dict[str, str]:
        """What the workers need to find the stand-in's files."""
        return {
            "TANGO_STANDIN_REGISTRY": str(self.registry),
            "TANGO_STANDIN_OUTAGE": str(self.outage_flag),
        }

    # --- the outage ---------------------------------------------------------------------------
    def outage(self, down: bool) -> None:
        if down:
            self.outage_flag.write_text("down\n")
        else:
            self.outage_flag.unlink(missing_ok=True)

    # --- following the StatefulSets -----------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tango-side", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        api_client = driver_client(self.kubeconfig)
        try:
            while not self._stop.is_set():
                try:
                    version = self._list(api_client)
                    self._watch(api_client, version)
                except Exception as exc:  # injected faults, drops, 410: list again
                    log.debug("tango side relists after %r", exc)
                    self._stop.wait(0.2)
        finally:
            api_client.close()

    def _call(self, api_client: client.ApiClient, query: list[tuple[str, str]]) -> Any:
        return api_client.call_api(
            STATEFULSETS,
            "GET",
            query_params=[("labelSelector", SELECTOR), *query],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=(5.0, 60.0),
        )

    def _list(self, api_client: client.ApiClient) -> str:
        listed = json.loads(self._call(api_client, []).data)
        self._ready = {}
        for item in listed.get("items") or []:
            self._observe("ADDED", item)
        self.relists += 1
        self._publish()
        return str(listed["metadata"]["resourceVersion"])

    def _watch(self, api_client: client.ApiClient, version: str) -> None:
        query = [("watch", "true"), ("resourceVersion", version), ("timeoutSeconds", "30")]
        self._response = response = self._call(api_client, query)
        try:
            for event in _lines(response):
                if self._stop.is_set():
                    return
                kind = event.get("type")
                if kind == "ERROR":
                    raise RuntimeError(f"watch error: {event.get('object')}")
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._observe(str(kind), event["object"])
                    self._publish()
        finally:
            self._response = None
            response.release_conn()

    def _observe(self, kind: str, statefulset: JsonDict) -> None:
        meta = statefulset.get("metadata") or {}
        owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
        if owner is None or owner.get("name") != meta.get("name"):
            return  # not a DeviceServer's nor a DataBaseds StatefulSet (the TANGO DB's)
        spec, status = statefulset.get("spec") or {}, statefulset.get("status") or {}
        ready = (
            kind != "DELETED"
            and int(spec.get("replicas") or 0) > 0
            and int(status.get("readyReplicas") or 0) > 0
        )
        self._ready[(str(meta.get("namespace")), str(meta["name"]))] = ready

    def _publish(self) -> None:
        """Replace the registry file (a new inode: the stand-ins notice) if it changed."""
        hosts: set[str] = set()
        devices: dict[str, list[str]] = {}
        for where, ready in self._ready.items():
            if not ready or where not in self._providers:
                continue
            tango_host, provided = self._providers[where]
            if provided is None:
                hosts.add(tango_host)
            else:
                devices.setdefault(tango_host, []).extend(provided)
        body = json.dumps(
            {"hosts": sorted(hosts), "devices": {h: sorted(d) for h, d in sorted(devices.items())}}
        )
        if body == self._published:
            return
        scratch = self.registry.with_suffix(".tmp")
        scratch.write_text(body)
        os.replace(scratch, self.registry)
        self._published = body
        now = time.time()
        for listed in devices.values():
            for device in listed:
                self.exported_at.setdefault(device, now)


def _lines(response: Any) -> Iterator[JsonDict]:
    """One decoded JSON object per line of a watch stream."""
    pending = b""
    for chunk in response.stream(65536, decode_content=False):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)
