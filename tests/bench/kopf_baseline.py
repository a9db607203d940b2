"""The baseline of the throughput benchmark: the kopf operator a Python user would write.

One kopf process with one handler: on a DeviceServer's creation (or on resuming one that
was never handled), render the same three children the operator renders
(``workers.rendering``, identical to ``tango-operator render``), server-side apply them with
the same field manager, and set ``status.state`` to ``Running``. kopf adds its own
bookkeeping (its progress annotation, its Events), exactly as a user would get it; the
children are rendered from the CR without kopf's annotations, as the operator renders them. It does
not talk to TANGO and does not wait for the pod: a lower bound of the work our operator does.

Run by ``tests.bench.bench_reconcile`` as ``python -m tests.bench.kopf_baseline`` with
``KUBECONFIG`` set; ``KOPF_MAX_WORKERS`` sets kopf's handler thread pool (kopf's default is
asyncio's: min(32, CPUs + 4)).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import kopf

from tango_operator import crd
from workers import rendering
from workers.kube import Kube

_kube: Kube | None = None
KOPF_ANNOTATIONS = "kopf.zalando.org/"
"""The prefix of the annotations kopf keeps on the objects it handles."""


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Configure kopf: its defaults, but the handler pool when asked."""
    global _kube  # noqa: PLW0603 - one client per process, made at start-up
    _kube = Kube.connect(os.environ["KUBECONFIG"], connections=64)
    workers = os.environ.get("KOPF_MAX_WORKERS")
    if workers:
        settings.execution.max_workers = int(workers)


@kopf.on.resume(crd.GROUP, crd.VERSION, "deviceservers")
@kopf.on.create(crd.GROUP, crd.VERSION, "deviceservers")
def create(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Apply the three children and report Running."""
    assert _kube is not None
    metadata = dict(body["metadata"])
    # kopf's own bookkeeping (its last-handled-configuration) is not the user's: the
    # rendering copies a CR's annotations to its pods, so with it every kopf restart would
    # change every StatefulSet's template and roll every pod
    metadata["annotations"] = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if not key.startswith(KOPF_ANNOTATIONS)
    }
    resource = {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "metadata": metadata,
        "spec": dict(body["spec"]),
    }
    spec = crd.parse_device_server(resource)
    tango_host = crd.tango_host_for(
        spec.databaseds, namespace=body["metadata"]["namespace"], cluster_domain=spec.cluster_domain
    )
    for manifest in rendering.render_device_server(
        resource, spec, tango_host=tango_host, replicas=1
    ):
        _kube.apply(manifest)
    patch.status["state"] = "Running"


def main() -> int:
    """Run the operator in every namespace until killed (no peering: one process)."""
    kopf.configure(quiet=True)
    kopf.run(clusterwide=True, standalone=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
