"""The chart offline.

``helm lint --strict``, Kubernetes 1.31 schemas for every rendered object, the values schema's
rejections, the security of every pod, environment variables the code really reads, the Redis URL
and the capability-gated ServiceMonitor.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
from prometheus_client import REGISTRY

from tests.chart.chart import (
    CHART,
    DATA,
    SERVICE_MONITOR_API,
    VALUE_SETS,
    ValueSet,
    container,
    env_of,
    find,
    helm,
    pod_specs,
    render,
)
from tests.conftest import ROOT
from tests.support.layout import OPERATOR_PACKAGES
from watcher import metrics as watcher_metrics
from workers import metrics as worker_metrics

pytestmark = pytest.mark.helm


@pytest.mark.parametrize("values", VALUE_SETS, ids=str)
def test_lint_is_clean_and_strict(values: ValueSet, tmp_path: Path) -> None:
    for strict in ((), ("--strict",)):
        result = helm("lint", str(CHART), *strict, *values.values, workdir=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "[WARNING]" not in result.stdout
        assert "[ERROR]" not in result.stdout
        assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", VALUE_SETS, ids=str)
def test_every_object_validates_against_kubernetes_1_31(values: ValueSet, tmp_path: Path) -> None:
    objects = render(*values.args, workdir=tmp_path)
    checked = 0
    for obj in objects:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            # a CRD type of the Prometheus operator: not in the Kubernetes schemas
            assert obj["kind"] == "ServiceMonitor"
            continue
        kubernetes_validate.validate(obj, "1.31", strict=True)
        checked += 1
    assert checked >= 10


def test_all_on_renders_every_optional_kind(tmp_path: Path) -> None:
    kinds = {o["kind"] for o in render(*VALUE_SETS[1].args, workdir=tmp_path)}
    assert {
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "StatefulSet",
        "ConfigMap",
    } <= kinds


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--set", "replicas=abc"), "Additional property replicas is not allowed"),
        (("--set", "watcher.replicaCount=abc"), "watcher.replicaCount: Invalid type"),
        (("--set", "worker.concurrency=0"), "worker.concurrency: Must be greater than or equal"),
        (("--set", "worker.tangoDbCleanup=Keep"), "worker.tangoDbCleanup: worker.tangoDbCleanup"),
        (("--set", "worker.configMode=Merge"), "worker.configMode: worker.configMode must be one"),
        (("--set", "watcher.logLevel=chatty"), "watcher.logLevel: watcher.logLevel must be one"),
        (("--set", "flower.enabled=yes"), "flower.enabled: Invalid type. Expected: boolean"),
        (("--set", "flower.auth.username=a:b"), "flower.auth.username: Does not match pattern"),
        (("--set", "worker.metricsPort=70000"), "worker.metricsPort: Must be less than or equal"),
        (
            ("--set", "containerSecurityContext.readOnlyRootFilesystem=false"),
            "containerSecurityContext.readOnlyRootFilesystem: "
            "containerSecurityContext.readOnlyRootFilesystem does not match: true",
        ),
        (
            ("--set", "podSecurityContext.runAsNonRoot=false"),
            "podSecurityContext.runAsNonRoot: podSecurityContext.runAsNonRoot does not match",
        ),
        (
            ("--set", "redis.enabled=false", "--set", "redis.external.url=http://redis:6379"),
            "redis.external.url: Does not match pattern",
        ),
        (
            ("--set", "redis.external.url=redis://user:secret@redis:6379"),
            "redis.external.url: Does not match pattern",
        ),
        (("--set", "worker.resources=null"), "worker: resources is required"),
        (("--set", "watcher.image.pullPolicy=Sometimes"), "watcher.image.pullPolicy: watcher"),
        (("--set", "worker.autoscaling.enabled=1"), "worker.autoscaling.enabled: Invalid type"),
    ],
)
def test_values_schema_rejects(arguments: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = helm("template", "op", str(CHART), *arguments, workdir=tmp_path)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--set", "redis.enabled=false"), "redis.external.url is required"),
        (("--set", "redis.tls.enabled=true"), "redis.tls.existingSecret (tls.crt, tls.key"),
        (
            (
                "--set",
                "redis.enabled=false",
                "--set",
                "redis.external.url=redis://r:6379/0",
                "--set",
                "redis.tls.enabled=true",
                "--set",
                "redis.tls.existingSecret=ca",
            ),
            "redis.tls.enabled needs a rediss:// redis.external.url",
        ),
        (
            ("--set", "redis.tls.clientCertificateSecret=client"),
            "redis.tls.clientCertificateSecret needs TLS to Redis",
        ),
        (
            ("--set", "watcher.leaderElection.renewDeadlineSeconds=20"),
            "leaseDurationSeconds > renewDeadlineSeconds > retryPeriodSeconds",
        ),
        (
            ("--set", "worker.serviceAccount.create=false"),
            "worker.serviceAccount.name is required",
        ),
    ],
)
def test_template_checks_what_the_schema_cannot(
    arguments: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    result = helm("template", "op", str(CHART), *arguments, workdir=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("values", VALUE_SETS, ids=str)
def test_every_pod_is_locked_down(values: ValueSet, tmp_path: Path) -> None:
    workloads = list(pod_specs(render(*values.args, workdir=tmp_path)))
    assert len(workloads) >= 3
    for name, pod in workloads:
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] == 10001, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert "hostNetwork" not in pod, name
        assert "hostPID" not in pod, name
        mounts_tmp = False
        for item in pod["containers"] + pod.get("initContainers", []):
            where = f"{name}/{item['name']}"
            context = item["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["runAsUser"] == 10001, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["privileged"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            resources = item["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            assert item.get("livenessProbe"), where
            assert item.get("readinessProbe"), where
            mounts_tmp |= any(m["mountPath"] == "/tmp" for m in item["volumeMounts"])
        assert mounts_tmp, f"{name}: no writable /tmp"
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes["tmp"], name


@pytest.mark.parametrize("values", VALUE_SETS, ids=str)
def test_only_the_watcher_and_workers_get_an_api_token(values: ValueSet, tmp_path: Path) -> None:
    objects = render(*values.args, workdir=tmp_path)
    for name, pod in pod_specs(objects):
        wanted = name.endswith(("-watcher", "-worker"))
        assert pod["automountServiceAccountToken"] is wanted, name
        assert pod["serviceAccountName"], name
    for account in (o for o in objects if o["kind"] == "ServiceAccount"):
        wanted = account["metadata"]["name"].endswith(("-watcher", "-worker"))
        assert account["automountServiceAccountToken"] is wanted


def test_probes_never_ask_the_broker(tmp_path: Path) -> None:
    """A Redis outage must not restart anything: no probe runs `celery inspect`."""
    for _, pod in pod_specs(render(workdir=tmp_path)):
        for item in pod["containers"]:
            probes = json.dumps([item.get(p) for p in ("livenessProbe", "startupProbe")])
            assert "celery" not in probes
            assert "inspect" not in probes


def _names_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for package in OPERATOR_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            names |= set(re.findall(r"\"(TANGO_OPERATOR_[A-Z_]+)\"", path.read_text()))
    return names


@pytest.mark.parametrize("values", VALUE_SETS, ids=str)
def test_environment_names_are_read_by_the_code(values: ValueSet, tmp_path: Path) -> None:
    read = _names_read_by_the_code()
    assert {"TANGO_OPERATOR_REDIS_URL", "TANGO_OPERATOR_REDIS_PASSWORD"} <= read
    objects = render(*values.args, workdir=tmp_path)
    for suffix in ("-watcher", "-worker", "-flower"):
        for name in env_of(container(objects, suffix)):
            if name.startswith("FLOWER_"):
                assert suffix == "-flower"
                continue
            assert name in read, f"{suffix[1:]} gets {name}, which no code reads"
    assert "FLOWER_BASIC_AUTH" in env_of(container(objects, "-flower"))


NETWORK_POLICIES = {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"]}


@pytest.mark.parametrize("values", VALUE_SETS, ids=str)
def test_network_policy_value_reaches_the_workers_the_watcher_and_their_rbac(
    values: ValueSet, tmp_path: Path
) -> None:
    objects = render(*values.args, workdir=tmp_path)
    enabled = values.name == "all-on"
    for suffix in ("-watcher", "-worker"):
        variable = env_of(container(objects, suffix))["TANGO_OPERATOR_NETWORK_POLICY"]
        assert variable["value"] == ("true" if enabled else "false")
    assert "TANGO_OPERATOR_NETWORK_POLICY" not in env_of(container(objects, "-flower"))
    # on: the workers apply them and the watcher watches them; off: the workers may only
    # delete what they made while it was on, and the watcher has nothing for them
    expected = {
        "watcher": [["list", "watch"]] if enabled else [],
        "worker": [["create", "patch"]] if enabled else [["get", "delete"]],
    }
    roles = [o for o in objects if o["kind"] in ("ClusterRole", "Role")]
    for component, verbs in expected.items():
        granted = [r for r in roles if r["metadata"]["name"].endswith(f"-{component}")]
        assert granted, component
        for role in granted:
            rules = [r for r in role["rules"] if "networkpolicies" in r["resources"]]
            assert rules == [{**NETWORK_POLICIES, "verbs": v} for v in verbs], role["metadata"]


def test_flower_options(tmp_path: Path) -> None:
    objects = render(workdir=tmp_path)
    flower = container(objects, "-flower")
    assert flower["command"][:3] == ["python", "-m", "workers.flower"]
    assert "--max_tasks=10000" in flower["command"]
    assert "--purge_offline_workers=600" in flower["command"]
    auth = env_of(flower)["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    secret = find(objects, "Secret", "-flower")
    assert auth["name"] == secret["metadata"]["name"]
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded[auth["key"]] == f"admin:{decoded['password']}"
    assert len(decoded["password"]) == 32
    assert flower["readinessProbe"]["httpGet"]["path"] == "/healthcheck"


def test_redis_password_and_url(tmp_path: Path) -> None:
    objects = render(workdir=tmp_path)
    secret = find(objects, "Secret", "-redis")
    for suffix in ("-watcher", "-worker", "-flower"):
        env = env_of(container(objects, suffix))
        assert env["TANGO_OPERATOR_REDIS_URL"]["value"] == (
            "redis://op-tango-operator-redis.tango.svc:6379/0"
        )
        ref = env["TANGO_OPERATOR_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret["metadata"]["name"], "key": "redis-password"}
    external = render(*VALUE_SETS[2].args, workdir=tmp_path)
    tls_files = {
        "TANGO_OPERATOR_REDIS_CA_FILE": "/etc/tango-operator/redis-tls/ca.crt",
        "TANGO_OPERATOR_REDIS_CERT_FILE": "/etc/tango-operator/redis-client-tls/tls.crt",
        "TANGO_OPERATOR_REDIS_KEY_FILE": "/etc/tango-operator/redis-client-tls/tls.key",
    }
    for suffix in ("-watcher", "-worker", "-flower"):
        spec = container(external, suffix)
        env = env_of(spec)
        # TLS options are not in the URL: the code adds ssl_cert_reqs=required and the files
        assert env["TANGO_OPERATOR_REDIS_URL"]["value"] == "rediss://redis.example.org:6380/3"
        assert {name: env[name]["value"] for name in tls_files} == tls_files
        ref = env["TANGO_OPERATOR_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "external-redis", "key": "password"}
        mounts = {m["name"]: m["mountPath"] for m in spec["volumeMounts"]}
        assert mounts["redis-tls"] == "/etc/tango-operator/redis-tls"
        assert mounts["redis-client-tls"] == "/etc/tango-operator/redis-client-tls"
    volumes = {
        v["name"]: v["secret"]
        for _, pod in pod_specs(external)
        for v in pod.get("volumes", [])
        if "secret" in v
    }
    assert volumes["redis-tls"]["secretName"] == "external-redis-ca"
    assert [i["key"] for i in volumes["redis-tls"]["items"]] == ["ca.crt"]  # never tls.key
    assert volumes["redis-client-tls"]["secretName"] == "external-redis-client"
    for spec in (container(external, s) for s in ("-watcher", "-worker", "-flower")):
        # each file the environment names is one a mounted Secret puts there
        mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
        for path in tls_files.values():
            directory, _, leaf = path.rpartition("/")
            assert leaf in [i["path"] for i in volumes[mounts[directory]]["items"]], path
    assert not [o for o in external if o["kind"] in ("Secret", "StatefulSet")]
    no_password = render(
        "--set", "redis.enabled=false", "--set", "redis.external.url=rediss://r:6380/0",
        workdir=tmp_path,
    )  # fmt: skip
    env = env_of(container(no_password, "-watcher"))
    assert env["TANGO_OPERATOR_REDIS_URL"]["value"] == "rediss://r:6380/0"
    assert "TANGO_OPERATOR_REDIS_PASSWORD" not in env
    assert "TANGO_OPERATOR_REDIS_CA_FILE" not in env  # the system CAs


def test_watcher_leader_election_settings(tmp_path: Path) -> None:
    objects = render(workdir=tmp_path)
    deployment = find(objects, "Deployment", "-watcher")
    assert deployment["spec"]["replicas"] == 2
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["TANGO_OPERATOR_LEASE_NAME"]["value"] == "op-tango-operator-watcher"
    assert env["TANGO_OPERATOR_LEASE_NAMESPACE"]["valueFrom"]["fieldRef"] == {
        "fieldPath": "metadata.namespace"
    }
    assert env["TANGO_OPERATOR_IDENTITY"]["valueFrom"]["fieldRef"] == {"fieldPath": "metadata.name"}
    lease_rule = find(objects, "Role", "-leader-election")["rules"][1]
    assert lease_rule["resourceNames"] == ["op-tango-operator-watcher"]


def test_service_monitor_needs_the_api(tmp_path: Path) -> None:
    asked = ("--set", "metrics.serviceMonitor.enabled=true")
    without = render(*asked, workdir=tmp_path)
    assert not [o for o in without if o["kind"] == "ServiceMonitor"]
    with_api = render(*asked, "--api-versions", SERVICE_MONITOR_API, workdir=tmp_path)
    monitor = find(with_api, "ServiceMonitor")
    ports = [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]]
    assert ports == ["metrics", "http"]
    selected = monitor["spec"]["selector"]["matchLabels"]
    services = [
        o["metadata"]["name"]
        for o in with_api
        if o["kind"] == "Service"
        and selected.items() <= (o["metadata"].get("labels") or {}).items()
    ]
    assert sorted(services) == [
        "op-tango-operator-flower",
        "op-tango-operator-watcher-metrics",
        "op-tango-operator-worker-metrics",
    ]


def test_hpa_replaces_the_replica_count(tmp_path: Path) -> None:
    objects = render(*VALUE_SETS[1].args, workdir=tmp_path)
    assert "replicas" not in find(objects, "Deployment", "-worker")["spec"]
    hpa = find(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "op-tango-operator-worker"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)


def test_grafana_dashboard_config_map(tmp_path: Path) -> None:
    config_map = find(render(workdir=tmp_path), "ConfigMap", "-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "dashboards" / "tango-operator.json").read_text())
    assert json.loads(config_map["data"]["tango-operator.json"]) == shipped


def test_value_files_are_in_tests_data() -> None:
    assert (DATA / "values-all-on.yaml").exists()
    assert (DATA / "values-external-redis.yaml").exists()


def test_dashboard_draws_only_series_the_operator_exports() -> None:
    # both metrics modules are imported (above): every series is registered
    assert watcher_metrics.CUSTOM_RESOURCES is not None
    assert worker_metrics.RECONCILES is not None
    exported = set(REGISTRY._names_to_collectors)
    dashboard = json.loads((CHART / "dashboards" / "tango-operator.json").read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ] + [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    referenced = {name for e in expressions for name in re.findall(r"tango_operator_\w+", e)}
    assert referenced <= exported, sorted(referenced - exported)
    # the only other series: the pods' own, from every cluster's kube-state-metrics and cAdvisor
    series = {
        name
        for e in expressions
        for name in re.findall(r"\b([a-z_]+)(?:\{|\[)", e)
        if not name.startswith("tango_operator_")
    }
    assert series == {
        "kube_pod_container_status_restarts_total",
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
    }, series
    per_server = [e for e in expressions if 'container="device-server"' in e]
    assert len(per_server) == 3
    assert all('pod=~"($deviceserver)-0"' in e for e in per_server)
    # what the dashboard must show: reconciles, the queue, CR states, time to Running, waits
    for wanted in (
        "tango_operator_reconcile_total",
        "tango_operator_queue_keys",
        "tango_operator_queue_latency_seconds_bucket",
        "tango_operator_custom_resources",
        "tango_operator_time_to_running_seconds_bucket",
        "tango_operator_dependency_wait_seconds_bucket",
        "tango_operator_devices",
    ):
        assert wanted in referenced, wanted
