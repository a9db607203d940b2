"""Wall-clock bounded PyTango calls, and what their failures mean.

PyTango's own timeouts (``set_timeout_millis``) do not bound every call: measured with
PyTango 10.3, a call to a DataBaseds that is alive at the TCP level but not answering (a
stopped process, a wedged server) can block until the server answers again, because the
client's reconnection goes through the TANGO DB and that path waits without a limit. So
every probe runs on a small per-process thread pool and the caller stops waiting after its
deadline. A host whose call overran is "hung" until that call returns: further calls to
it fail at once instead of piling up threads behind it.

Data in: zero-argument callables that talk to TANGO. Data out: their result, or a
:class:`CallTimeoutError` / the ``tango.DevFailed`` they raised, classified by :func:`unavailable`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar, cast

import tango
from tango.utils import PyTangoThreadPoolExecutor

T = TypeVar("T")

# reasons that mean "could not talk to the server", as opposed to an answer from it
_TRANSPORT_REASONS = frozenset(
    {
        "API_CorbaException",
        "API_CantConnectToDatabase",
        "API_CantConnectToDevice",
        "API_CommunicationFailed",
        "API_DeviceTimedOut",
        "API_ConnectionFailed",
        "API_ServerNotRunning",
        "API_DeviceNotExported",
    }
)


class CallTimeoutError(Exception):
    """The call did not return within its deadline (or an earlier call to the host hangs)."""


def reasons(exc: BaseException) -> list[str]:
    """The ``reason`` fields of a DevFailed's error stack (empty for other exceptions)."""
    if not isinstance(exc, tango.DevFailed):
        return []
    return [str(getattr(error, "reason", "")) for error in exc.args]


def unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the server could not be reached, not that it refused."""
    if isinstance(exc, (CallTimeoutError, OSError)):
        return True
    if isinstance(exc, (tango.ConnectionFailed, tango.CommunicationFailed)):
        return True
    return any(reason in _TRANSPORT_REASONS for reason in reasons(exc))


def describe(exc: BaseException) -> str:
    """One human line for a failure: the most specific description of a DevFailed."""
    if isinstance(exc, tango.DevFailed) and exc.args:
        # the first error is the deepest (the CORBA or DB reason); the last is the API's
        first, last = exc.args[0], exc.args[-1]
        text = str(getattr(first, "desc", "")).strip().splitlines()
        detail = text[0] if text else str(getattr(first, "reason", ""))
        reason = str(getattr(last, "reason", ""))
        return f"{reason}: {detail}" if reason and reason not in detail else detail
    return str(exc) or type(exc).__name__


class OmniRunner:
    """Runs calls to completion on omniORB-registered threads (``PyTangoThreadPoolExecutor``).

    For work without a wall-clock bound of its own (dsconfig's DB writes, each call of which
    has its PyTango timeout) started from threads PyTango does not know, such as Celery's
    thread pool: cppTango requires a thread to hold ``EnsureOmniThread`` for its whole life,
    which a pool thread serving many tasks cannot. Fork-safe like ``BoundedCaller``.
    """

    def __init__(self, max_workers: int = 4) -> None:
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._pid = -1
        self._pool: ThreadPoolExecutor | None = None

    def run(self, function: Callable[[], T]) -> T:
        """Call ``function`` on an omniORB thread and return its result (or raise its error)."""
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = PyTangoThreadPoolExecutor(
                    self.max_workers, thread_name_prefix="tango-config"
                )
                self._pid = os.getpid()
            pool = self._pool
        return pool.submit(function).result()


class BoundedCaller:
    """Runs calls on a lazily created thread pool, waiting at most ``timeout`` seconds.

    Fork-safe: a child process (Celery's prefork pool) gets a fresh pool and forgets
    the parent's hung hosts on its first call. With ``max_workers`` hosts hung at once,
    calls to other hosts wait for a free thread within their own deadline.
    """

    def __init__(self, max_workers: int = 8) -> None:
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._pid = -1
        self._pool: ThreadPoolExecutor | None = None
        self._hung: dict[str, tuple[float, Future[Any]]] = {}

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                # a pool inherited through fork has no threads: start over in this process.
                # PyTango's pool runs each thread inside EnsureOmniThread, which cppTango needs
                # of every thread that is not omniORB's own.
                self._pool = PyTangoThreadPoolExecutor(self.max_workers, thread_name_prefix="tango")
                self._pid = os.getpid()
                self._hung = {}
            return self._pool

    def call(self, host: str, function: Callable[[], T], timeout: float) -> T:
        """Call ``function`` in the pool; its result, or ``CallTimeoutError`` after ``timeout``.

        While an earlier call to ``host`` still hangs, a new one fails at once instead of taking
        another thread.
        """
        pool = self._executor()
        with self._lock:
            pending = self._hung.get(host)
            if pending is not None:
                since, future = pending
                if not future.done():
                    raise CallTimeoutError(
                        f"{host}: an earlier call has been waiting for "
                        f"{time.monotonic() - since:.1f} s"
                    )
                del self._hung[host]
        future = pool.submit(function)
        try:
            return cast(T, future.result(timeout=timeout))
        except FutureTimeout:
            with self._lock:
                self._hung[host] = (time.monotonic() - timeout, future)
            raise CallTimeoutError(f"{host}: no answer within {timeout:g} s") from None
