"""What the parity tests do to both servers, as transcripts that can be compared.

A scenario takes a ``Wire`` and a namespace, makes its requests and returns a transcript: a
list of ``(step, what the client saw)`` with the varying parts normalised
(``tests.parity.wire.normalise``). The same scenario on kubeemu and on kube-apiserver must give
the same transcript. Relations that the values hide (a no-op write keeps the resourceVersion)
are recorded as explicit facts.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import re
import time
from typing import Any

from devstack.ports import free_port
from devstack.stack import install_crds
from tango_operator import crd
from tests.kubeapi.crds import PLURAL, WIDGET_CRD
from tests.parity.wire import APPLY, MERGE, STRATEGIC, Answer, JsonDict, Wire, normalise
from tests.support import fake_kubelet
from tests.support.crs import device_server
from workers import rendering

Transcript = list[tuple[str, Any]]


def seen(answer: Answer) -> JsonDict:
    """An answer as a transcript entry: its status and normalised body."""
    return {"status": answer.status, "body": normalise(answer.body)}


def version_of(answer: Answer) -> str:
    return str(answer.body["metadata"]["resourceVersion"])


def config_map(name: str, data: dict[str, str]) -> JsonDict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def config_map_writes(wire: Wire, namespace: str) -> Transcript:
    """Create, read, conflict, validation, no-op patches and deletion of a ConfigMap."""
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    steps: Transcript = []
    created = wire.call("POST", base, config_map("settings", {"a": "1"}))
    steps.append(("create", seen(created)))
    steps.append(("create again", seen(wire.call("POST", base, config_map("settings", {})))))
    steps.append(("get", seen(wire.call("GET", f"{base}/settings"))))
    steps.append(("get missing", seen(wire.call("GET", f"{base}/absent"))))
    bad = config_map("Bad_Name", {})
    steps.append(("invalid name", seen(wire.call("POST", base, bad))))
    updated_body = {**created.body, "data": {"a": "2"}}
    updated = wire.call("PUT", f"{base}/settings", updated_body)
    steps.append(("update", seen(updated)))
    steps.append(("stale update", seen(wire.call("PUT", f"{base}/settings", updated_body))))
    same = wire.call("PATCH", f"{base}/settings", {"data": {"a": "2"}}, content_type=MERGE)
    steps.append(("no-op merge patch", seen(same)))
    steps.append(("no-op keeps the version", version_of(same) == version_of(updated)))
    strategic = wire.call("PATCH", f"{base}/settings", {"data": {"b": "3"}}, content_type=STRATEGIC)
    steps.append(("strategic merge patch", seen(strategic)))
    steps.append(("delete", seen(wire.call("DELETE", f"{base}/settings"))))
    steps.append(("get deleted", seen(wire.call("GET", f"{base}/settings"))))
    steps.append(("delete again", seen(wire.call("DELETE", f"{base}/settings"))))
    return steps


def server_side_apply(wire: Wire, namespace: str) -> Transcript:
    """Apply by two managers: creation, a no-op re-apply, a conflict, a forced take-over."""
    path = f"/api/v1/namespaces/{namespace}/configmaps/applied"
    steps: Transcript = []
    body = config_map("applied", {"owner": "alpha", "shared": "x"})

    def apply(manager: str, document: JsonDict, force: bool = False) -> Answer:
        query = {"fieldManager": manager, **({"force": "true"} if force else {})}
        return wire.call("PATCH", path, document, content_type=APPLY, query=query)

    first = apply("alpha", body)
    steps.append(("apply creates", seen(first)))
    again = apply("alpha", body)
    steps.append(("re-apply", seen(again)))
    steps.append(("re-apply keeps the version", version_of(again) == version_of(first)))
    rival = config_map("applied", {"shared": "y"})
    steps.append(("conflicting apply", seen(apply("beta", rival))))
    steps.append(("forced apply", seen(apply("beta", rival, force=True))))
    steps.append(
        ("apply without a manager", seen(wire.call("PATCH", path, body, content_type=APPLY)))
    )
    shrunk = config_map("applied", {"owner": "alpha"})
    steps.append(("alpha gives a field up", seen(apply("alpha", shrunk))))
    return steps


def paged_list(wire: Wire, namespace: str) -> Transcript:
    """A list read two items at a time, following continue tokens."""
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    for number in range(5):
        item = config_map(f"item-{number}", {"n": str(number)})
        item["metadata"]["labels"] = {"parity": "paged"}
        assert wire.call("POST", base, item).status == 201
    steps: Transcript = []
    query = {"limit": "2", "labelSelector": "parity=paged"}
    pages = 0
    while True:
        page = wire.call("GET", base, query=query)
        names = [item["metadata"]["name"] for item in page.body["items"]]
        metadata = page.body["metadata"]
        steps.append(
            (f"page {pages}", {"status": page.status, "names": names,
                               "remaining": metadata.get("remainingItemCount"),
                               "more": bool(metadata.get("continue"))})
        )  # fmt: skip
        pages += 1
        if not metadata.get("continue") or pages > 5:
            break
        query = {"limit": "2", "labelSelector": "parity=paged", "continue": metadata["continue"]}
    steps.append(("bad continue token", seen(wire.call("GET", base, query={"continue": "x"}))))
    return steps


def namespace_contents(wire: Wire, namespace: str) -> Transcript:
    """What a new namespace holds before anyone writes to it (after the controllers' turn)."""
    with contextlib.suppress(AssertionError):  # a server without those controllers has none
        wire.eventually(
            f"/api/v1/namespaces/{namespace}/configmaps",
            lambda answer: answer.status == 200 and len(answer.body["items"]) > 0,
            timeout=3,
        )
        wire.eventually(
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            lambda answer: answer.status == 200 and len(answer.body["items"]) > 0,
            timeout=3,
        )
    names = {}
    for resource in ("configmaps", "serviceaccounts", "secrets"):
        listed = wire.call("GET", f"/api/v1/namespaces/{namespace}/{resource}")
        names[resource] = sorted(item["metadata"]["name"] for item in listed.body["items"])
    return [("contents", names)]


def custom_resource_definition(group: str) -> JsonDict:
    """The Widget CRD of the Kubernetes API tier, in a group of the test's own."""
    crd = copy.deepcopy(WIDGET_CRD)
    crd["metadata"]["name"] = f"{PLURAL}.{group}"
    crd["spec"]["group"] = group
    return crd


def custom_resources(wire: Wire, namespace: str) -> Transcript:
    """A CRD with a status subresource and defaults: validation, patches, status, finalizers."""
    group = f"{namespace}.example.com"
    made = wire.call(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        custom_resource_definition(group),
    )  # fmt: skip
    steps: Transcript = [("create the CRD", made.status)]
    wire.eventually(
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{group}",
        lambda answer: any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (answer.body.get("status") or {}).get("conditions") or []
        ),
        what="the CRD established",
    )
    base = f"/apis/{group}/v1/namespaces/{namespace}/{PLURAL}"
    wire.eventually(base, lambda answer: answer.status == 200, what="the CRD served")

    def widget(name: str, spec: JsonDict) -> JsonDict:
        return {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": name},
                "spec": spec}  # fmt: skip

    steps.append(("invalid", seen(wire.call("POST", base, widget("bad", {"color": "pink"})))))
    created = wire.call("POST", base, widget("w", {"size": 1}))
    steps.append(("create, defaulted", seen(created)))
    path = f"{base}/w"
    steps.append(
        ("strategic merge patch", seen(wire.call("PATCH", path, {"spec": {"size": 2}},
                                                 content_type=STRATEGIC)))
    )  # fmt: skip
    spec = wire.call("PATCH", path, {"spec": {"size": 2}}, content_type=MERGE)
    steps.append(("merge patch of spec", seen(spec)))
    ignored = wire.call("PATCH", path, {"status": {"phase": "Ready"}}, content_type=MERGE)
    steps.append(("status through the main resource", seen(ignored)))
    steps.append(("that changed nothing", version_of(ignored) == version_of(spec)))
    status = wire.call("PATCH", f"{path}/status", {"status": {"phase": "Ready"}},
                       content_type=MERGE)  # fmt: skip
    steps.append(("status through /status", seen(status)))
    applied = wire.call(
        "PATCH", path, widget("w", {"size": 3, "tags": ["a"]}), content_type=APPLY,
        query={"fieldManager": "parity"},
    )  # fmt: skip
    steps.append(("apply", seen(applied)))
    held = wire.call("PATCH", path, {"metadata": {"finalizers": ["parity/hold"]}},
                     content_type=MERGE)  # fmt: skip
    steps.append(("add a finalizer", seen(held)))
    steps.append(("delete while held", seen(wire.call("DELETE", path))))
    steps.append(("get while held", seen(wire.call("GET", path))))
    released = wire.call("PATCH", path, {"metadata": {"finalizers": None}}, content_type=MERGE)
    steps.append(("release", seen(released)))
    steps.append(("gone", seen(wire.call("GET", path))))
    wire.call("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{group}")
    return steps


