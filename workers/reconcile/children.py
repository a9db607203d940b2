"""Apply a custom resource's rendered children, writing only what is not already so.

Called by both reconcilers with the manifests of ``workers.rendering``. Each manifest is
stamped with its digest (``tango_operator.observed.stamp``); a child the child ledger shows
as current (seen by the watcher with that digest at the version of the operator's own last
apply) is not written again; the others are announced to the ledger (``intend``) and then
applied with server-side apply, and the answer recorded (``applied``). The result tells the
reconciler the state of every child after this pass — from the apply's answer, or from the
ledger — so it never has to read a child back. A child of a kind only a setting makes
(``tango_operator.resources.OPTIONAL_CHILDREN``: NetworkPolicies) that the ledger shows and
this pass no longer renders is deleted: the setting was turned off. With none in the ledger,
that costs nothing.

``apply_planned`` goes one step further: given the digest of the render's inputs, it does
not render at all when the ledger's ``RenderPlan`` was made from the same inputs and every
child it lists is still current — the follow-up pass a StatefulSet's readiness wakes, a
resync and a failover reconcile each end up there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tango_operator import resources
from tango_operator.keys import Key
from tango_operator.observed import (
    ChildRecord,
    ChildState,
    RenderPlan,
    child_id,
    is_current,
    plan_holds,
    stamp,
    state_of,
)
from workers.reconcile.ports import Ports

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]
OPTIONAL = {child.kind: child for child in resources.OPTIONAL_CHILDREN}


@dataclass(frozen=True)
class Children:
    """Every child's state after a pass, and whether the pass wrote any."""

    states: dict[str, ChildState]
    """By ``Kind/name``."""
    written: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether this pass applied anything (the children are settling)."""
        return bool(self.written)

    def state(self, kind: str, name: str) -> ChildState | None:
        """The state of one child, if known."""
        return self.states.get(f"{kind}/{name}")


def current_status(
    children: Children, namespace: str, kind: str, name: str, ports: Ports
) -> ChildState | None:
    """A child's state fresh enough to judge its status by (a StatefulSet's readiness).

    What the watch reported, or this pass's apply answer, is taken as it is. A state a
    worker recorded from an earlier apply answer and the watch never confirmed (no watcher
    feeds this ledger, or it lags) is read again from the API.
    """
    state = children.state(kind, name)
    if state is None or state.watched or f"{kind}/{name}" in children.written:
        return state
    return _read(namespace, kind, name, ports)


def _read(namespace: str, kind: str, name: str, ports: Ports) -> ChildState | None:
    api_version = "apps/v1" if kind == "StatefulSet" else "v1"
    found = ports.kube.get(api_version, kind, namespace, name)
    return state_of(found) if found is not None else None


def known_state(records: dict[str, ChildRecord], kind: str, name: str) -> ChildState | None:
    """What the ledger last saw of one child (before anything is applied)."""
    record = records.get(f"{kind}/{name}")
    return record.seen if record is not None else None


def known_status(
    records: dict[str, ChildRecord], namespace: str, kind: str, name: str, ports: Ports
) -> ChildState | None:
    """``known_state``, read from the API when the watch never confirmed it."""
    state = known_state(records, kind, name)
    if state is None or state.watched:
        return state
    return _read(namespace, kind, name, ports)


def apply_planned(
    owner: Key,
    inputs: str,
    render: Callable[[], list[JsonDict]],
    ports: Ports,
    records: dict[str, ChildRecord],
    plan: RenderPlan | None,
) -> Children:
    """``apply`` of what ``render`` returns; not even rendered when ``plan`` still holds.

    ``inputs`` is the digest of what ``render`` reads (``workers.rendering.inputs_digest``),
    ``records`` and ``plan`` what the ledger holds (``records_and_plan``).
    """
    if plan is not None and plan_holds(plan, inputs, records):
        _remove_unrendered(owner, set(plan.children), records, ports)
        # every child the plan lists is current, so it has been seen
        return Children(
            states={c: seen for c in plan.children if (seen := records[c].seen) is not None}
        )
    return apply(owner, render(), ports, records, inputs=inputs, plan=plan)


def apply(
    owner: Key,
    manifests: list[JsonDict],
    ports: Ports,
    records: dict[str, ChildRecord],
    *,
    inputs: str | None = None,
    plan: RenderPlan | None = None,
) -> Children:
    """Apply the manifests that differ from what the ledger shows (``records``).

    Then delete the optional children the ledger shows and the manifests no longer hold.
    With ``inputs`` (the digest the manifests were rendered from), the ledger's ``plan`` is
    replaced by this render's when it differs, in the same write as the intended digests.
    """
    todo: list[tuple[str, JsonDict]] = []
    states: dict[str, ChildState] = {}
    intended: dict[str, str] = {}
    digests: dict[str, str] = {}
    for manifest in manifests:
        name = child_id(manifest)
        digest, stamped = stamp(manifest)
        digests[name] = digest
        record = records.get(name)
        if record is not None and record.seen is not None and is_current(record, digest):
            states[name] = record.seen
        else:
            todo.append((name, stamped))
            intended[name] = digest
    rendered = RenderPlan(inputs, digests) if inputs is not None else None
    ports.ledger.intend(owner, intended, rendered if rendered != plan else None)
    answered: dict[str, ChildState] = {}
    try:
        for name, stamped in todo:
            answered[name] = replace(state_of(ports.kube.apply(stamped)), watched=False)
    finally:
        # recorded together, also when an apply failed: what was written stays known (a child
        # whose answer is lost is only applied again)
        ports.ledger.applied(owner, answered)
    states.update(answered)
    _remove_unrendered(owner, set(digests), records, ports)
    return Children(states=states, written=tuple(name for name, _ in todo))


def _remove_unrendered(
    owner: Key, rendered: set[str], records: dict[str, ChildRecord], ports: Ports
) -> None:
    """Delete the optional children the ledger shows and the render no longer makes."""
    dropped = [c for c in records if c.partition("/")[0] in OPTIONAL and c not in rendered]
    if dropped:
        _remove(owner, dropped, ports)


def _remove(owner: Key, dropped: list[str], ports: Ports) -> None:
    """Delete each child in ``dropped`` that ``owner`` controls, and forget them all.

    Read first, so that only the operator's own object of that name goes (a ledger entry is
    no proof of ownership), and deleted with its uid as the precondition.
    """
    for child in dropped:
        kind, _, name = child.partition("/")
        found = ports.kube.get(OPTIONAL[kind].api_version, kind, owner.namespace, name)
        if found is not None and _controlled_by(found, owner) and ports.kube.delete(found):
            log.info("child no longer rendered deleted owner=%s child=%s", owner, child)
    ports.ledger.removed(owner, dropped)


def _controlled_by(obj: JsonDict, owner: Key) -> bool:
    return any(
        ref.get("controller") and ref.get("kind") == owner.kind and ref.get("name") == owner.name
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )
