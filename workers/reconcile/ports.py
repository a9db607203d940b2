"""The interfaces the reconcilers are written against, and the values they exchange.

``workers.kube.Kube`` implements KubePort over the Kubernetes API; ``workers.tango``
implements TangoPort over PyTango and dsconfig (tests use a controllable stand-in); the
dependency index lives in Redis (``tango_operator.workqueue``) or in memory. The reconcilers only
see these protocols, so each can be tested against kubeemu with a stand-in TANGO side.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Protocol

from tango_operator import crd
from tango_operator.keys import Key
from tango_operator.observed import (
    DATABASEDS_DELETED,
    DATABASEDS_UNKNOWN,
    OWNER_DELETED,
    OWNER_UNKNOWN,
    ChildRecord,
    ChildState,
    OwnerCopy,
    RenderPlan,
    is_newer,
    needs_reconcile,
    owner_copy_of,
    owner_version,
)
from workers.settings import Settings

JsonDict = dict[str, Any]


class KubePort(Protocol):
    """What the reconcilers ask of the Kubernetes API (``workers.kube`` in production)."""

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> JsonDict | None:
        """Read one object; None when it does not exist."""

    def get_custom(self, kind: crd.Kind, namespace: str, name: str) -> JsonDict | None:
        """Read one of the operator's custom resources; None when it does not exist."""

    def list_custom(self, kind: crd.Kind, namespace: str) -> list[JsonDict]:
        """List the custom resources of ``kind`` in ``namespace``."""

    def apply(self, manifest: JsonDict) -> JsonDict:
        """Server-side apply ``manifest`` (forced) as the operator's field manager; the result."""

    def create_if_absent(self, manifest: JsonDict) -> JsonDict | None:
        """Create ``manifest`` unless an object of that name exists; the created object or None."""

    def merge_patch(
        self, resource: JsonDict, patch: JsonDict, *, subresource: str | None = None
    ) -> JsonDict:
        """JSON-merge-patch ``resource`` (or its ``subresource``, e.g. ``status``); the result."""

    def delete(self, obj: JsonDict) -> bool:
        """Delete ``obj`` if it still has the uid read; False when it is gone or replaced."""

    def set_finalizers(self, resource: JsonDict, finalizers: list[str]) -> JsonDict:
        """Replace the finalizers of ``resource``, guarded by its resourceVersion; the result."""

    def emit_event(self, resource: JsonDict, *, event_type: str, reason: str, message: str) -> None:
        """Record a Kubernetes Event on ``resource``."""


@dataclass(frozen=True)
class Probe:
    """The answer to "is X ready?", with the reason when it is not."""

    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class ConfigResult:
    """The answer of ``TangoPort.apply_config``."""

    changed: bool
    """Whether the TANGO DB was written (False: it already matched)."""


@dataclass(frozen=True)
class DeviceHealth:
    """TANGO's own view of one device of a running server, as a client such as Jive sees it."""

    name: str
    exported: bool
    """The TANGO DB's exported flag for the device."""
    state: str
    """The device's State (ON, FAULT, ALARM, ...); UNKNOWN when it could not be read."""
    status: str
    """The device's Status, whitespace folded, bounded; or why State could not be read."""


class ConfigConflictError(Exception):
    """A device of this server is registered to another server instance in the TANGO DB."""


class TangoUnavailableError(Exception):
    """The TANGO DB could not be reached (a wait, not an error of the spec)."""


class TangoPort(Protocol):
    """What the operator asks of TANGO. Every call must return within a few seconds.

    ``tango_host`` arguments are ``host:port`` addresses reachable from the worker.
    """

    def database_alive(self, tango_host: str) -> Probe:
        """Whether the TANGO DB at ``tango_host`` answers."""

    def device_ready(self, tango_host: str, device: str) -> Probe:
        """Exported in the TANGO DB and answering a ping."""
        ...

    def endpoint_reachable(self, host: str, port: int) -> Probe:
        """Whether a TCP connection to ``host:port`` opens."""

    def unexported_devices(self, tango_host: str, devices: tuple[str, ...]) -> list[str]:
        """The subset of ``devices`` not exported in the DB (raises TangoUnavailableError)."""
        ...

    def device_health(
        self, tango_host: str, server_instance: str, devices: tuple[str, ...]
    ) -> list[DeviceHealth]:
        """Each device's exported flag, State and Status, one entry per device in order.

        A device that does not answer is UNKNOWN with the reason as its status; once one
        device of ``server_instance`` (one process) does not answer, the others are not
        waited for. Raises TangoUnavailableError when the DB does not answer.
        """
        ...

    def apply_config(
        self, tango_host: str, server_instance: str, document: JsonDict, *, mode: crd.ConfigMode
    ) -> ConfigResult:
        """Write ``document`` for this server instance to the DB (dsconfig semantics).

        ``Update``: add and change, never remove (``json2tango -u``); ``Declarative``: the DB
        matches the document, removing what it does not list. dsconfig's protected
        properties (memorized ``__value``, ...) stay in both. Raises ConfigConflictError,
        TangoUnavailableError, or ValueError for a document the DB refuses.
        """
        ...

    def init_devices(
        self, tango_host: str, server_instance: str, devices: tuple[str, ...]
    ) -> list[str]:
        """Send ``Init`` to each device (they re-read their properties); why each failed."""
        ...

    def remove_server(self, tango_host: str, server_instance: str) -> None:
        """Delete the server instance and its devices from the TANGO DB."""