def watch_events(wire: Wire, namespace: str) -> Transcript:
    """A watch from a list's version sees the writes after it, in order.

    A watch from a too-old version is not compared: kube-apiserver answers from its watch
    cache, whose window depends on the server's history (resourceVersion 1 is still served on
    a fresh server, 410 after some thousand writes); tests/integration/faultproxy pins what
    gives 410 on the real server.
    """
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    query = {"labelSelector": "parity=watched"}
    first = config_map("watched", {"n": "0"})
    first["metadata"]["labels"] = {"parity": "watched"}
    assert wire.call("POST", base, first).status == 201
    listed = wire.call("GET", base, query=query)
    since = listed.body["metadata"]["resourceVersion"]
    wire.call("PATCH", f"{base}/watched", {"data": {"n": "1"}}, content_type=MERGE)
    second = config_map("other", {})
    second["metadata"]["labels"] = {"parity": "watched"}
    wire.call("POST", base, second)
    wire.call("DELETE", f"{base}/watched")
    events = list(wire.watch(base, {**query, "resourceVersion": since}, events=3))
    steps: Transcript = [
        (f"event {number}", {"type": event["type"], "object": normalise(event["object"])})
        for number, event in enumerate(events)
    ]
    return steps


def garbage_collection(wire: Wire, namespace: str) -> Transcript:
    """Dependents of a deleted owner: background (deleted), foreground (owner waits), orphan."""
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    steps: Transcript = []
    for policy in ("Background", "Foreground", "Orphan"):
        owner_name, child_name = f"owner-{policy.lower()}", f"child-{policy.lower()}"
        owner = wire.call("POST", base, config_map(owner_name, {}))
        child = config_map(child_name, {})
        child["metadata"]["ownerReferences"] = [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": owner_name,
            "uid": owner.body["metadata"]["uid"], "controller": True,
            "blockOwnerDeletion": True,
        }]  # fmt: skip
        assert wire.call("POST", base, child).status == 201
        deleted = wire.call(
            "DELETE", f"{base}/{owner_name}",
            {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy},
        )  # fmt: skip
        steps.append((f"{policy}: delete the owner", seen(deleted)))
        wire.eventually(f"{base}/{owner_name}", lambda answer: answer.status == 404,
                        what=f"{policy}: the owner gone")  # fmt: skip
        if policy == "Orphan":
            kept = wire.eventually(
                f"{base}/{child_name}",
                lambda answer: not answer.body["metadata"].get("ownerReferences"),
                what="the orphan's owner reference removed",
            )
            steps.append((f"{policy}: the child", seen(kept)))
        else:
            wire.eventually(f"{base}/{child_name}", lambda answer: answer.status == 404,
                            what=f"{policy}: the child collected")  # fmt: skip
            steps.append((f"{policy}: the child collected", True))
    return steps


