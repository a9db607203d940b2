"""Shared fixtures.

Kubeemu (fresh or shared), the real control plane (``control_plane``: kube-apiserver, etcd,
controllers and scheduler built by ``make controlplane``, one per session), real-client
factories, the pinned CLI tools, a redis-server per test and an official client on the test's
kubeemu with the CRDs.

``--kube-api`` picks the API servers of the tiers that run on both: ``both`` (the default,
what ``make test`` runs), ``kubeemu`` (the edit-test loop, no build needed) or ``real``.
Without the control plane's binaries a real-server test is skipped with the build hint —
and fails under ``CI=true``, where a tier of real parts that cannot run is an error.

Time: Hypothesis runs without its per-example deadline (profiles ``dev`` and ``ci`` below; a
loaded machine makes a 200 ms deadline a coin toss), and the terminal summary lists every test
whose call took more than ``SLOW_SECONDS`` without the ``slow`` mark (``make test-fast`` leaves
the marked ones out, so an unmarked slow test slows the edit-test loop).
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from kubernetes import client, config

from devstack.controlplane import ControlPlane, ControlPlaneError
from devstack.redis_server import RedisServer
from devstack.runner import plan
from devstack.runner.node import LocalNode
from devstack.stack import install_crds
from kubeemu.testing import KubeEmu
from tests.support.kube_api import KubeApi, clean_namespace
from tests.support.real_parts import unavailable

pytest_plugins = ["kubeemu.pytest_plugin", "pytester"]

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools" / "bin"


# Hypothesis: no per-example deadline anywhere (the examples of these tests render templates,
# start nothing, and still overrun 200 ms when two other test runs share the 2 cores).
# ``ci`` (chosen when CI is set) also derandomizes, so a CI run is reproducible, and prints the
# blob that reproduces a failure; HYPOTHESIS_PROFILE=dev|ci picks one explicitly.
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

# a test whose call phase takes longer than this belongs under ``@pytest.mark.slow``
SLOW_SECONDS = 5.0


class SlowList:
    """The calls over ``threshold`` seconds of tests without the ``slow`` mark, in the summary.

    A warning list, not a failure: a loaded machine slows every test. Under xdist it runs in
    the controller, whose reports carry the items' marks among their keywords.
    """

    def __init__(self, threshold: float = SLOW_SECONDS) -> None:
        self.threshold = threshold
        self.unmarked: list[tuple[str, float]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        over = report.when == "call" and report.duration > self.threshold
        if over and "slow" not in report.keywords:
            self.unmarked.append((report.nodeid, report.duration))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.unmarked:
            return
        title = f"tests over {self.threshold:g} s not marked slow"
        terminalreporter.section(title, yellow=True)
        for nodeid, duration in sorted(self.unmarked, key=lambda item: -item[1]):
            terminalreporter.line(f"{duration:6.2f}s {nodeid}")
        terminalreporter.line("mark them @pytest.mark.slow (make test-fast leaves those out)")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SlowList(), "tango-operator-slow-list")


def _tool(name: str) -> str:
    pinned = TOOLS / name
    if pinned.exists():
        return str(pinned)
    pytest.fail(f"{name} is missing: run `make tools` (make test does it for you)")


KUBE_APIS = ("kubeemu", "real")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kube-api",
        choices=("both", *KUBE_APIS),
        default="both",
        help="the API servers of the tiers that run on both: kubeemu, the real control plane, both",
    )


def selected_kube_apis(config: pytest.Config) -> tuple[str, ...]:
    """The API servers ``--kube-api`` selects."""
    chosen = str(config.getoption("--kube-api"))
    return KUBE_APIS if chosen == "both" else (chosen,)


@pytest.fixture(scope="session")
def control_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """The real control plane of this session (started on first use, stopped at the end)."""
    if "real" not in selected_kube_apis(request.config):
        pytest.skip("--kube-api=kubeemu: the real control plane is not used")
    try:
        plane = ControlPlane.start(tmp_path_factory.mktemp("controlplane"))
    except ControlPlaneError as error:
        unavailable(str(error))
    with plane:
        yield plane


def _kubeconfig_of(request: pytest.FixtureRequest) -> Path:
    """The kubeconfig of the test's ``kube_api`` if it runs on both servers, else its kubeemu."""
    if "kube_api" in request.fixturenames:
        kube_api: KubeApi = request.getfixturevalue("kube_api")
        return kube_api.kubeconfig
    emulator: KubeEmu = request.getfixturevalue("kubeemu")
    return emulator.kubeconfig


