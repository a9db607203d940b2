"""Local volumes for the claims of a real control plane: what a cluster's provisioner does.

kube-scheduler does not bind a pod whose PersistentVolumeClaim is unbound, and
``devstack.controlplane`` has no storage provisioner (a cluster gets one from its cloud or,
in kind, from local-path-provisioner). ``LocalVolumeProvisioner`` watches the claims of every
namespace (official client) and, for each claim still Pending without a volume, creates a
``hostPath`` PersistentVolume under its work directory, reserved for that claim
(``claimRef`` with the claim's uid), with the claim's size, access modes, volume mode and
storage class; kube-controller-manager's PersistentVolume binder then binds the pair, as for
any pre-reserved volume. A volume outlives its claim (reclaim policy Retain) and is removed
by the test that made the cluster.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from kubernetes import client, watch

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]


def volume_for(claim: JsonDict, root: Path) -> JsonDict:
    """The PersistentVolume reserved for ``claim`` (a claim as the API serves it)."""
    meta, spec = claim["metadata"], claim.get("spec") or {}
    name = f"pvc-{meta['uid']}"
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"devstack.tango-controls.org/local": "true"}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "storageClassName": spec.get("storageClassName") or "",
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(root / name), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


class LocalVolumeProvisioner:
    """Creates a reserved local volume for every pending claim, until ``stop`` is set."""

    def __init__(self, api_client: client.ApiClient, root: Path) -> None:
        self.core = client.CoreV1Api(api_client)
        self.root = root
        self._stream: watch.Watch | None = None

    def provide(self, claim: JsonDict) -> None:
        """Create the volume of ``claim`` unless it is bound or has one already."""
        if claim.get("spec", {}).get("volumeName") or claim["metadata"].get("deletionTimestamp"):
            return
        volume = volume_for(claim, self.root)
        (self.root / volume["metadata"]["name"]).mkdir(parents=True, exist_ok=True)
        try:
            self.core.create_persistent_volume(volume)
        except client.ApiException as exc:
            if exc.status != 409:  # made already, on an earlier event of the claim
                log.warning("volume for %s/%s not made: %s", claim["metadata"]["namespace"],
                            claim["metadata"]["name"], exc.reason)  # fmt: skip
            return
        log.info("volume %s reserved for %s/%s", volume["metadata"]["name"],
                 claim["metadata"]["namespace"], claim["metadata"]["name"])  # fmt: skip

    def run(self, stop: threading.Event) -> None:
        """List and watch the claims of every namespace; resume after any stream failure."""
        while not stop.is_set():
            stream = self._stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.core.list_persistent_volume_claim_for_all_namespaces,
                    timeout_seconds=5,
                ):
                    if stop.is_set():
                        stream.stop()
                        break
                    if event["type"] in ("ADDED", "MODIFIED"):
                        body = self.core.api_client.sanitize_for_serialization(event["object"])
                        self.provide(body)
            except Exception as exc:  # a dropped stream, the API restarting
                log.debug("claim watch restarts: %s", exc)
                stop.wait(0.5)

    def interrupt(self) -> None:
        """End the current watch now (once ``stop`` is set, ``run`` then returns).

        Without it a stop waits for the watch's timeout (5 s) or the next claim event.
        """
        stream = self._stream
        if stream is not None:
            stream.stop()
