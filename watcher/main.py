"""``python -m watcher`` / ``tango-operator watcher``: wire the watcher together and run it.

Reads Settings from the environment, connects to Kubernetes and Redis, and runs the leader
election (``watcher.leader``). While this replica leads it runs one Source thread per
watched resource and namespace (``watcher.sources``), whose events one thread handles a
burst at a time (``watcher.batch``), the requeue-after pump (``watcher.pump``), the
periodic resync (``watcher.resync``) and, with fair dispatch, the dispatcher
(``watcher.dispatch``); events become keys in ``watcher.mapping`` and every key
goes through the work queue's dedupe (``watcher.enqueue``) and from there, fairly and a
window at a time, to Celery (``tango_operator.messages.Publisher``). Losing leadership stops
all of them at once; SIGTERM/SIGINT stop them and release the Lease.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import start_http_server

from tango_operator import crd, observed, resources, variables
from tango_operator.celery_app import make_publisher
from tango_operator.keys import Key
from tango_operator.workqueue import EnqueueResult, WorkQueue, connect
from tango_operator.workqueue.fair import AddResult, FairQueue
from tango_operator.workqueue.hosts import RedisDatabaseStates
from tango_operator.workqueue.ledger import RedisChildLedger, observed_wanted
from tango_operator.workqueue.piggyback import ScriptCall, send_together
from watcher import metrics
from watcher.batch import Event, EventBatcher
from watcher.dispatch import Dispatcher
from watcher.enqueue import Enqueuer
from watcher.kube import ConfigurationError, Kube
from watcher.leader import LeaderElector
from watcher.mapping import CUSTOM_KINDS, Mapper, owner_key
from watcher.owners import OwnerRecorder
from watcher.pods import PodTrouble
from watcher.pump import run_pump
from watcher.resync import resync, run_resync
from watcher.settings import Settings, SettingsError
from watcher.sources import Resource, Source

log = logging.getLogger("watcher")
JsonDict = dict[str, Any]
CHILD_SELECTOR = f"app.kubernetes.io/managed-by={crd.MANAGED_BY}"
RESOURCES = (
    *(Resource(custom) for custom in resources.CUSTOM_RESOURCES),
    # the kinds of child the operator creates (templates/), filtered server-side
    *(Resource(child, CHILD_SELECTOR) for child in resources.CHILDREN),
    # their pods, to notice a server container that fails (watcher.pods)
    Resource(resources.POD, CHILD_SELECTOR),
)
OPTIONAL_RESOURCES = tuple(Resource(child, CHILD_SELECTOR) for child in resources.OPTIONAL_CHILDREN)
"""The children only a setting makes (NetworkPolicies): watched only with it."""
SHUTDOWN_JOIN_SECONDS = 5.0
"""How long producers get to finish; a source blocked on a quiet stream is a daemon."""
RESYNC_RETRY_CAP = 30.0
"""A failed resync is tried again after 1 s, doubling to this, until one succeeds."""


def watched(settings: Settings) -> tuple[Resource, ...]:
    """What the leader lists and watches: ``RESOURCES``, and the optional children if made."""
    return RESOURCES + (OPTIONAL_RESOURCES if settings.network_policy else ())


def _in_background(callback: Callable[[], None]) -> Callable[[], None]:
    """``callback`` run in a daemon thread of its own each time the result is called."""

    def start() -> None:
        threading.Thread(target=callback, name="after-list", daemon=True).start()

    return start


@dataclass(frozen=True)
class _Prepared:
    """One event, handled locally: its Redis call (None: none) and its keys from the reply."""

    call: ScriptCall | None
    keys: Callable[[Any], list[Key]]
    front: bool
    """Its keys go ahead of their namespace's new resources (a child's or a pod's event)."""


