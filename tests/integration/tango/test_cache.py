"""The probe cache, counted on the DB itself.

The DataBaseds' own per-command call counters (``Timing_calls``) say how many ``DbImportDevice``
round trips a burst of probes cost.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable

from tests.support.tango_db import PyTangoDatabase
from tests.support.tango_servers import TangoServers
from workers.tango import PyTangoPort
from workers.tango.cache import TTLCache

BURST = 50


def imports(db: PyTangoDatabase, action: Callable[[], object]) -> int:
    """DbImportDevice calls the DB served while ``action`` ran."""
    before = db.call_counts()["DbImportDevice"]
    action()
    return db.call_counts()["DbImportDevice"] - before


def warmed(port: PyTangoPort, tango_host: str, device: str) -> PyTangoPort:
    """Connections made (creating a proxy costs DB lookups of its own), cache empty."""
    port.device_ready(tango_host, device)
    port.database_alive(tango_host)
    port.cache.clear()
    return port


def _running_echo(servers: TangoServers, unique: str) -> str:
    device = f"cache/{unique}/1"
    servers.register(f"EchoServer/{unique}", "Echo", [device])
    servers.start_echo(unique)
    return device


def test_device_ready_burst_costs_one_db_round_trip_with_the_cache_and_n_without(
    tango_db: PyTangoDatabase, servers: TangoServers, unique: str
) -> None:
    device = _running_echo(servers, unique)
    cached = warmed(PyTangoPort(cache_ttl=30), tango_db.tango_host, device)
    uncached = warmed(PyTangoPort(cache_ttl=0), tango_db.tango_host, device)

    def burst(port: PyTangoPort) -> Callable[[], object]:
        return lambda: [port.device_ready(tango_db.tango_host, device).ok for _ in range(BURST)]

    assert imports(tango_db, burst(cached)) == 1
    assert imports(tango_db, burst(uncached)) == BURST
    assert cached.cache.hits == BURST - 1


def test_database_alive_and_unexported_devices_are_cached_per_host_and_device(
    tango_db: PyTangoDatabase, unique: str
) -> None:
    port = warmed(PyTangoPort(cache_ttl=30, negative_ttl=30), tango_db.tango_host, "sys/database/2")
    devices = ("sys/database/2", f"cache/{unique}/not-defined", "sys/tg_test/1")
    assert (
        imports(tango_db, lambda: [port.database_alive(tango_db.tango_host) for _ in range(BURST)])
        == 1
    )
    calls = imports(
        tango_db,
        lambda: [port.unexported_devices(tango_db.tango_host, devices) for _ in range(BURST)],
    )
    assert calls == len(devices)
    assert port.unexported_devices(tango_db.tango_host, devices) == list(devices[1:])


def test_a_no_is_short_lived_so_a_dependency_that_starts_is_seen_at_once(
    tango_db: PyTangoDatabase, servers: TangoServers, unique: str
) -> None:
    """A woken dependent is not told "not ready" from the cache.

    It was woken because its dependency just reached Running: negative answers live
    ``negative_ttl``, not ``ttl``.
    """
    device = f"cache/{unique}/later"
    servers.register(f"EchoServer/{unique}", "Echo", [device])
    port = PyTangoPort(cache_ttl=30, negative_ttl=0.2)
    assert not port.device_ready(tango_db.tango_host, device).ok
    burst = imports(
        tango_db, lambda: [port.device_ready(tango_db.tango_host, device) for _ in range(BURST)]
    )
    assert burst <= 1  # still cached within the short lifetime
    servers.start_echo(unique)  # takes longer than 0.2 s
    assert port.device_ready(tango_db.tango_host, device).ok
    assert (
        imports(
            tango_db, lambda: [port.device_ready(tango_db.tango_host, device) for _ in range(BURST)]
        )
        == 0
    )


def test_entries_expire_after_the_ttl(tango_db: PyTangoDatabase) -> None:
    port = warmed(PyTangoPort(cache_ttl=0.3), tango_db.tango_host, "sys/database/2")

    def twice_across_the_ttl() -> None:
        port.database_alive(tango_db.tango_host)
        port.database_alive(tango_db.tango_host)
        time.sleep(0.4)
        port.database_alive(tango_db.tango_host)

    assert imports(tango_db, twice_across_the_ttl) == 2


def test_a_config_write_invalidates_the_hosts_answers(
    tango_db: PyTangoDatabase, servers: TangoServers, unique: str
) -> None:
    device = _running_echo(servers, unique)
    port = PyTangoPort(cache_ttl=30)
    assert port.device_ready(tango_db.tango_host, device).ok
    servers.stop_all()
    port.remove_server(tango_db.tango_host, f"EchoServer/{unique}")
    probe = port.device_ready(tango_db.tango_host, device)  # not the cached "ready"
    assert not probe.ok
    assert "not defined" in probe.reason


def test_concurrent_callers_share_the_cache(tango_db: PyTangoDatabase) -> None:
    port = warmed(PyTangoPort(cache_ttl=30), tango_db.tango_host, "sys/database/2")
    threads = 8

    def storm() -> None:
        workers = [
            threading.Thread(
                target=lambda: [port.database_alive(tango_db.tango_host) for _ in range(BURST)]
            )
            for _ in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    # callers that miss at the same moment may each ask once; never once per call
    assert 1 <= imports(tango_db, storm) <= threads


def test_the_cache_is_bounded() -> None:
    cache: TTLCache[int] = TTLCache(60, max_entries=3)
    for key in range(10):
        cache.put(key, key)
    assert len(cache) == 3
    assert cache.get_or_compute(9, lambda: -1) == 9
    assert cache.get_or_compute(0, lambda: -1) == -1  # the oldest went first


def test_a_port_made_before_fork_makes_no_connection_and_works_in_the_child(
    tango_db: PyTangoDatabase,
) -> None:
    """Celery's prefork pool.

    The port may be built in the parent; PyTango objects must appear only in the child that uses
    them.
    """
    script = textwrap.dedent(
        f"""
        import os, sys
        from workers.tango import PyTangoPort
        port = PyTangoPort()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            alive = port.database_alive("{tango_db.tango_host}")
            ready = port.device_ready("{tango_db.tango_host}", "sys/database/2")
            print("child", alive.ok, ready.ok, flush=True)
            os._exit(0 if alive.ok and ready.ok else 1)
        _, status = os.waitpid(pid, 0)
        # the parent never talked to TANGO: no PyTango object, no thread pool
        assert port.connections._objects == {{}} and port.probes.caller._pool is None
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "child True True" in result.stdout
