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

from kubernetes import client
from kubernetes.client.rest import ApiException

from watcher import metrics

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: float,
        renew_seconds: float,
        retry_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_seconds, self.renew_seconds = lease_seconds, renew_seconds
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.leading = threading.Event()
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        # an API call must not outlast the renew deadline
        self._timeout = (min(5.0, retry_seconds), max(retry_seconds, renew_seconds / 2))

    def _observe(self, spec: client.V1LeaseSpec) -> float:
        """Seconds since the Lease record last changed, as seen from here."""
        record = (spec.holder_identity, spec.renew_time, spec.lease_duration_seconds)
        now = self.clock()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        return now - self._observed_at

    def _try(self) -> bool:
        """One acquire-or-renew attempt; True when we hold the Lease afterwards."""
        now = _now()
        try:
            lease = self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    acquire_time=now,
                    renew_time=now,
                    lease_duration_seconds=max(1, round(self.lease_seconds)),
                    lease_transitions=0,
                ),
            )
            try:
                self.api.create_namespaced_lease(
                    self.namespace, body, _request_timeout=self._timeout
                )
            except ApiException as create_error:
                if create_error.status == 409:
                    return False
                raise
            return True
        spec = lease.spec
        holder = spec.holder_identity or ""
        unchanged_for = self._observe(spec)
        duration = spec.lease_duration_seconds or self.lease_seconds
        if holder and holder != self.identity and unchanged_for < duration:
            if self.leading.is_set():
                self._step_down(f"lease held by {holder}")
            return False
        if holder != self.identity:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = max(1, round(self.lease_seconds))
        try:
            self.api.replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=self._timeout
            )
        except ApiException as exc:
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
            lease = self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._timeout
            )
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = ""
                lease.spec.lease_duration_seconds = 1
                self.api.replace_namespaced_lease(
                    self.name, self.namespace, lease, _request_timeout=self._timeout
                )
                log.info("released lease identity=%s", self.identity)
        except Exception as exc:  # the standby then waits for the Lease to expire
            log.warning("lease release failed identity=%s error=%r", self.identity, exc)
