"""Leader election on a coordination.k8s.io/v1 Lease (controller-runtime's timings).

Run in a thread by ``watcher.main``; sets ``leading`` while this replica holds the Lease
(read from and written to the Kubernetes API) and clears it as soon as the Lease is seen in
another holder's hands or a renewal fails past the renew deadline. Acquire and renew are a
read and a replace carrying the read resourceVersion, so two candidates cannot both win
(the loser gets 409). As in client-go, expiry is judged on this replica's own clock: a
Lease is free once its record has not changed for ``leaseDurationSeconds`` since we first
saw it, so clock skew between hosts cannot make two leaders. ``release`` hands the Lease
over on shutdown so a standby takes over at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tango_operator.resources import LEASE
from watcher import metrics
from watcher.kube import ApiError, Kube

log = logging.getLogger(__name__)


def _now() -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds, in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Holds (or waits for) one Lease; ``leading`` is set while this replica holds it."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: float,
        renew_seconds: float,
        retry_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.namespace, self.name, self.identity = namespace, name, identity
        self._path = LEASE.path(namespace, name)
        self.lease_seconds, self.renew_seconds = lease_seconds, renew_seconds
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.leading = threading.Event()
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        # an API call must not outlast the renew deadline
        self._timeout = (min(5.0, retry_seconds), max(retry_seconds, renew_seconds / 2))

    def _observe(self, spec: dict[str, Any]) -> float:
        """Seconds since the Lease record last changed, as seen from here."""
        record = (
            spec.get("holderIdentity"),
            spec.get("renewTime"),
            spec.get("leaseDurationSeconds"),
        )
        now = self.clock()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        return now - self._observed_at

    def _read(self) -> dict[str, Any] | None:
        try:
            return self.kube.get(self._path, timeout=self._timeout)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _try(self) -> bool:
        """One acquire-or-renew attempt; True when we hold the Lease afterwards."""
        now = _now()
        duration_seconds = max(1, round(self.lease_seconds))
        lease = self._read()
        if lease is None:
            body = {
                "apiVersion": LEASE.api_version,
                "kind": LEASE.kind,
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseDurationSeconds": duration_seconds,
                    "leaseTransitions": 0,
                },
            }
            try:
                self.kube.create(LEASE.path(self.namespace), body, timeout=self._timeout)
            except ApiError as create_error:
                if create_error.status == 409:
                    return False
                raise
            return True
        spec = lease.setdefault("spec", {})
        holder = spec.get("holderIdentity") or ""
        unchanged_for = self._observe(spec)
        duration = spec.get("leaseDurationSeconds") or self.lease_seconds
        if holder and holder != self.identity and unchanged_for < duration:
            if self.leading.is_set():
                self._step_down(f"lease held by {holder}")
            return False
        if holder != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = (spec.get("leaseTransitions") or 0) + 1
        spec["holderIdentity"] = self.identity
        spec["renewTime"] = now
        spec["leaseDurationSeconds"] = duration_seconds
        try:
            self.kube.replace(self._path, lease, timeout=self._timeout)
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def _step_down(self, reason: str) -> None:
        self.leading.clear()
        metrics.LEADER.set(0)
        log.warning("lost leadership identity=%s reason=%r", self.identity, reason)

    def run(self, stop: threading.Event) -> None:
        """Acquire, then renew, until ``stop`` is set (``release`` afterwards to hand over)."""
        last_renewal = 0.0
        while not stop.is_set():
            try:
                held = self._try()
            except Exception as exc:  # API unavailable: keep trying, step down on deadline
                log.warning("lease attempt failed identity=%s error=%r", self.identity, exc)
                held = False
            now = self.clock()
            if held:
                last_renewal = now
                if not self.leading.is_set():
                    log.info("became leader identity=%s", self.identity)
                self.leading.set()
                metrics.LEADER.set(1)
            elif self.leading.is_set() and now - last_renewal > self.renew_seconds:
                self._step_down("renew deadline passed")
            # the leader renews every retry period (client-go); standbys poll as often
            stop.wait(self.retry_seconds)

    def release(self) -> None:
        """Give the Lease up (shutdown): a standby acquires it on its next attempt."""
        if not self.leading.is_set():
            return
        self.leading.clear()
        metrics.LEADER.set(0)
        try:
            lease = self._read()
            spec = (lease or {}).get("spec") or {}
            if lease is not None and spec.get("holderIdentity") == self.identity:
                spec["holderIdentity"] = ""
                spec["leaseDurationSeconds"] = 1
                lease["spec"] = spec
                self.kube.replace(self._path, lease, timeout=self._timeout)
                log.info("released lease identity=%s", self.identity)
        except Exception as exc:  # the standby then waits for the Lease to expire
            log.warning("lease release failed identity=%s error=%r", self.identity, exc)
