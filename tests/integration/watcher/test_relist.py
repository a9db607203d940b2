"""A relist after 410 Gone replaces what the watcher knew.

As client-go's reflector does (``Replace``): an object deleted while no watch was open — absent from
the new list — is handed on as a DELETED once, so its fingerprint is forgotten, its custom-resource
count dropped and its key enqueued; what the list still has is not deleted.

The gap: watches of custom resources are throttled (429) while the emulator drops every
open watch, an object is deleted and the history compacted, so the resume gets 410 and the
source relists. The emulator sends no bookmarks, so the sources' resourceVersions stay
where their last events left them (a bookmark would carry them past the compaction).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from prometheus_client import REGISTRY

from devstack.stack import install_crds
from kubeemu.testing import KubeEmu
from tango_operator import crd, resources
from tests.integration.watcher.conftest import StartWatcher, create_ds, ds_key
from tests.support.workers import EVENTUALLY, wait_for
from watcher.kube import Kube
from watcher.mapping import owner_key
from watcher.sources import LIST_PAGE, Emit, Resource, Source

JsonDict = dict[str, Any]
NAMESPACE = "relist"
"""A namespace of these tests alone: the custom-resource gauge is process-wide."""


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[tuple[KubeEmu, client.ApiClient]]:
    """An emulator without bookmarks, with the CRDs and the test's namespace."""
    with KubeEmu.start(tmp_path / "quiet", ["--bookmark-interval", "3600"]) as emulator:
        api_client = config.new_client_from_config(config_file=str(emulator.kubeconfig))
        install_crds(api_client)
        client.CoreV1Api(api_client).create_namespace({"metadata": {"name": NAMESPACE}})
        try:
            yield emulator, api_client
        finally:
            api_client.close()


def _delete_ds(api_client: client.ApiClient, name: str) -> None:
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        crd.GROUP, crd.VERSION, NAMESPACE, "deviceservers", name
    )


def _relist_deletions() -> float:
    labels = {"resource": "deviceservers"}
    value = REGISTRY.get_sample_value("tango_operator_relist_deletions_total", labels)
    return value or 0.0


def _gap(emulator: KubeEmu, during: Any, relisted: Any, resource: str = "deviceservers") -> None:
    """Run ``during()`` while no watch of ``resource`` is open, then compact and await a relist.

    After compacting the history, wait until ``relisted()`` (the resume got 410 and the source
    listed again).
    """
    injected = emulator.stats()["faultsInjected"]
    emulator.set_faults([{"code": 429, "verbs": ["watch"], "resources": [resource]}])
    assert emulator.drop_watches() >= 1
    during()
    emulator.compact()
    wait_for(
        lambda: emulator.stats()["faultsInjected"] > injected,
        timeout=10,
        what="a throttled watch",
    )
    emulator.clear_faults()
    wait_for(relisted, timeout=15, what="a relist after 410 Gone")


@contextmanager
def _running_source(
    emulator: KubeEmu, api_client: client.ApiClient, resource: Resource, emit: Emit
) -> Iterator[Source]:
    """A source of ``resource`` in the test's namespace, run in a thread until the block ends."""
    stop = threading.Event()
    source = Source(Kube(api_client), resource, NAMESPACE, emit, stop, inactivity_seconds=5)
    thread = threading.Thread(target=source.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: emulator.stats()["openWatches"] >= 1, timeout=20, what="the watch")
        yield source
    finally:
        stop.set()
        source.abort()
        thread.join(timeout=10)
    assert not thread.is_alive()


def _collect(into: list[tuple[str, str, JsonDict]]) -> Emit:
    """A source's callback that appends every event to ``into``."""

    def emit(kind: str, event_type: str, obj: JsonDict) -> None:
        into.append((kind, event_type, obj))

    return emit


def _count(state: str = "Unknown") -> float:
    labels = {"kind": "DeviceServer", "namespace": NAMESPACE, "state": state}
    return REGISTRY.get_sample_value("tango_operator_custom_resources", labels) or 0.0


def test_source_relist_deletes_what_the_list_no_longer_has(
    quiet: tuple[KubeEmu, client.ApiClient],
) -> None:
    emulator, api_client = quiet
    for name in ("stays", "goes", "goes-too"):
        create_ds(api_client, name, NAMESPACE)
    emitted: list[tuple[str, str, JsonDict]] = []
    deviceservers = Resource(resources.DEVICE_SERVER)
    with _running_source(emulator, api_client, deviceservers, _collect(emitted)) as source:
        assert sorted(e[2]["metadata"]["name"] for e in emitted) == ["goes", "goes-too", "stays"]
        before = len(emitted)

        def delete_two() -> None:
            _delete_ds(api_client, "goes")
            _delete_ds(api_client, "goes-too")

        counted_before = _relist_deletions()
        _gap(emulator, delete_two, lambda: source.relists == 2)
        wait_for(lambda: len(emitted) >= before + 3, timeout=EVENTUALLY, what="the relist's events")
        assert _relist_deletions() - counted_before == 2, "visible in the metrics"
        after = sorted((e[1], e[2]["metadata"]["name"]) for e in emitted[before:])
        assert after == [("ADDED", "stays"), ("DELETED", "goes"), ("DELETED", "goes-too")]
        deleted = [e for e in emitted[before:] if e[1] == "DELETED"]
        for kind, _, obj in deleted:  # the last state known, enough to map it to keys
            assert kind == "DeviceServer"
            assert obj["metadata"]["namespace"] == NAMESPACE
            assert obj["metadata"]["uid"]

        # once only: a later relist has nothing more to delete (a ConfigMap written in the
        # gap moves the compaction floor past the source's resourceVersion)
        core = client.CoreV1Api(api_client)
        _gap(
            emulator,
            lambda: core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "bump"}}),
            lambda: source.relists == 3,
        )
        wait_for(lambda: len(emitted) >= before + 4, timeout=EVENTUALLY, what="the second relist")
        assert [(e[1], e[2]["metadata"]["name"]) for e in emitted[before + 3 :]] == [
            ("ADDED", "stays")
        ]