def operator_children(wire: Wire, namespace: str) -> Transcript:
    """The operator's own writes: a DeviceServer, its rendered children applied, its status.

    What the server defaults in a StatefulSet, a Service and a ConfigMap is what the reconcile's
    drift check lives with; a default kubeemu missed would make a real cluster hot-loop.
    """
    install_crds(wire.api)
    base = f"/apis/{crd.GROUP}/{crd.VERSION}/namespaces/{namespace}/deviceservers"
    created = wire.call("POST", base, device_server("motor", args="motor-1"))
    steps: Transcript = [("create the DeviceServer", seen(created))]
    resource = {key: created.body[key] for key in ("apiVersion", "kind", "metadata", "spec")}
    spec = crd.parse_device_server(resource)
    tango_host = crd.tango_host_for(spec.databaseds, namespace=namespace,
                                    cluster_domain=spec.cluster_domain)  # fmt: skip
    children = rendering.render_device_server(resource, spec, tango_host=tango_host, replicas=1)
    query = {"fieldManager": "tango-operator", "force": "true"}
    for child in sorted(children, key=lambda manifest: str(manifest["kind"])):
        path = child_path(child, namespace)
        first = wire.call("PATCH", path, child, content_type=APPLY, query=query)
        steps.append((f"apply the {child['kind']}", seen(without_status(first))))
        again = wire.call("PATCH", path, child, content_type=APPLY, query=query)
        steps.append((f"re-apply the {child['kind']}: spec", normalise(again.body.get("spec"))))
        # a controller may write the child's status in between (a new resourceVersion on
        # either server, whenever it runs): what must not move is the operator's own part
        steps.append((f"re-apply the {child['kind']}: nothing of ours changed",
                      applied_entry(again) == applied_entry(first)
                      and again.body["metadata"].get("generation")
                      == first.body["metadata"].get("generation")))  # fmt: skip
    status = {"status": {"state": "Building", "message": "waiting for its StatefulSet"}}
    patched = wire.call("PATCH", f"{base}/motor/status", status, content_type=MERGE)
    steps.append(("status patch", seen(patched)))
    return steps