class Watcher:
    """The leader's producers and the funnel every key goes through."""

    def __init__(
        self,
        settings: Settings,
        kube: Kube,
        queue: WorkQueue,
        send: Callable[[Key], None],
        send_urgent: Callable[[Key], None] | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.queue = queue
        self.send = send
        self.send_urgent = send_urgent
        self.fair = FairQueue(queue) if settings.dispatch.fair else None
        self.enqueuer = Enqueuer(queue, send, self.fair)
        self.mapper = Mapper()
        self.pods = PodTrouble()
        self.ledger = RedisChildLedger(queue.redis, prefix=queue.prefix)
        self.databases = RedisDatabaseStates(queue.redis, prefix=queue.prefix)
        self.owners = OwnerRecorder(self.ledger)
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self.listed = threading.Event()
        """Set once every source has listed and the resync after it has offered every key."""
        self._unlisted = 0
        self._held: set[Key] = set()
        """Owners whose children changed while the sources were still listing."""
        self.sources: list[Source] = []
        self._namespace_sources: list[Source] = []
        self._selected: set[str] = set()
        self._stop: threading.Event | None = None
        self._resync_wanted = threading.Event()
        self._resync_running = threading.Lock()
        self._resync_failures = 0
        self._resync_retry: threading.Timer | None = None
        self._deadline: threading.Timer | None = None

    # --- keys ------------------------------------------------------------------------------
    def producing(self) -> bool:
        """Whether this replica leads now, so that its producers may offer keys."""
        return self._stop is not None and not self._stop.is_set()

    def enqueue(
        self, key: Key, *, weak: bool = False, front: bool = False
    ) -> EnqueueResult | AddResult | None:
        """Offer ``key`` to the queue while leading; None once leadership is lost.

        ``weak`` (the resync): a key being reconciled right now is left alone; ``front``:
        ahead of its namespace's other keys (fair dispatch only).
        """
        if not self.producing():  # leadership lost: not one more key
            return None
        return self.enqueuer.enqueue(key, weak=weak, front=front)

    def on_event(self, kind: str, event_type: str, obj: JsonDict) -> None:
        """One listed or watched object: ``on_events`` of one."""
        self.on_events([(kind, event_type, obj)])

    def on_events(self, events: Sequence[Event]) -> None:
        """Map listed or watched objects to keys and enqueue those of selected namespaces.

        Namespace events update the selection instead; custom resources are also counted in
        the metrics and copied for the workers (``watcher.owners``); children go through the
        child ledger, and their owners' keys go to the front of their namespace's lane (fair
        dispatch), ahead of new resources. The Redis records of all the events (owner
        copies, the child ledger) go in one pipeline (``send_together``) before any key is
        offered, so a worker that takes a key finds the copy of the event that sent it; a
        key that several of the events want is offered once (at the front if any of them
        asks for it). Until every source has listed once, nothing is enqueued: the resync
        that follows the first lists offers every key once (``_listed``).
        """
        prepared: list[_Prepared] = []
        for kind, event_type, obj in events:
            try:
                item = self._prepare(kind, event_type, obj)
            except Exception:  # a malformed object must not cost the other events
                meta = obj.get("metadata")
                meta = meta if isinstance(meta, dict) else {}
                log.exception(
                    "event not handled kind=%s type=%s object=%s/%s",
                    kind,
                    event_type,
                    meta.get("namespace"),
                    meta.get("name"),
                )
                continue
            if item is not None:
                prepared.append(item)
        replies = iter(
            send_together(self.queue.redis, [p.call for p in prepared if p.call is not None])
        )
        wanted: dict[Key, bool] = {}
        for item in prepared:
            reply = next(replies) if item.call is not None else None
            for key in item.keys(reply):
                wanted[key] = wanted.get(key, False) or item.front
        for key, front in wanted.items():
            self._offer(key, front=front)

    def _offer(self, key: Key, *, front: bool) -> None:
        """Enqueue an event's key, or hold it until every source has listed (``front`` only)."""
        if not self.selected(key.namespace):
            return
        if self._synced.is_set():
            # a child's or a pod's event concerns a resource already worked on (its pod
            # became ready, a child was edited or deleted): ahead of its namespace's new
            # resources, so it is finished before they are started
            self.enqueue(key, front=front)
        elif front:
            with self._lock:
                self._held.add(key)

    def _prepare(self, kind: str, event_type: str, obj: JsonDict) -> _Prepared | None:
        """What one event does locally, its Redis call, and how the reply becomes keys."""
        if kind == "Namespace":
            self._namespace_event(event_type, obj)
            return None
        if kind in CUSTOM_KINDS:
            metrics.CUSTOM_RESOURCES.observe(kind, event_type, obj)
            if kind == crd.Kind.DATABASE_DS:
                self._record_database(event_type, obj)
            recording = self.owners.call(kind, event_type, obj)
            with self._lock:
                keys = self.mapper.keys_for(kind, event_type, obj)
            if recording is None:
                return _Prepared(None, lambda _: keys, front=False)
            owner, call = recording

            def recorded(reply: Any) -> list[Key]:
                self.owners.recorded(owner, reply)
                return keys

            return _Prepared(call, recorded, front=False)
        if kind == resources.POD.kind:
            pod_keys = self.pods.pod(event_type, obj)
            return _Prepared(None, lambda _: pod_keys, front=True)
        return self._child_event(event_type, obj)

    def _child_event(self, event_type: str, obj: JsonDict) -> _Prepared | None:
        """The owner's key if the ledger says this event of a child concerns it."""
        owner = owner_key(obj)
        if obj.get("kind") == resources.STATEFUL_SET.kind:
            self.pods.statefulset(event_type, obj, owner)
        if owner is None:
            return None
        state = None if event_type == "DELETED" else observed.state_of(obj)
        found = owner

        def wanted(reply: Any) -> list[Key]:
            if isinstance(reply, Exception):  # Redis unreachable: let the owner look, to be safe
                log.warning("child ledger unavailable owner=%s error=%r", found, reply)
                return [found]
            return [found] if observed_wanted(reply, state) else []

        return _Prepared(
            self.ledger.observe_call(owner, observed.child_id(obj), state), wanted, front=True
        )

    def _record_database(self, event_type: str, obj: JsonDict) -> None:
        """Keep the DatabaseDS states the workers read instead of the API."""
        meta = obj.get("metadata") or {}
        state: str | None = str((obj.get("status") or {}).get("state") or "")
        if event_type == "DELETED":
            state = None
        elif meta.get("deletionTimestamp"):
            state = observed.DATABASEDS_DELETING
        try:
            self.databases.record(meta["namespace"], meta["name"], state)
        except Exception as exc:  # workers read the API while the record may be stale
            log.warning("DatabaseDS state not recorded error=%r", exc)

    def _listed(self, *, deadline: bool = False) -> None:
        """One more source has listed once; after the last, offer every key once.

        With ``deadline`` (the initial-list deadline passed) the keys are offered although
        some sources have not listed yet (a missing CRD, a forbidden resource): those are
        named in a warning, and their events are offered as they come.
        """
        with self._lock:
            if not deadline:
                self._unlisted -= 1
            if (self._unlisted > 0 and not deadline) or self._synced.is_set():
                return
            held, self._held = self._held, set()
            self._synced.set()
        if deadline:
            waiting = [source.name for source in self.sources if source.relists == 0]
            log.warning(
                "sources not listed after %.0fs, offering keys anyway sources=%s",
                self.settings.initial_list_seconds,
                ",".join(waiting),
            )
        log.info("every source listed held=%d", len(held))
        for key in sorted(held):
            self.enqueue(key)
        self.resync()
        self.listed.set()

    # --- namespace label selector ----------------------------------------------------------
    def selected(self, namespace: str) -> bool:
        """Whether the CRs of ``namespace`` are reconciled (all are, without a selector)."""
        return self.settings.namespace_selector is None or namespace in self._selected

    def _namespace_event(self, event_type: str, obj: JsonDict) -> None:
        """Namespaces come from a source filtered by the selector itself (server-side)."""
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            return
        with self._lock:
            if event_type == "DELETED":  # deleted, or no longer matching the selector
                self._selected.discard(name)
                return
            newly = name not in self._selected
            self._selected.add(name)
        if newly and self.producing():
            self.resync()  # CRs of a namespace that starts matching

    def resync(self) -> None:
        """Enqueue every custom resource (periodically, and after any relist).

        Calls that arrive while one runs (every source relists after a compaction) coalesce into one
        more run.
        """
        self._resync_wanted.set()
        while self._resync_wanted.is_set():
            if not self._resync_running.acquire(blocking=False):
                return  # the running resync sees the flag and runs once more
            try:
                while self._resync_wanted.is_set():
                    self._resync_wanted.clear()
                    self._resync_once()
            finally:
                self._resync_running.release()

    def _resync_once(self) -> None:
        if not self.producing():
            return
        try:
            count = resync(
                self.kube,
                self.settings.namespaces,
                functools.partial(self.enqueue, weak=True),
                self.selected,
            )
        except Exception as exc:
            # the list failed (an API error, a timeout): try again soon, not a period later
            self._resync_failures += 1
            delay = min(RESYNC_RETRY_CAP, 2.0 ** (self._resync_failures - 1))
            log.warning("resync failed error=%r retry_in=%.0fs", exc, delay)
            self._retry_resync_in(delay)
            return
        self._resync_failures = 0
        log.info("resync keys=%d", count)

    def _retry_resync_in(self, delay: float) -> None:
        with self._lock:
            if self._resync_retry is not None and self._resync_retry.is_alive():
                return  # one retry pending is enough
            self._resync_retry = threading.Timer(delay, self.resync)
            self._resync_retry.daemon = True
            self._resync_retry.start()

    # --- leading ---------------------------------------------------------------------------
    def _source(
        self,
        resource: Resource,
        namespace: str | None,
        stop: threading.Event,
        batcher: EventBatcher | None = None,
    ) -> Source:
        """A source whose events (and list callbacks) go through ``batcher``, else straight in."""
        emit: Callable[[str, str, JsonDict], None] = self.on_event
        on_relist: Callable[[], None] = functools.partial(self._relisted, resource, namespace)
        on_listed: Callable[[], None] = functools.partial(self._first_listed, resource, namespace)
        if batcher is not None:
            # events handled in bursts; a callback starts once every event before it is
            # recorded, in a thread of its own, so that its resync (a list and an offer of
            # every key) does not hold up the events that come after it
            emit = batcher.put
            on_relist = functools.partial(batcher.put_call, _in_background(on_relist))
            on_listed = functools.partial(batcher.put_call, _in_background(on_listed))
        return Source(
            self.kube,
            resource,
            namespace,
            emit,
            stop,
            inactivity_seconds=self.settings.inactivity_seconds,
            watch_timeout_seconds=self.settings.watch_timeout_seconds,
            on_relist=on_relist,
            on_listed=on_listed,
        )

    def _first_listed(self, resource: Resource, namespace: str | None) -> None:
        if resource.type == resources.NAMESPACE:
            return  # primed before the sources start: not one of the sources waited for
        self._mark_listed(resource, namespace)
        self._listed()

    def _relisted(self, resource: Resource, namespace: str | None) -> None:
        self._mark_listed(resource, namespace)
        self.resync()

    def _mark_listed(self, resource: Resource, namespace: str | None) -> None:
        """After a list of the DatabaseDSs, their recorded states are complete for its scope."""
        if resource.type != resources.DATABASE_DS:
            return
        try:
            self.databases.mark_listed(namespace)
        except Exception as exc:
            log.warning("DatabaseDS list not recorded error=%r", exc)

    def lead(self, stop: threading.Event) -> list[threading.Thread]:
        """Start every producer thread; they stop producing when ``stop`` is set."""
        self.sources, self._namespace_sources = [], []
        threads = []
        if self.settings.namespace_selector is not None:
            namespaces = self._source(
                Resource(resources.NAMESPACE, self.settings.namespace_selector),
                None,
                stop,
            )
            namespaces.prime()  # know the matching namespaces before the first CR event
            self._namespace_sources.append(namespaces)
            threads.append(threading.Thread(target=namespaces.run, name="namespaces", daemon=True))
        metrics.CUSTOM_RESOURCES.selected = self.selected
        self._synced.clear()
        self.listed.clear()
        sources = watched(self.settings)
        self._unlisted = len(sources) * len(self.settings.namespaces or (None,))
        self._stop = stop  # producing from here on (priming resyncs nothing)
        batcher = EventBatcher(self.on_events, stop)
        threads.append(threading.Thread(target=batcher.run, name="events", daemon=True))
        for resource in sources:
            for namespace in self.settings.namespaces or (None,):
                source = self._source(resource, namespace, stop, batcher)
                self.sources.append(source)
                threads.append(threading.Thread(target=source.run, name=source.name, daemon=True))
        threads.append(
            threading.Thread(
                target=run_pump,
                args=(self.queue, self.enqueue, stop),
                kwargs={"fair": self.fair, "on_tick": self.owners.retry},
                name="pump",
                daemon=True,
            )
        )
        if self.fair is not None:
            dispatcher = Dispatcher(
                self.fair,
                self.send,
                send_urgent=self.send_urgent,
                window=self.settings.dispatch.window,
                weights=self.settings.dispatch.weights,
                draining=self.settings.dispatch.drain > 0,
            )
            threads.append(
                threading.Thread(target=dispatcher.run, args=(stop,), name="dispatch", daemon=True)
            )
        threads.append(
            threading.Thread(
                target=run_resync,
                args=(self.resync, self.settings.resync_seconds, stop),
                name="resync",
                daemon=True,
            )
        )
        self._deadline = threading.Timer(
            self.settings.initial_list_seconds, functools.partial(self._listed, deadline=True)
        )
        self._deadline.daemon = True
        threads.append(self._deadline)
        for thread in threads:
            thread.start()
        return threads

    def stop_producing(self) -> None:
        """No key from now on; wake the sources blocked on quiet streams."""
        if self._stop is not None:
            self._stop.set()
        if self._resync_retry is not None:
            self._resync_retry.cancel()
        if self._deadline is not None:
            self._deadline.cancel()
        for source in [*self.sources, *self._namespace_sources]:
            source.abort()

    def stopped_leading(self) -> None:
        """Forget per-object state: the next leadership starts from a fresh list."""
        with self._lock:
            self.mapper.forget_all()
            self.pods.forget_all()
            self._selected.clear()
            self._held.clear()
        self._synced.clear()
        metrics.CUSTOM_RESOURCES.forget_all()
        self.sources, self._namespace_sources = [], []


def run(settings: Settings, shutdown: threading.Event) -> None:
    """Elect, lead while elected, until ``shutdown`` is set; then release the Lease."""
    try:
        kube = Kube.connect(settings.kubeconfig)
    except ConfigurationError as exc:
        raise SettingsError(str(exc)) from None
    queue = WorkQueue(connect(settings.redis_url))
    publisher = make_publisher(settings.redis_url, name="tango_operator_watcher")
    watcher = Watcher(settings, kube, queue, publisher, publisher.urgent)
    elector = LeaderElector(
        kube,
        namespace=settings.lease_namespace,
        name=settings.lease_name,
        identity=settings.identity,
        lease_seconds=settings.lease_seconds,
        renew_seconds=settings.renew_seconds,
        retry_seconds=settings.retry_seconds,
    )
    # before the election starts: set after it, a quick first acquisition (LEADER 1) would be
    # overwritten with 0 until the next renewal (a loaded make test scraped 0 from the leader)
    metrics.LEADER.set(0)
    election = threading.Thread(target=elector.run, args=(shutdown,), name="leader", daemon=True)
    election.start()
    log.info(
        "watcher started identity=%s namespaces=%s lease=%s/%s",
        settings.identity,
        ",".join(settings.namespaces) or "*",
        settings.lease_namespace,
        settings.lease_name,
    )
    while not shutdown.is_set():
        if not elector.leading.wait(0.5):
            continue
        stop = threading.Event()
        threads = watcher.lead(stop)
        while elector.leading.is_set() and not shutdown.is_set():
            shutdown.wait(0.1)
        watcher.stop_producing()
        log.info("stopping producers leading=%s", elector.leading.is_set())
        deadline = time.monotonic() + SHUTDOWN_JOIN_SECONDS
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        watcher.stopped_leading()
    elector.release()
    election.join(timeout=SHUTDOWN_JOIN_SECONDS)
    kube.close()
    log.info("watcher stopped identity=%s", settings.identity)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tango-operator watcher`` until SIGINT or SIGTERM; return the exit status.

    2 when the settings are unusable (the message goes to stderr).
    """
    parser = argparse.ArgumentParser(
        prog="tango-operator watcher",
        description="Watch the cluster and enqueue reconcile keys.",
        epilog=variables.help_text(variables.WATCHER),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="INFO", help="Python log level (default INFO)")
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=options.log_level.upper(),
        format="time=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    shutdown = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: shutdown.set())
    try:
        settings = Settings.from_environment()
        if settings.metrics_port:
            start_http_server(settings.metrics_port)
        run(settings, shutdown)
    except SettingsError as exc:
        print(f"tango-operator watcher: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