def test_a_child_deleted_in_a_watch_gap_comes_back_as_deleted_with_its_controller(
    quiet: tuple[KubeEmu, client.ApiClient],
) -> None:
    """The synthetic DELETED of a child names its controller: its owner's key can be found."""
    emulator, api_client = quiet
    owner = create_ds(api_client, "owner", NAMESPACE)
    controller = {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "u-1"}
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_config_map(
        NAMESPACE,
        {"metadata": {"name": "child", "ownerReferences": [other, controller]}},
    )
    emitted: list[tuple[str, str, JsonDict]] = []
    configmaps = Resource(resources.CONFIG_MAP)
    with _running_source(emulator, api_client, configmaps, _collect(emitted)) as source:
        _gap(
            emulator,
            lambda: core.delete_namespaced_config_map("child", NAMESPACE),
            lambda: source.relists == 2,
            resource="configmaps",
        )
        wait_for(
            lambda: any(e[1] == "DELETED" for e in emitted),
            timeout=EVENTUALLY,
            what="the relist's DELETED",
        )
    [(kind, _, obj)] = [e for e in emitted if e[1] == "DELETED"]
    assert kind == "ConfigMap"
    assert obj == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": NAMESPACE,
            "uid": created.metadata.uid,
            "resourceVersion": created.metadata.resource_version,
            "ownerReferences": [
                {
                    "apiVersion": crd.API_VERSION,
                    "kind": "DeviceServer",
                    "name": "owner",
                    "controller": True,
                }
            ],
        },
    }
    assert owner_key(obj) == ds_key("owner", NAMESPACE)


def test_cr_deleted_in_a_watch_gap_is_forgotten_uncounted_and_enqueued(
    quiet: tuple[KubeEmu, client.ApiClient], start_watcher: StartWatcher
) -> None:
    emulator, api_client = quiet
    watcher = start_watcher(kubeconfig=emulator.kubeconfig)
    for name in ("stays", "goes"):
        create_ds(api_client, name, NAMESPACE)
    stays, goes = ds_key("stays", NAMESPACE), ds_key("goes", NAMESPACE)
    wait_for(lambda: {stays, goes} <= set(watcher.offered), timeout=10, what="both keys")
    wait_for(lambda: _count() == 2, timeout=EVENTUALLY, what="both counted")
    assert watcher.mapper.knows(goes)
    source = next(s for s in watcher.sources if s.resource.plural == "deviceservers")
    relists = source.relists

    _gap(emulator, lambda: _delete_ds(api_client, "goes"), lambda: source.relists > relists)
    wait_for(
        lambda: watcher.offered.count(goes) == 2, timeout=EVENTUALLY, what="the deletion's key"
    )
    assert _count() == 1, "the deleted CR is no longer counted"
    assert not watcher.mapper.knows(goes), "its fingerprint is forgotten"
    assert watcher.mapper.knows(stays)
    # the resync after the relist offers the live CR again; the deleted one is offered once
    wait_for(lambda: watcher.offered.count(stays) >= 2, timeout=EVENTUALLY, what="the resync")
    assert watcher.offered.count(goes) == 2


@pytest.mark.slow  # about 6 s: over two pages of ConfigMaps written one by one, then listed
def test_a_list_longer_than_a_page_is_read_page_by_page(
    quiet: tuple[KubeEmu, client.ApiClient],
) -> None:
    emulator, api_client = quiet
    names = [f"paged-{i:04d}" for i in range(2 * LIST_PAGE + 7)]
    core = client.CoreV1Api(api_client)
    for name in names:
        core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": name}})
    mark = emulator.mark()
    emitted: list[str] = []
    with _running_source(
        emulator,
        api_client,
        Resource(resources.CONFIG_MAP),
        lambda _kind, _type, obj: emitted.append(obj["metadata"]["name"]),
    ) as source:
        assert sorted(n for n in emitted if n.startswith("paged-")) == names
        lists = [r for r in emulator.audit(mark) if r["verb"] == "list"]
        assert len(lists) == 3, "three pages of at most LIST_PAGE objects"
        assert len(source.known) >= len(names)
