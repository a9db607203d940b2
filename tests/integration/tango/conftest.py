"""Fixtures for the tests of ``workers.tango`` against real TANGO.

* ``tango_db`` — one PyTango DataBaseds (sqlite) for the module: starting one costs about a
  second, and tests stay independent by using names from ``unique``.
* ``own_tango_db`` — a DataBaseds of the test's own, for tests that stop, kill, freeze or
  restart it.
* ``servers`` — registers and runs device servers against ``tango_db``; all stopped after
  the test.
* ``mariadb`` — the session's own MariaDB server (``mariadbd`` on a data directory of its own,
  a free loopback port), for the C++ DataBaseds of ``test_cpp.py``; started by the first test
  that needs it, stopped and deleted at the end of the session. Where it cannot run it skips
  the tests that need it with the reason, or fails them under ``CI=true``.
* ``cpp_db`` — the C++ DataBaseds for the module, on a database of its own in ``mariadb``.
* ``port`` — a PyTangoPort with the cache off (every call is a real round trip);
  ``cached_port`` — with the default cache.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mariadb_server import MariaDBServer, MariaDBServerError
from tests.support.real_parts import unavailable
from tests.support.tango_db import CppDatabase, PyTangoDatabase, cpp_unavailable
from tests.support.tango_servers import TangoServers
from workers.tango import PyTangoPort

_names = itertools.count()


@pytest.fixture(scope="module")
def tango_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyTangoDatabase]:
    with PyTangoDatabase(tmp_path_factory.mktemp("tangodb")) as db:
        yield db


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    reason = cpp_unavailable()
    if reason:
        unavailable(reason)
    server = MariaDBServer()
    try:
        server.start()
    except MariaDBServerError as error:
        server.stop()  # its directory stays: the log the reason points at
        reason = f"the tests' own MariaDB did not start: {error}"
    if reason:  # outside the except block: no chained traceback in the report
        unavailable(reason)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def cpp_db(
    mariadb: MariaDBServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CppDatabase]:
    with CppDatabase(mariadb, tmp_path_factory.mktemp("cppdb")) as db:
        yield db


@pytest.fixture
def own_tango_db(tmp_path: Path) -> Iterator[PyTangoDatabase]:
    with PyTangoDatabase(tmp_path / "own-db") as db:
        yield db


@pytest.fixture
def servers(tango_db: PyTangoDatabase, tmp_path: Path) -> Iterator[TangoServers]:
    running = TangoServers(tango_db, tmp_path / "servers")
    yield running
    running.stop_all()


@pytest.fixture
def unique() -> str:
    """A token that makes server, instance and device names unique within the run."""
    return f"p{os.getpid()}n{next(_names)}"


@pytest.fixture
def port() -> PyTangoPort:
    return PyTangoPort(cache_ttl=0)


@pytest.fixture
def cached_port() -> PyTangoPort:
    return PyTangoPort()