def applied_entry(answer: Answer) -> JsonDict | None:
    """The operator's Apply entry of an object's managedFields, its time included."""
    for entry in answer.body["metadata"].get("managedFields") or []:
        if entry.get("manager") == "tango-operator" and entry.get("operation") == "Apply":
            return dict(entry)
    return None


def child_path(manifest: JsonDict, namespace: str) -> str:
    """The URL path of a rendered child (core or apps group)."""
    plural = {"ConfigMap": "configmaps", "Service": "services", "StatefulSet": "statefulsets"}
    group = "/api/v1" if manifest["apiVersion"] == "v1" else f"/apis/{manifest['apiVersion']}"
    name = manifest["metadata"]["name"]
    return f"{group}/namespaces/{namespace}/{plural[manifest['kind']]}/{name}"


def without_status(answer: Answer) -> Answer:
    """The answer without the object's status, which controllers write on their own time."""
    if not isinstance(answer.body, dict):
        return answer
    return Answer(answer.status, {k: v for k, v in answer.body.items() if k != "status"})


def events_and_leases(wire: Wire, namespace: str) -> Transcript:
    """An Event as the workers post it; a Lease as the watcher's leader election holds it."""
    involved = {"apiVersion": crd.API_VERSION, "kind": "DeviceServer", "name": "motor",
                "namespace": namespace, "uid": "00000000-0000-0000-0000-000000000001"}  # fmt: skip
    event = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "motor.0001", "namespace": namespace},
        "involvedObject": involved, "type": "Normal", "reason": "Applied",
        "message": "children applied", "source": {"component": "tango-operator"},
        "reportingComponent": "tango-operator", "reportingInstance": "worker-0",
        "firstTimestamp": "2026-12-05T10:00:00Z", "lastTimestamp": "2026-12-05T10:00:00Z",
        "count": 1,
    }  # fmt: skip
    events = f"/api/v1/namespaces/{namespace}/events"
    posted = wire.call("POST", events, event)
    managed = posted.body["metadata"].pop("managedFields", None)
    steps: Transcript = [("post an Event", seen(posted))]
    steps.append(("post an Event: managedFields", normalise(managed)))
    nameless = {**event, "metadata": {"namespace": namespace}}
    steps.append(("an Event without a name", seen(wire.call("POST", events, nameless))))
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    lease: JsonDict = {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "tango-operator-watcher"},
        "spec": {"holderIdentity": "watcher-a", "leaseDurationSeconds": 15,
                 "acquireTime": "2026-12-05T10:00:00.000000Z",
                 "renewTime": "2026-12-05T10:00:00.000000Z", "leaseTransitions": 0},
    }  # fmt: skip
    created = wire.call("POST", leases, lease)
    steps.append(("create the Lease", seen(created)))
    renewed = {**created.body, "spec": {**created.body["spec"],
                                        "renewTime": "2026-12-05T10:00:05.000000Z"}}  # fmt: skip
    steps.append(
        ("renew", seen(wire.call("PUT", f"{leases}/{lease['metadata']['name']}", renewed)))
    )
    taken = {**created.body, "spec": {**created.body["spec"], "holderIdentity": "watcher-b"}}
    stale = wire.call("PUT", f"{leases}/{lease['metadata']['name']}", taken)
    steps.append(("take over with a stale version", seen(stale)))
    return steps


