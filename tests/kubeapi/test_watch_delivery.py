"""Watch delivery under load.

A watch either delivers every event and a BOOKMARK per interval, or ends — it never goes quiet while
it is open.

Both tests run their own emulator with a short bookmark interval, so a stream that stalls
shows up as a silence many intervals long within a few seconds:

* many label-selector watches through the official client's ``watch.Watch().stream`` while
  several writers create objects, some matching no watch (the traffic the watcher sees);
* one raw watch whose reader stops reading while large objects are written, so the server's
  writes wait for the socket, then reads on (a slow consumer: a real apiserver never drops
  or reorders its events, and its bookmarks never run ahead of what it delivered).
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from kubeemu.testing import KubeEmu

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")

JsonDict = dict[str, Any]
INTERVAL = 0.2
"""Seconds between bookmarks of the emulators of this module."""
MAX_SILENCE = 1.5
"""A stream silent for longer than this (7 intervals) has stalled: even a loaded two-core
machine delivers a due bookmark well within it, and a stalled stream stays silent until
its timeout, at least 2.5 s here."""


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[KubeEmu]:
    with KubeEmu.start(tmp_path / "kubeemu", ["--bookmark-interval", str(INTERVAL)]) as started:
        yield started


def _client(emulator: KubeEmu) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(emulator.kubeconfig))


@dataclass
class _Stream:
    """What one watch delivered: (monotonic time, type, name or "", resourceVersion)."""

    selector: str
    events: list[tuple[float, str, str, int]] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    error: BaseException | None = None

    def names(self) -> set[str]:
        return {name for _, kind, name, _ in self.events if kind == "ADDED"}

    def longest_silence(self) -> float:
        times = [self.started, *(at for at, *_ in self.events), self.ended]
        return max(later - earlier for earlier, later in itertools.pairwise(times))


def _consume(emulator: KubeEmu, stream: _Stream, start_rv: str, watch_seconds: float) -> None:
    """Record ``stream``'s events from ``start_rv`` until the server ends the watch."""
    api_client = _client(emulator)
    try:
        stream.started = time.monotonic()
        for event in watch.Watch().stream(
            client.CoreV1Api(api_client).list_namespaced_config_map,
            "default",
            label_selector=stream.selector,
            resource_version=start_rv,
            allow_watch_bookmarks=True,
            timeout_seconds=watch_seconds,
        ):
            meta = event["raw_object"]["metadata"]
            stream.events.append(
                (
                    time.monotonic(),
                    event["type"],
                    meta.get("name", ""),
                    int(meta["resourceVersion"]),
                )
            )
    except BaseException as exc:  # reported by the test thread
        stream.error = exc
    finally:
        stream.ended = time.monotonic()
        api_client.close()


def _write(emulator: KubeEmu, writer: int, groups: int, write_seconds: float) -> None:
    """Create ConfigMaps labelled round-robin ``group=0..groups-1`` for ``write_seconds``."""
    api_client = _client(emulator)
    writes = client.CoreV1Api(api_client)
    deadline, count = time.monotonic() + write_seconds, 0
    while time.monotonic() < deadline:
        labels = {"group": str(count % groups)}
        name = f"w{writer}-{count}"
        writes.create_namespaced_config_map(
            "default", {"metadata": {"name": name, "labels": labels}}
        )
        count += 1
    api_client.close()


def test_selector_watches_under_write_load_deliver_everything_and_bookmarks(
    emulator: KubeEmu,
) -> None:
    groups, watches, writers, write_seconds, watch_seconds = 8, 16, 4, 1.5, 4
    setup = _client(emulator)
    core = client.CoreV1Api(setup)
    start_rv = core.list_namespaced_config_map("default").metadata.resource_version
    streams = [_Stream(f"group={i % (groups // 2)}") for i in range(watches)]  # 4..7: nobody's

    consumers = [
        threading.Thread(target=_consume, args=(emulator, s, start_rv, watch_seconds))
        for s in streams
    ]
    for thread in consumers:
        thread.start()
    deadline = time.monotonic() + 10
    while emulator.stats()["openWatches"] < watches and time.monotonic() < deadline:
        time.sleep(0.02)
    producers = [
        threading.Thread(target=_write, args=(emulator, w, groups, write_seconds))
        for w in range(writers)
    ]
    for thread in producers:
        thread.start()
    for thread in [*producers, *consumers]:
        thread.join(timeout=30)
    expected = {
        group: {
            item.metadata.name
            for item in core.list_namespaced_config_map(
                "default", label_selector=f"group={group}"
            ).items
        }
        for group in range(groups // 2)
    }
    setup.close()

    assert all(stream.error is None for stream in streams), [s.error for s in streams]
    assert all(expected.values()), "every watched group was written to"
    problems = []
    for index, stream in enumerate(streams):
        missing = expected[index % (groups // 2)] - stream.names()
        versions = [rv for _, kind, _, rv in stream.events if kind != "BOOKMARK"]
        silence = stream.longest_silence()
        if missing or versions != sorted(versions) or silence >= MAX_SILENCE:
            problems.append(
                f"watch {index} ({stream.selector}): {len(missing)} events missed, "
                f"silent for {silence:.2f}s, in order: {versions == sorted(versions)}"
            )
        elif stream.events[-1][1] != "BOOKMARK":
            problems.append(f"watch {index}: no bookmark before the timeout")
    assert not problems, "\n".join(problems)


def _big(name: str) -> JsonDict:
    return {"metadata": {"name": name}, "data": {"blob": "x" * 200_000}}


class _RawWatch:
    """A raw watch whose reader decides when to read: open at once, read lines later."""

    def __init__(self, emulator: KubeEmu, path: str) -> None:
        host, port = urllib.parse.urlsplit(emulator.url).netloc.split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.connection.request("GET", path, headers={"Accept": "application/json"})
        self.response = self.connection.getresponse()  # the headers come with the first line
        assert self.response.status == 200

    def read_all(self) -> list[JsonDict]:
        try:
            return [json.loads(line) for line in self.response if line.strip()]
        finally:
            self.connection.close()


def test_slow_reader_gets_every_event_and_bookmarks_that_do_not_run_ahead(
    emulator: KubeEmu,
) -> None:
    api_client = _client(emulator)
    core = client.CoreV1Api(api_client)
    start_rv = core.list_namespaced_config_map("default").metadata.resource_version
    path = (
        "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true"
        f"&resourceVersion={start_rv}&timeoutSeconds=3"
    )
    stream = _RawWatch(emulator, path)
    # ~8 MB of events: more than the loopback socket buffers hold, so the server's writes wait
    # for the reader, which reads nothing for several bookmark intervals
    created = {
        str(core.create_namespaced_config_map("default", _big(f"big-{i}")).metadata.name)
        for i in range(40)
    }
    time.sleep(1.0)
    events = stream.read_all()
    api_client.close()

    received = [e for e in events if e["type"] == "ADDED"]
    assert {e["object"]["metadata"]["name"] for e in received} == created
    bookmarks = [
        int(e["object"]["metadata"]["resourceVersion"]) for e in events if e["type"] == "BOOKMARK"
    ]
    assert bookmarks, "bookmarks once the reader reads again"
    # every bookmark is a promise: nothing at or below its version comes after it
    delivered = 0
    for event in events:
        version = int(event["object"]["metadata"]["resourceVersion"])
        if event["type"] == "BOOKMARK":
            delivered = max(delivered, version)
        else:
            assert version > delivered, "an event at or below an earlier bookmark's version"