SIMULATED_NODE = "simulated-node"


@pytest.fixture(scope="session")
def local_node(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalNode]:
    """A Node of the session's control plane whose pods are ready at once, with no process.

    The real StatefulSet controller, scheduler and garbage collector do their part; the node
    plays kubeemu's ``instant`` pods (``devstack.runner.node``, ``simulate=True``), for the
    tiers whose pods name programs that do not exist here.
    """
    api_client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    node = LocalNode(
        api_client,
        plan.Settings(workdir=tmp_path_factory.mktemp("simulated-node")),
        name=SIMULATED_NODE,
        simulate=True,
        tick=0.05,
    )
    with node:
        yield node
    api_client.close()


def kubectl_binary() -> str:
    """The pinned kubectl (``make tools``); fails the test where it is missing."""
    return _tool("kubectl")


@pytest.fixture
def kubectl(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    return Cli(kubectl_binary(), _kubeconfig_of(request), tmp_path)


@pytest.fixture
def helm(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    return Cli(_tool("helm"), _kubeconfig_of(request), tmp_path)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of this test, on a free port."""
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis") as server:
        yield server


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that requests ``kube_api`` runs once per server ``--kube-api`` selects.

    One that also takes ``kubeemu`` itself (its admin API, raw HTTP to it) is kubeemu's only.
    """
    if "kube_api" in metafunc.fixturenames:
        servers = selected_kube_apis(metafunc.config)
        if "kubeemu" in inspect.signature(metafunc.function).parameters:
            servers = ("kubeemu",)
        metafunc.parametrize("kube_api", servers, indirect=True, scope="function")


@pytest.fixture
def kube_api(request: pytest.FixtureRequest) -> Iterator[KubeApi]:
    """The API server of this run of the test (``tests/support/kube_api.py``).

    The real one comes with the session's node (``local_node``), and ``default`` is cleaned
    after the test, as a fresh kubeemu would be.
    """
    if request.param == "kubeemu":
        emulator: KubeEmu = request.getfixturevalue("kubeemu")
        yield KubeApi("kubeemu", emulator.kubeconfig, emulator.url, emulator=emulator)
        return
    plane: ControlPlane = request.getfixturevalue("control_plane")
    request.getfixturevalue("local_node")
    yield KubeApi("real", plane.kubeconfig, plane.url, plane=plane)
    api_client = config.new_client_from_config(config_file=str(plane.kubeconfig))
    try:
        clean_namespace(api_client, "default")
    finally:
        api_client.close()


@pytest.fixture
def api_client(request: pytest.FixtureRequest) -> Iterator[client.ApiClient]:
    """The official client on the test's kubeemu, or on its ``kube_api`` if it runs on both.

    Nothing installed (``kube_client`` installs the operator's CRDs).
    """
    api = config.new_client_from_config(config_file=str(_kubeconfig_of(request)))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def kube_client(request: pytest.FixtureRequest) -> Iterator[client.ApiClient]:
    """The official client with the operator's CRDs installed.

    On this test's ``kube_api`` when it asks for one (it runs on both servers), else on its
    kubeemu.
    """
    api_client = config.new_client_from_config(config_file=str(_kubeconfig_of(request)))
    install_crds(api_client)
    try:
        yield api_client
    finally:
        api_client.close()


class Cli:
    """Runs a real client binary against the emulator, with caches kept inside the test."""

    def __init__(self, binary: str, kubeconfig: Path, workdir: Path):
        self.binary = binary
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "KUBECACHEDIR": str(workdir / "kube-cache"),
            "HOME": str(workdir / "home"),
            "HELM_CACHE_HOME": str(workdir / "helm-cache"),
            "HELM_CONFIG_HOME": str(workdir / "helm-config"),
            "HELM_DATA_HOME": str(workdir / "helm-data"),
        }
        self.workdir = workdir

    def run(
        self, *args: str, check: bool = True, input_text: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=input_text,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{Path(self.binary).name} {' '.join(args)} failed ({result.returncode}):\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [self.binary, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def have_binary(name: str) -> bool:
    return (TOOLS / name).exists() or shutil.which(name) is not None
