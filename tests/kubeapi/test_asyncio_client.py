"""``kubernetes_asyncio``: watch with bookmarks and a 410 after compaction."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.rest import ApiException

from kubeemu.testing import KubeEmu

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")


async def test_asyncio_watch_sees_changes_and_gets_410(kubeemu: KubeEmu) -> None:
    api_client = await config.new_client_from_config(config_file=str(kubeemu.kubeconfig))
    async with api_client:
        core = client.CoreV1Api(api_client)
        listed = await core.list_namespaced_config_map("default")
        rv = listed.metadata.resource_version
        await core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="async-1"))
        )

        seen: list[tuple[str, str]] = []
        stream = watch.Watch()
        async for event in stream.stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=5,
        ):
            if event["type"] == "BOOKMARK":
                continue
            seen.append((event["type"], event["object"].metadata.name))
            if event["object"].metadata.name == "async-1":
                stream.stop()
        assert seen == [("ADDED", "async-1")]

        kubeemu.compact()
        with pytest.raises(ApiException) as caught:
            async for _ in watch.Watch().stream(
                core.list_namespaced_config_map, "default", resource_version=rv
            ):
                pass
        assert caught.value.status == 410