def device_server_validation(wire: Wire, namespace: str) -> Transcript:
    """What a user sees for bad DeviceServers: the chart CRD's schema messages, pruning."""
    install_crds(wire.api)
    base = f"/apis/{crd.GROUP}/{crd.VERSION}/namespaces/{namespace}/deviceservers"
    missing = device_server("missing")
    del missing["spec"]["image"], missing["spec"]["dsname"]
    steps: Transcript = [("required fields missing", seen(wire.call("POST", base, missing)))]
    wrong_type = device_server("wrong", args=["a", "b"])
    steps.append(("a list where a string goes", seen(wire.call("POST", base, wrong_type))))
    unknown = device_server("unknown", notAField="x")
    steps.append(("an unknown field is pruned", seen(wire.call("POST", base, unknown))))
    no_spec = {"apiVersion": crd.API_VERSION, "kind": "DeviceServer", "metadata": {"name": "bare"}}
    steps.append(("no spec", seen(wire.call("POST", base, no_spec))))
    steps.append(("bad name", seen(wire.call("POST", base, device_server("Bad_Name")))))
    return steps


def tables_and_discovery(wire: Wire, namespace: str) -> Transcript:
    """``kubectl get`` of DeviceServers (a Table of printer columns), the group's resources."""
    install_crds(wire.api)
    base = f"/apis/{crd.GROUP}/{crd.VERSION}/namespaces/{namespace}/deviceservers"
    assert wire.call("POST", base, device_server("motor")).status == 201
    table = wire.call(
        "GET", base, accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    )
    body = normalise(table.body)
    for row in body.get("rows") or []:
        row["cells"] = ["<age>" if isinstance(cell, str) and cell[:-1].isdigit() else cell
                        for cell in row["cells"]]  # fmt: skip
    steps: Transcript = [("table", {"status": table.status, "body": body})]
    resources = wire.call("GET", f"/apis/{crd.GROUP}/{crd.VERSION}")
    # kube-apiserver lists a group's CRDs in its informer's (map) order: compared as a set
    resources.body["resources"].sort(key=lambda resource: resource["name"])
    steps.append(("the group's resources", seen(resources)))
    return steps


