"""The whole operator on one machine: an API server, Redis, watcher, workers, Flower, a kubelet.

Used by ``make demo`` (``devstack.demo``) and by the end-to-end tests, so both run exactly
the same processes: a Kubernetes API (``StackOptions.api``, ``devstack.stack_api``: kubeemu
with its StatefulSet controller in ``manual`` mode, or a real control plane of the stack's
own), a throw-away ``redis-server``, the operator's CRDs from the chart, ``python -m
watcher``, ``tango-operator worker`` processes with the real PyTango side, optionally Flower,
and ``devstack.runner``'s local kubelet (this machine as the API server's Node,
``devstack.runner.node``, on either server), which starts the device servers and PyTango's
DataBaseds when the operator scales their StatefulSets up and serves ``kubectl logs``. The
watcher and the workers get the API's admin kubeconfig.

Addresses: the workers run outside any cluster, so the in-cluster TANGO hosts of the
DatabaseDS resources named in ``databaseds`` are mapped to local ports chosen here
(``TANGO_OPERATOR_HOST_MAP`` for the workers, the same map for the kubelet, which starts
each DataBaseds on its mapped port). Every process logs to ``workdir/logs``.

Redis may require a password (``redis_password``: the server gets it, the operator's
processes get ``TANGO_OPERATOR_REDIS_PASSWORD``) and speak TLS only (``redis_tls``: a
``rediss://`` URL and ``TANGO_OPERATOR_REDIS_CA_FILE``), as in a locked-down cluster.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from devstack.ports import free_port
from devstack.redis_server import RedisServer, RedisTls
from devstack.runner import plan
from devstack.runner.kubelet import LocalKubelet
from devstack.runner.process import RestartPolicy
from devstack.stack_api import ApiChoice, StackApi, make_api

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]
ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = ROOT / "helm" / "tango-operator" / "crds"
TANGO_DB_PORT = 10000


def cluster_tango_host(name: str, namespace: str, cluster_domain: str = "cluster.local") -> str:
    """The in-cluster TANGO host (``host:port``) of the DatabaseDS ``namespace/name``."""
    return f"{name}.{namespace}.svc.{cluster_domain}:{TANGO_DB_PORT}"


@dataclass
class StackOptions:
    """What the local stack runs: its directory, DatabaseDSs, workers, Flower, Redis security."""

    workdir: Path
    api: ApiChoice = "kubeemu"
    """The Kubernetes API: ``kubeemu``, or ``real`` (a control plane of the stack's own, built
    by ``make controlplane``; ``devstack.controlplane.ControlPlaneError`` if it is missing)."""
    databaseds: tuple[tuple[str, str], ...] = ()
    """(namespace, name) of the DatabaseDS resources that will be created: each gets a
    local port for its DataBaseds."""
    host_map: Mapping[str, str] = field(default_factory=dict)
    """More cluster ``host:port`` → local ``host:port`` entries."""
    workers: int = 2
    concurrency: int = 4
    flower: bool = True
    metrics: bool = True
    environment: Mapping[str, str] = field(default_factory=dict)
    """Extra settings for the watcher and the workers (``TANGO_OPERATOR_*``)."""
    redis_password: str | None = None
    """Redis requires it; the operator's processes get it as TANGO_OPERATOR_REDIS_PASSWORD."""
    redis_tls: RedisTls | None = None
    """Redis speaks TLS only, with these files; the clients verify it with its CA file."""
    log_level: str = "INFO"
    """Of the watcher and the workers."""
    worker_includes: tuple[str, ...] = ()
    """More modules each worker imports at start (``celery worker --include``): test hooks."""


@dataclass
class Endpoint:
    """A URL the stack serves, with the name it is listed under."""

    name: str
    url: str


