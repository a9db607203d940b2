"""pytest fixtures for kubeemu: a fresh emulator per test, or one shared by a session.

``kubeemu`` gives each test its own subprocess (nothing leaks between tests); ``kubeemu_shared``
is one server for the whole session, for tests that only create uniquely named objects.  Both
yield a :class:`kubeemu.testing.KubeEmu`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeemu.testing import KubeEmu


@pytest.fixture
def kubeemu(tmp_path: Path) -> Iterator[KubeEmu]:
    emulator = KubeEmu.start(tmp_path / "kubeemu", ["--bookmark-interval", "1"])
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def kubeemu_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeEmu]:
    emulator = KubeEmu.start(
        tmp_path_factory.mktemp("kubeemu-shared"), ["--bookmark-interval", "1"]
    )
    try:
        yield emulator
    finally:
        emulator.stop()
