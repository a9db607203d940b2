"""Small custom resources for the tests and benchmarks that are not about TANGO.

Those tests are about the queue, the watcher or the API: a valid DeviceServer with nothing to wait
for (against the stand-in TANGO side it goes straight to Running), and state counts: ``running``
lists them, ``StateWatch`` follows them through a watch (for the benchmarks).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tango_operator import crd

JsonDict = dict[str, Any]


def device_server(name: str, **spec: Any) -> JsonDict:
    """A DeviceServer ``name`` with a minimal valid spec; ``spec`` adds or replaces keys."""
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "metadata": {"name": name},
        "spec": {
            "dsname": "Motor",
            "args": name,
            "command": "/usr/bin/Motor",
            "databaseds": "db.example",
            "image": "motor:1",
            **spec,
        },
    }


def traced_device_server(name: str, **spec: Any) -> JsonDict:
    """``device_server`` with a TANGO host of its own, ``db-<name>.example``.

    The tracing stand-in (``tests.support.standin_tango.TracingStandIn``) records each reconcile
    under its host, so a test tells the reconciles of its CRs apart.
    """
    return device_server(name, **{"databaseds": f"db-{name}.example", **spec})


def create_device_server(
    api_client: client.ApiClient, name: str, namespace: str = "default", **spec: Any
) -> JsonDict:
    created: JsonDict = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, "deviceservers", device_server(name, **spec)
    )
    return created


def running(api_client: client.ApiClient, namespace: str) -> int:
    """How many DeviceServers of ``namespace`` report state Running."""
    items = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, "deviceservers"
    )["items"]
    return sum(_state_of(item) == "Running" for item in items)


class StateWatch:
    """Every DeviceServer's ``status.state``, followed through one watch instead of LISTs.

    For the benchmarks: a poll that lists thousands of CRs costs kubeemu more than the
    operator's own requests, and it costs more the longer a run lasts; the watch costs one
    event per change. One LIST at the start, then a watch from its resourceVersion in a
    thread (listed again when the version expires). Use as a context manager;
    ``count`` and ``wait_for`` read the states.
    """

    def __init__(self, api_client: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api_client)
        self._states: dict[tuple[str, str], str | None] = {}
        self._counts: Counter[tuple[str, str | None]] = Counter()
        """(namespace, state) → DeviceServers: ``count`` is read at every change of a flood."""
        self._first_running: dict[tuple[str, str], float] = {}
        """When each DeviceServer was first seen Running (``time.monotonic()``)."""
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._stream = watch.Watch()
        self._error: Exception | None = None
        self._version = self._list()
        self._thread = threading.Thread(target=self._follow, name="state-watch", daemon=True)

    def __enter__(self) -> StateWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._stream.stop()
        self._thread.join(timeout=10)

    def count(self, namespace: str | None = None, state: str = "Running") -> int:
        """How many DeviceServers (of ``namespace``, or all) report ``state``."""
        with self._changed:
            if namespace is not None:
                return self._counts[(namespace, state)]
            return sum(n for (_, found), n in self._counts.items() if found == state)

    def first_running(self) -> list[float]:
        """When each DeviceServer seen Running was first seen so (``time.monotonic()``)."""
        with self._changed:
            return list(self._first_running.values())

    def not_in(self, state: str = "Running") -> dict[str, str | None]:
        """``namespace/name`` → state of every DeviceServer not reporting ``state``."""
        with self._changed:
            return {f"{ns}/{name}": s for (ns, name), s in self._states.items() if s != state}

    def wait_for(self, predicate: Callable[[StateWatch], bool], timeout: float) -> bool:
        """Whether ``predicate(self)`` became true within ``timeout`` seconds.

        Raises ``RuntimeError`` if the watch failed (the states would stop changing).
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                if self._error is not None:
                    raise RuntimeError(f"the DeviceServer watch failed: {self._error!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 1.0))
        return True

    def _list(self) -> str:
        listed = self._custom.list_cluster_custom_object(crd.GROUP, crd.VERSION, "deviceservers")
        with self._changed:
            self._states = {_name_of(item): _state_of(item) for item in listed["items"]}
            self._counts = Counter((ns, state) for (ns, _), state in self._states.items())
            now = time.monotonic()
            for name, state in self._states.items():
                if state == "Running":
                    self._first_running.setdefault(name, now)
            self._changed.notify_all()
        return str(listed["metadata"]["resourceVersion"])

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                for event in self._stream.stream(
                    self._custom.list_cluster_custom_object,
                    crd.GROUP,
                    crd.VERSION,
                    "deviceservers",
                    resource_version=self._version,
                    timeout_seconds=5,
                ):
                    item = event["object"]
                    self._version = str(item["metadata"]["resourceVersion"])
                    deleted = event["type"] == "DELETED"
                    self._record(_name_of(item), None if deleted else _state_of(item), deleted)
            except ApiException as exc:
                if exc.status == 410:  # the version expired: start again from a list
                    self._version = self._list()
                    continue
                self._fail(exc)
                return
            except Exception as exc:
                if not self._stop.is_set():
                    self._fail(exc)
                return

    def _record(self, name: tuple[str, str], state: str | None, deleted: bool) -> None:
        with self._changed:
            if name in self._states:
                self._counts[(name[0], self._states.pop(name))] -= 1
            if not deleted:
                self._states[name] = state
                self._counts[(name[0], state)] += 1
                if state == "Running":
                    self._first_running.setdefault(name, time.monotonic())
            self._changed.notify_all()

    def _fail(self, error: Exception) -> None:
        with self._changed:
            self._error = error
            self._changed.notify_all()


def _name_of(item: JsonDict) -> tuple[str, str]:
    return str(item["metadata"]["namespace"]), str(item["metadata"]["name"])


def _state_of(item: JsonDict) -> str | None:
    state = (item.get("status") or {}).get("state")
    return None if state is None else str(state)
