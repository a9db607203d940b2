"""Shared fixtures.

Kubeemu (fresh or shared), the real control plane (``control_plane``: kube-apiserver, etcd,
controllers and scheduler built by ``make controlplane``, one per session), real-client
factories, the pinned CLI tools, a redis-server per test and an official client on the test's
kubeemu with the CRDs.

``--kube-api`` picks the API servers of the tiers that run on both: ``both`` (the default,
what ``make test`` runs), ``kubeemu`` (the edit-test loop, no build needed) or ``real``.
Without the control plane's binaries a real-server test is skipped with the build hint —
and fails under ``CI=true``, where a tier of real parts that cannot run is an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from devstack.controlplane import ControlPlane, ControlPlaneError
from devstack.redis_server import RedisServer
from devstack.stack import install_crds
from kubeemu.testing import KubeEmu
from tests.support.real_parts import unavailable

pytest_plugins = ["kubeemu.pytest_plugin"]

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools" / "bin"


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


@pytest.fixture
def kubectl(kubeemu: KubeEmu, tmp_path: Path) -> Cli:
    return Cli(_tool("kubectl"), kubeemu.kubeconfig, tmp_path)


@pytest.fixture
def helm(kubeemu: KubeEmu, tmp_path: Path) -> Cli:
    return Cli(_tool("helm"), kubeemu.kubeconfig, tmp_path)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of this test, on a free port."""
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def kube_client(kubeemu: KubeEmu) -> Iterator[client.ApiClient]:
    """The official client on this test's kubeemu, with the operator's CRDs installed."""
    api_client = config.new_client_from_config(config_file=str(kubeemu.kubeconfig))
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