def pod_logs(wire: Wire, namespace: str) -> Transcript:
    """``kubectl logs`` through the API server to the kubelet of the pod's Node, and its errors.

    The kubelet is ``tests.support.fake_kubelet`` (the local kubelet's log endpoint with fixed
    outputs); the Nodes are named after the namespace (Nodes are cluster-wide).
    """
    output = b"".join(b"line %d\n" % number for number in range(8))
    nodes = {suffix: f"{namespace}-{suffix}" for suffix in ("up", "no-address", "closed")}
    failures = {
        "waiting": (400, 'container "main" in pod "waiting" is waiting to start: x'),
        "broken": (500, "the runtime is gone"),
        "teapot": (418, "short and stout"),
    }
    with fake_kubelet.fake_kubelet({"served": output, "multi": output}, failures) as kubelet:
        api = wire.api
        fake_kubelet.node(api, nodes["up"], fake_kubelet.LOOPBACK, kubelet.port)
        fake_kubelet.node(api, nodes["no-address"], [], kubelet.port)
        closed = [{"type": "InternalIP", "address": "127.0.0.1"}]
        # a port devstack.ports hands out and nothing binds: the kubelet there refuses
        fake_kubelet.node(api, nodes["closed"], closed, free_port())
        up = nodes["up"]
        for name, node_name in (("served", up), ("unknown-to-kubelet", up), ("waiting", up),
                                ("broken", up), ("teapot", up), ("unscheduled", None),
                                ("lost", f"{namespace}-missing"),
                                ("no-address", nodes["no-address"]),
                                ("closed", nodes["closed"])):  # fmt: skip
            fake_kubelet.pod(api, namespace, name, node_name)
        fake_kubelet.pod(api, namespace, "multi", up, ("one", "two"), ("setup",))
        pods = f"/api/v1/namespaces/{namespace}/pods"
        requests: list[tuple[str, str, dict[str, str]]] = [
            ("all of it", "served", {}),
            ("tailLines", "served", {"tailLines": "3"}),
            ("limitBytes", "served", {"limitBytes": "10"}),
            ("tailLines and limitBytes", "served", {"tailLines": "2", "limitBytes": "9"}),
            ("follow a finished run", "served", {"follow": "true"}),
            ("previous", "served", {"previous": "true", "timestamps": "true"}),
            ("sinceSeconds", "served", {"sinceSeconds": "60", "tailLines": "1"}),
            ("a flag that is not false", "served", {"follow": "maybe", "tailLines": "1"}),
            ("negative tailLines", "served", {"tailLines": "-1"}),
            ("not a number", "served", {"tailLines": "ten"}),
            ("every invalid option", "missing", {"tailLines": "-2", "limitBytes": "0",
                                                 "sinceSeconds": "0"}),
            ("sinceSeconds and sinceTime", "served", {"sinceSeconds": "5",
                                                      "sinceTime": "2026-01-02T03:04:05Z"}),
            ("a missing pod", "missing", {}),
            ("a pod not scheduled", "unscheduled", {}),
            ("not scheduled, wrong container", "unscheduled", {"container": "other"}),
            ("several containers, none named", "multi", {}),
            ("an init container", "multi", {"container": "setup", "tailLines": "1"}),
            ("a container the pod lacks", "multi", {"container": "other"}),
            ("the kubelet does not know the pod", "unknown-to-kubelet", {}),
            ("the kubelet says 400", "waiting", {}),
            ("the kubelet says 500", "broken", {}),
            ("the kubelet says 418", "teapot", {}),
            ("the Node is missing", "lost", {}),
            ("the Node has no address", "no-address", {}),
            ("nothing listens on the kubelet port", "closed", {}),
        ]  # fmt: skip
        steps: Transcript = []
        try:
            for step, name, query in requests:
                answer = wire.call("GET", f"{pods}/{name}/log", query=query, accept="*/*")
                steps.append((step, _without_ports(seen(answer))))
            steps.append(("POST", seen(wire.call("POST", f"{pods}/served/log", {}))))
        finally:
            fake_kubelet.remove(api, namespace, nodes.values())
    resources = wire.call("GET", "/api/v1").body["resources"]
    steps.append(("discovery", [r for r in resources if r["name"] == "pods/log"]))
    return steps


def _without_ports(value: Any) -> Any:
    """``value`` with loopback ports (the kubelet's, which differ per run) as ``<port>``."""
    if isinstance(value, dict):
        return {key: _without_ports(item) for key, item in value.items()}
    if isinstance(value, str):
        return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", value)
    return value


def two_version_crd(group: str) -> JsonDict:
    """The Widget CRD served at v1 (storage) and v2 with the same schema, v2's columns its own."""
    definition = custom_resource_definition(group)
    first = definition["spec"]["versions"][0]
    second = {**copy.deepcopy(first), "name": "v2", "storage": False}
    second["additionalPrinterColumns"] = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Colour", "type": "string", "jsonPath": ".spec.color", "priority": 1},
    ]
    definition["spec"]["versions"].append(second)
    return definition


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def managed_fields_by_manager(value: Any) -> Any:
    """``value`` with every managedFields list ordered by manager, operation, version, subresource.

    Upstream orders the entries by the second each was written in, then by manager, version and
    subresource: where two writes fall in one second or in two is the server's timing.
    """
    if isinstance(value, list | tuple):
        return type(value)(managed_fields_by_manager(item) for item in value)
    if not isinstance(value, dict):
        return value
    ordered = {key: managed_fields_by_manager(item) for key, item in value.items()}
    entries = ordered.get("managedFields")
    if isinstance(entries, list):
        ordered["managedFields"] = sorted(
            entries,
            key=lambda entry: tuple(
                str(entry.get(key, ""))
                for key in ("manager", "operation", "apiVersion", "subresource")
            ),
        )
    return ordered