class LocalStack:
    """Start with ``start()``, stop with ``stop()`` (or use it as a context manager)."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.workdir = options.workdir
        self.logs = self.workdir / "logs"
        self.api: StackApi = make_api(options.api, self.workdir)
        self.redis: RedisServer | None = None
        self.api_client: client.ApiClient | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.endpoints: list[Endpoint] = []
        self.flower_credentials: tuple[str, str] | None = None
        self.host_map: dict[str, str] = dict(options.host_map)
        for namespace, name in options.databaseds:
            self.host_map.setdefault(
                cluster_tango_host(name, namespace), f"127.0.0.1:{free_port()}"
            )

    @property
    def kubelet(self) -> LocalKubelet | None:
        """The kubelet running the pods (``suspend``/``resume`` a pod's process with it)."""
        return self.api.kubelet

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the API, Redis, the kubelet and the operator; on failure stop what started."""
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.api.start()
        self.endpoints.append(Endpoint(self.api.label, self.api.url))
        (self.workdir / "redis").mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(
            self.workdir / "redis",
            tls=self.options.redis_tls,
            password=self.options.redis_password,
        )
        self.redis.start()
        self.endpoints.append(Endpoint("Redis", self.redis.url))
        self.api_client = config.new_client_from_config(config_file=str(self.api.kubeconfig))
        install_crds(self.api_client)
        self.api.run_pods(
            self.api_client,
            plan.Settings(workdir=self.workdir / "kubelet", host_map=self.host_map),
            restart=RestartPolicy(base=1.0, cap=10.0),
            probe_period_cap=0.5,
        )

        environment = self.operator_environment()
        watcher_env = {**environment, "TANGO_OPERATOR_IDENTITY": "demo-watcher"}
        if self.options.metrics:
            port = free_port()
            watcher_env["TANGO_OPERATOR_METRICS_PORT"] = str(port)
            self.endpoints.append(Endpoint("watcher metrics", f"http://127.0.0.1:{port}/metrics"))
        self._spawn(
            "watcher",
            [sys.executable, "-m", "watcher", "--log-level", self.options.log_level],
            watcher_env,
        )
        for index in range(self.options.workers):
            worker_env = dict(environment)
            if self.options.metrics:
                port = free_port()
                worker_env["TANGO_OPERATOR_METRICS_PORT"] = str(port)
                self.endpoints.append(
                    Endpoint(f"worker{index} metrics", f"http://127.0.0.1:{port}/metrics")
                )
            command = [
                sys.executable, "-m", "tango_operator.cli", "worker",
                "--concurrency", str(self.options.concurrency),
                "--hostname", f"worker{index}@%h",
                "--loglevel", self.options.log_level,
                "--without-gossip", "--without-mingle",
            ]  # fmt: skip
            if self.options.worker_includes:
                command += ["--include", ",".join(self.options.worker_includes)]
            self._spawn(f"worker{index}", command, worker_env)
        if self.options.flower:
            self._start_flower(environment)

    def _start_flower(self, environment: Mapping[str, str]) -> None:
        port = free_port()
        user, password = "admin", secrets.token_urlsafe(12)
        self.flower_credentials = (user, password)
        flower_env = {**environment, "FLOWER_BASIC_AUTH": f"{user}:{password}"}
        command = [
            sys.executable, "-m", "workers.flower",
            "--address=127.0.0.1", f"--port={port}",
            "--max_tasks=10000", "--purge_offline_workers=60",
        ]  # fmt: skip
        self._spawn("flower", command, flower_env)
        self.endpoints.append(Endpoint("Flower", f"http://127.0.0.1:{port}/"))

    def operator_environment(self) -> dict[str, str]:
        """The settings the watcher and the workers of this stack run with."""
        if self.api_client is None or self.redis is None:
            raise RuntimeError("the stack is not started")
        return {
            **os.environ,
            "KUBECONFIG": str(self.api.kubeconfig),
            "TANGO_OPERATOR_REDIS_URL": self.redis.url,
            "TANGO_OPERATOR_HOST_MAP": json.dumps(self.host_map, sort_keys=True),
            "TANGO_OPERATOR_RESYNC_SECONDS": "60",
            "TANGO_OPERATOR_WAITING_MIN_SECONDS": "0.5",
            "TANGO_OPERATOR_WAITING_MAX_SECONDS": "5",
            "TANGO_OPERATOR_PENDING_POLL_SECONDS": "0.5",
            "TANGO_OPERATOR_DEVICE_HEALTH_SECONDS": "5",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            **self._redis_credentials(),
            **self.options.environment,
        }

    def _redis_credentials(self) -> dict[str, str]:
        settings = {}
        if self.options.redis_password is not None:
            settings["TANGO_OPERATOR_REDIS_PASSWORD"] = self.options.redis_password
        if self.options.redis_tls is not None:
            settings["TANGO_OPERATOR_REDIS_CA_FILE"] = str(self.options.redis_tls.ca_file)
            if self.options.redis_tls.client_certificates:
                settings["TANGO_OPERATOR_REDIS_CERT_FILE"] = str(self.options.redis_tls.cert_file)
                settings["TANGO_OPERATOR_REDIS_KEY_FILE"] = str(self.options.redis_tls.key_file)
        return settings

    def _spawn(self, name: str, command: list[str], environment: Mapping[str, str]) -> None:
        with (self.logs / f"{name}.log").open("ab") as output:
            self.processes[name] = subprocess.Popen(
                command,
                env=dict(environment),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log.info("started %s pid=%d", name, self.processes[name].pid)

    def check(self) -> list[str]:
        """Names of the processes that have exited (they should all keep running)."""
        dead = [name for name, process in self.processes.items() if process.poll() is not None]
        return dead + self.api.dead()

    def stop(self) -> None:
        """Stop every process this stack started.

        Operator first, the Node's device servers next, then Redis and the API (on the real
        control plane: scheduler and controllers, kube-apiserver, etcd).
        """
        for process in self.processes.values():
            if process.poll() is None:
                # the process itself, not its group: the worker's supervisor passes SIGTERM
                # on to Celery, which stops its pool children
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
        self.api.stop_pods()
        if self.redis is not None:
            self.redis.stop()
        if self.api_client is not None:
            self.api_client.close()
        self.api.stop()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- using it -------------------------------------------------------------------------

    def apply(self, documents: Iterable[JsonDict]) -> list[tuple[str, str, str]]:
        """Create the resources (namespaces first); returns (kind, namespace, name)."""
        assert self.api_client is not None
        return apply_documents(self.api_client, documents)


def install_crds(api_client: client.ApiClient, timeout: float = 30.0) -> None:
    """Create the chart's CRDs and wait until they are Established."""
    extensions = client.ApiextensionsV1Api(api_client)
    names = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        names.append(crd["metadata"]["name"])
        try:
            extensions.create_custom_resource_definition(crd)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            found = extensions.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in (found.status.conditions or [])}
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established: {conditions}")
            time.sleep(0.05)


def apply_documents(
    api_client: client.ApiClient, documents: Iterable[JsonDict]
) -> list[tuple[str, str, str]]:
    """Create namespaces and custom resources as ``kubectl create -f`` would."""
    core = client.CoreV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    created: list[tuple[str, str, str]] = []
    items = [d for d in documents if isinstance(d, dict) and d.get("kind")]
    for document in sorted(items, key=lambda d: d["kind"] != "Namespace"):
        meta = document.get("metadata") or {}
        if document["kind"] == "Namespace":
            try:
                core.create_namespace(document)
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
            continue
        group, _, version = str(document["apiVersion"]).partition("/")
        plural = {"DeviceServer": "deviceservers", "DatabaseDS": "databaseds"}[document["kind"]]
        namespace = meta.get("namespace") or "default"
        custom.create_namespaced_custom_object(group, version, namespace, plural, document)
        created.append((document["kind"], namespace, meta["name"]))
    return created