class DependencyIndexPort(Protocol):
    """Which keys wait for which devices, so a provider reaching Running wakes them."""

    def register(self, waiter: Key, devices: tuple[str, ...]) -> None:
        """Record that ``waiter`` waits for ``devices``, replacing what it waited for before."""

    def waiters_of(self, devices: tuple[str, ...]) -> list[Key]:
        """Return the keys waiting for any of ``devices``, sorted."""

    def forget(self, waiter: Key) -> None:
        """Drop every wait of ``waiter``."""


@dataclass
class InMemoryDependencyIndex:
    """A process-local DependencyIndexPort (tests, the render CLI, single-process runs)."""

    _waiting: dict[Key, tuple[str, ...]] = field(default_factory=dict)

    def register(self, waiter: Key, devices: tuple[str, ...]) -> None:
        """Record that ``waiter`` waits for ``devices``, replacing what it waited for before."""
        self._waiting[waiter] = devices

    def waiters_of(self, devices: tuple[str, ...]) -> list[Key]:
        """Return the keys waiting for any of ``devices``, sorted."""
        wanted = set(devices)
        return sorted(key for key, waits in self._waiting.items() if wanted & set(waits))

    def forget(self, waiter: Key) -> None:
        """Drop every wait of ``waiter``."""
        self._waiting.pop(waiter, None)


class ChildLedgerPort(Protocol):
    """What the operator knows of each child without reading it (``tango_operator.observed``).

    ``tango_operator.workqueue.ledger`` in production; ``InMemoryChildLedger`` in tests.
    """

    def observe(self, owner: Key, child: str, state: ChildState | None) -> bool:
        """Record a watch event of ``child`` (None: deleted); True if the owner must look."""

    def records(self, owner: Key) -> dict[str, ChildRecord]:
        """Every child's record, by ``Kind/name``."""

    def records_and_plan(self, owner: Key) -> tuple[dict[str, ChildRecord], RenderPlan | None]:
        """Every child's record, and the plan of the last render (``RenderPlan``), in one read."""

    def intend(self, owner: Key, digests: dict[str, str], plan: RenderPlan | None = None) -> None:
        """Record the digests about to be applied (before the requests), and a new plan."""

    def applied(self, owner: Key, states: dict[str, ChildState]) -> None:
        """Record the answers to applies, by child."""

    def removed(self, owner: Key, children: list[str]) -> None:
        """Drop the records of children a worker deleted (or found gone)."""

    def observe_owner(self, owner: Key, obj: JsonDict | None) -> None:
        """Record a watch event (or a listing) of the owner itself; None: it was deleted."""

    def wrote_owner(self, owner: Key, obj: JsonDict) -> None:
        """Record the owner as a worker's own write left it (the API's answer)."""

    def owner_copy(self, owner: Key) -> OwnerCopy:
        """The owner as last seen (``OWNER_UNKNOWN``: read it from the API)."""

    def owner_and_records(
        self, owner: Key
    ) -> tuple[OwnerCopy, dict[str, ChildRecord], RenderPlan | None]:
        """``owner_copy`` and ``records_and_plan`` together, in one read."""

    def drop_owner_copy(self, owner: Key) -> None:
        """Forget the owner's copy (a write showed it behind): read the API until the next event."""

    def forget(self, owner: Key) -> None:
        """Drop everything about ``owner`` and its children."""


class DatabaseStatesPort(Protocol):
    """The DatabaseDS states the watcher saw (``tango_operator.workqueue.hosts``)."""

    def state(self, namespace: str, name: str) -> str | None:
        """The state, None if there is no such DatabaseDS, or ``DATABASEDS_UNKNOWN``."""

    def record(self, namespace: str, name: str, state: str | None) -> None:
        """Record a DatabaseDS's state (its reconciler, right after publishing it)."""


class UnknownDatabaseStates:
    """A DatabaseStatesPort that knows nothing: every lookup reads the API."""

    def state(self, namespace: str, name: str) -> str | None:  # noqa: ARG002
        """Always ``DATABASEDS_UNKNOWN``."""
        return DATABASEDS_UNKNOWN

    def record(self, namespace: str, name: str, state: str | None) -> None:
        """Forget it: nothing is kept."""


@dataclass
class InMemoryDatabaseStates:
    """A DatabaseStatesPort in a dict, as the Redis one (``tango_operator.workqueue.hosts``).

    Unknown until recorded; a DatabaseDS recorded as gone reads ``DATABASEDS_DELETED`` (kept
    until it is recorded again: no expiry here).
    """

    _states: dict[tuple[str, str], str] = field(default_factory=dict)

    def state(self, namespace: str, name: str) -> str | None:
        """The recorded state, else ``DATABASEDS_UNKNOWN``."""
        return self._states.get((namespace, name), DATABASEDS_UNKNOWN)

    def record(self, namespace: str, name: str, state: str | None) -> None:
        """Keep it (None: gone, which reads ``DATABASEDS_DELETED``)."""
        self._states[(namespace, name)] = DATABASEDS_DELETED if state is None else state