def multi_version_crds(wire: Wire, namespace: str) -> Transcript:
    """A CRD served at two versions (conversion None) and what a client sees at each.

    Discovery, reads, writes and watches at either version, the storage version moved, a
    stored version that cannot be dropped, a version no longer served.
    """
    group = f"{namespace}.example.com"
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    definition = two_version_crd(group)
    steps: Transcript = [("create the CRD", wire.call("POST", crds, definition).status)]
    path = f"{crds}/{PLURAL}.{group}"
    base = {version: f"/apis/{group}/{version}/namespaces/{namespace}/{PLURAL}"
            for version in ("v1", "v2")}  # fmt: skip
    for version, collection in base.items():
        wire.eventually(collection, lambda answer: answer.status == 200, what=f"{version} served")
    steps.append(("the CRD", seen(wire.call("GET", path))))
    steps.append(("the group", seen(wire.call("GET", f"/apis/{group}"))))
    listed = wire.call("GET", "/apis").body["groups"]
    steps.append(("the group in /apis", [g for g in listed if g["name"] == group]))
    for version in base:
        steps.append(
            (f"resources at {version}", seen(wire.call("GET", f"/apis/{group}/{version}")))
        )
    widget = {"apiVersion": f"{group}/v2", "kind": "Widget", "metadata": {"name": "w"},
              "spec": {"size": 1}}  # fmt: skip
    steps.append(("create at v2", seen(wire.call("POST", base["v2"], widget))))
    steps.append(("a v1 body at v2", seen(wire.call("POST", base["v2"], {
        **widget, "apiVersion": f"{group}/v1", "metadata": {"name": "other"}}))))  # fmt: skip
    for version, collection in base.items():
        steps.append((f"get at {version}", seen(wire.call("GET", f"{collection}/w"))))
        steps.append((f"list at {version}", seen(wire.call("GET", collection))))
        table = normalise(wire.call("GET", collection, accept=TABLE).body)
        for row in table.get("rows") or []:
            row["cells"] = ["<age>" if re.fullmatch(r"\d+s", str(cell)) else cell
                            for cell in row["cells"]]  # fmt: skip
        steps.append((f"table at {version}", table))
        status = {"status": {"phase": f"seen-at-{version}"}}
        patched = wire.call("PATCH", f"{collection}/w/status", status, content_type=MERGE)
        steps.append((f"status at {version}", seen(patched)))
        document = {**widget, "apiVersion": f"{group}/{version}"}
        document["spec"] = {"size": 2, "tags": [version]}
        query = {"fieldManager": f"applier-{version}", "force": "true"}
        applied = wire.call("PATCH", f"{collection}/w", document, content_type=APPLY, query=query)
        steps.append((f"apply at {version}", seen(applied)))
    for watched, written in (("v1", "v2"), ("v2", "v1")):
        since = wire.call("GET", base[watched]).body["metadata"]["resourceVersion"]
        wire.call("PATCH", f"{base[written]}/w", {"metadata": {"labels": {"by": written}}},
                  content_type=MERGE)  # fmt: skip
        events = list(wire.watch(base[watched], {"resourceVersion": since}, events=1))
        seen_events = [{"type": e["type"], "object": normalise(e["object"])} for e in events]
        steps.append((f"watch at {watched}, a write at {written}", seen_events))
    moved = wire.call("GET", path).body
    for version in moved["spec"]["versions"]:
        version["storage"] = version["name"] == "v2"
    steps.append(("storage moved to v2", seen(wire.call("PUT", path, moved))))
    after = wire.call("PATCH", f"{base['v1']}/w", {"spec": {"size": 3}}, content_type=MERGE)
    steps.append(("a write after the move", seen(after)))
    current = wire.call("GET", path).body
    current["spec"]["versions"] = [v for v in current["spec"]["versions"] if v["name"] == "v2"]
    steps.append(("drop v1 while stored", seen(wire.call("PUT", path, current))))
    current = wire.call("GET", path).body
    for version in current["spec"]["versions"]:
        version["served"] = version["name"] == "v2"
    steps.append(("stop serving v1", seen(wire.call("PUT", path, current))))
    wire.eventually(base["v1"], lambda answer: answer.status == 404, what="v1 not served")
    steps.append(("get at v1, not served", seen(wire.call("GET", f"{base['v1']}/w"))))
    steps.append(("list at v1, not served", seen(wire.call("GET", f"/apis/{group}/v1"))))
    one_version = wire.eventually(  # discovery follows the CRD on its own time upstream
        f"/apis/{group}", lambda answer: len(answer.body["versions"]) == 1, what="v1 undiscovered"
    )
    steps.append(("the group, v1 not served", seen(one_version)))
    unknown = f"/apis/{group}/v2/namespaces/{namespace}/gadgets"
    steps.append(("a resource the group lacks", seen(wire.call("GET", unknown))))
    steps.append(
        ("a subresource the version lacks", seen(wire.call("GET", f"{base['v2']}/w/scale")))
    )
    steps.append(("an unknown group", seen(wire.call("GET", f"/apis/x.{group}/v1"))))
    wire.call("DELETE", path)
    return managed_fields_by_manager(steps)  # type: ignore[no-any-return]