@dataclass
class InMemoryChildLedger:
    """A ChildLedgerPort in a dict, with the rules of ``tango_operator.observed``."""

    _records: dict[Key, dict[str, ChildRecord]] = field(default_factory=dict)
    _owners: dict[Key, tuple[str, JsonDict | None]] = field(default_factory=dict)
    _plans: dict[Key, RenderPlan] = field(default_factory=dict)

    def observe(self, owner: Key, child: str, state: ChildState | None) -> bool:
        """Record a watch event of ``child`` (None: deleted); True if the owner must look."""
        children = self._records.setdefault(owner, {})
        record = children.get(child, ChildRecord())
        wanted = needs_reconcile(record.seen, state, record.intended)
        if state is None:
            children.pop(child, None)
        else:
            children[child] = ChildRecord(state, record.intended, record.applied_version)
        return wanted

    def records(self, owner: Key) -> dict[str, ChildRecord]:
        """Every child's record, by ``Kind/name``."""
        return dict(self._records.get(owner, {}))

    def records_and_plan(self, owner: Key) -> tuple[dict[str, ChildRecord], RenderPlan | None]:
        """Every child's record, and the plan of the last render."""
        return self.records(owner), self._plans.get(owner)

    def intend(self, owner: Key, digests: dict[str, str], plan: RenderPlan | None = None) -> None:
        """Record the digests about to be applied, and a new plan."""
        if plan is not None:
            self._plans[owner] = plan
        children = self._records.setdefault(owner, {})
        for child, digest in digests.items():
            record = children.get(child, ChildRecord())
            children[child] = ChildRecord(record.seen, digest, record.applied_version)

    def applied(self, owner: Key, states: dict[str, ChildState]) -> None:
        """Record the answers to applies, by child."""
        children = self._records.setdefault(owner, {})
        for child, state in states.items():
            record = children.get(child, ChildRecord())
            children[child] = ChildRecord(record.seen or state, record.intended, state.version)

    def removed(self, owner: Key, children: list[str]) -> None:
        """Drop the records of children a worker deleted (or found gone)."""
        records = self._records.get(owner, {})
        for child in children:
            records.pop(child, None)

    def forget(self, owner: Key) -> None:
        """Drop everything about ``owner`` and its children."""
        self._records.pop(owner, None)
        self._owners.pop(owner, None)
        self._plans.pop(owner, None)

    def observe_owner(self, owner: Key, obj: JsonDict | None) -> None:
        """Record a watch event of the owner itself; None: it was deleted."""
        if obj is None:
            self._owners[owner] = ("", None)
            return
        version = owner_version(obj)
        if version is None:
            self._owners.pop(owner, None)
            return
        old = self._owners.get(owner)
        if old is None or not old[0] or is_newer(version, old[0]):
            self._owners[owner] = (version, owner_copy_of(obj))

    def wrote_owner(self, owner: Key, obj: JsonDict) -> None:
        """Record the owner as a worker's own write left it (only over a watched copy)."""
        version, old = owner_version(obj), self._owners.get(owner)
        if version is not None and old is not None and old[0] and is_newer(version, old[0]):
            self._owners[owner] = (version, owner_copy_of(obj))

    def owner_copy(self, owner: Key) -> OwnerCopy:
        """The owner as last seen (``OWNER_UNKNOWN``: read it from the API)."""
        found = self._owners.get(owner)
        if found is None:
            return OWNER_UNKNOWN
        version, obj = found
        return OwnerCopy(known=True, obj=copy.deepcopy(obj)) if version else OWNER_DELETED

    def owner_and_records(
        self, owner: Key
    ) -> tuple[OwnerCopy, dict[str, ChildRecord], RenderPlan | None]:
        """``owner_copy`` and ``records_and_plan`` together."""
        return (self.owner_copy(owner), *self.records_and_plan(owner))

    def drop_owner_copy(self, owner: Key) -> None:
        """Forget the owner's copy (unless it is a tombstone)."""
        if self._owners.get(owner, ("-", None))[0]:
            self._owners.pop(owner, None)


@dataclass(frozen=True)
class Outcome:
    """What the queue should do after a reconcile."""

    state: str | None = None
    message: str = ""
    """Why, for a resource left in state Error (shown with the task in Flower)."""
    requeue_after: float | None = None
    """Look again after this many seconds (a wait, not a failure)."""
    wake: tuple[Key, ...] = ()
    """Other keys to enqueue now (dependents of a server that just became Running)."""
    starting: tuple[str, tuple[str, ...]] | None = None
    """(TANGO host, devices) of a server whose pod is starting: the export watcher looks
    for the devices and wakes this key and its waiters once they are exported."""


@dataclass(frozen=True)
class Ports:
    """Everything a reconciler talks to."""

    kube: KubePort
    tango: TangoPort
    index: DependencyIndexPort
    settings: Settings
    ledger: ChildLedgerPort
    databases: DatabaseStatesPort