def crd_replaced(wire: Wire, namespace: str) -> Transcript:
    """A CRD replaced in place by another's, as in a migration between operators.

    A v1-only CRD that keeps unknown fields becomes a stricter one at two versions: the watches
    of its resources end; what is stored is read (and written) under the new schema.
    """
    group = f"{namespace}.example.com"
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    path = f"{crds}/{PLURAL}.{group}"
    old = custom_resource_definition(group)
    schema = old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    for part in ("spec", "status"):
        schema[part]["x-kubernetes-preserve-unknown-fields"] = True
    schema["spec"]["properties"]["mode"] = {"type": "string", "nullable": True}
    steps: Transcript = [("create the old CRD", wire.call("POST", crds, old).status)]
    base = f"/apis/{group}/v1/namespaces/{namespace}/{PLURAL}"
    wire.eventually(base, lambda answer: answer.status == 200, what="the old CRD served")
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"},
              "spec": {"size": 1, "mode": None, "legacy": {"x": 1}}}  # fmt: skip
    steps.append(("create under the old CRD", seen(wire.call("POST", base, widget))))
    status = {"status": {"phase": "Running", "succeeded": 1}}
    steps.append(("its status", seen(wire.call("PATCH", f"{base}/w/status", status,
                                                content_type=MERGE))))  # fmt: skip
    since = wire.call("GET", base).body["metadata"]["resourceVersion"]
    replaced = two_version_crd(group)
    replaced["metadata"]["resourceVersion"] = wire.call("GET", path).body["metadata"][
        "resourceVersion"
    ]

    def replace() -> None:
        time.sleep(1)
        steps.append(("replace the CRD", seen(wire.call("PUT", path, replaced))["status"]))

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        replacing = pool.submit(replace)
        events = list(wire.watch(base, {"resourceVersion": since}, events=1, timeout=20))
        replacing.result()
    steps.append(("the watch ends without an event", (events, time.monotonic() - started < 15)))
    for version in ("v1", "v2"):
        read = f"/apis/{group}/{version}/namespaces/{namespace}/{PLURAL}"
        wire.eventually(read, lambda answer: answer.status == 200, what=f"{version} served")
        steps.append((f"read at {version}: pruned, defaulted", seen(wire.call("GET", f"{read}/w"))))
    labelled = wire.call("PATCH", f"{base}/w", {"metadata": {"labels": {"a": "b"}}},
                         content_type=MERGE)  # fmt: skip
    steps.append(("a write stores it so", seen(labelled)))
    wire.call("DELETE", path)
    return managed_fields_by_manager(steps)  # type: ignore[no-any-return]
