"""tango_operator.observed: what the watch tells about children, and when an owner must look."""

from __future__ import annotations

import copy
from typing import Any

from tango_operator.observed import (
    DIGEST_ANNOTATION,
    ChildRecord,
    ChildState,
    RenderPlan,
    child_id,
    digest_of,
    is_current,
    needs_reconcile,
    plan_holds,
    stamp,
    state_of,
)

JsonDict = dict[str, Any]


def _statefulset(*, generation: int = 1, observed: int = 0, ready: int = 0) -> JsonDict:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": "motor",
            "generation": generation,
            "resourceVersion": "7",
            "annotations": {DIGEST_ANNOTATION: "d1"},
        },
        "spec": {"replicas": 1},
        "status": {"observedGeneration": observed, "readyReplicas": ready},
    }


def test_stamp_annotates_a_copy_with_the_digest_of_the_unstamped_manifest() -> None:
    manifest: JsonDict = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    original = copy.deepcopy(manifest)
    digest, stamped = stamp(manifest)
    assert manifest == original
    assert stamped["metadata"]["annotations"] == {DIGEST_ANNOTATION: digest}
    assert digest == digest_of(manifest)
    assert digest != digest_of({**manifest, "data": {"a": "2"}})
    assert child_id(stamped) == "ConfigMap/c"


def test_a_statefulset_is_ready_once_rolled_out_and_every_replica_is_ready() -> None:
    assert state_of(_statefulset()).ready is False
    assert state_of(_statefulset(observed=1)).ready is False
    assert state_of(_statefulset(observed=1, ready=1)).ready is True
    assert state_of(_statefulset(generation=2, observed=1, ready=1)).ready is False
    state = state_of(_statefulset(observed=1, ready=1))
    assert (state.digest, state.version) == ("d1", "g1")
    assert ChildState.decode(state.encode()) == state
    assert ChildState.decode(state.encode()).detail == state.detail


def test_objects_without_a_generation_are_versioned_by_resource_version() -> None:
    config = {"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "42"}}
    assert state_of(config) == ChildState(digest=None, version="r42")


def test_the_operators_own_apply_does_not_call_the_owner_back() -> None:
    created = state_of(_statefulset())
    assert not needs_reconcile(None, created, intended="d1")
    rolled_out = state_of(_statefulset(observed=1))
    assert needs_reconcile(created, rolled_out, intended="d1"), "Building is over"
    churn = ChildState(
        rolled_out.digest,
        rolled_out.version,
        rolled_out.ready,
        {**rolled_out.detail, "currentRevision": "motor-5d8f"},
    )
    assert not needs_reconcile(rolled_out, churn, intended="d1"), "nothing the owner shows"
    ready = state_of(_statefulset(observed=1, ready=1))
    assert needs_reconcile(rolled_out, ready, intended="d1"), "readiness flipped"


def test_deletion_and_foreign_edits_call_the_owner_back() -> None:
    seen = state_of(_statefulset(observed=1, ready=1))
    assert needs_reconcile(seen, None, intended="d1")
    edited = state_of(_statefulset(generation=2, observed=1, ready=1))
    assert needs_reconcile(seen, edited, intended="d1"), "the version moved, the digest did not"
    assert needs_reconcile(None, state_of(_statefulset()), intended=None), "nobody intended it"
    assert needs_reconcile(None, state_of(_statefulset()), intended="other")


def test_a_child_is_current_only_when_seen_at_the_version_of_the_own_apply() -> None:
    seen = state_of(_statefulset(observed=1, ready=1))
    assert is_current(ChildRecord(seen, "d1", "g1"), "d1")
    assert not is_current(ChildRecord(seen, "d1", "g1"), "d2"), "the rendering changed"
    assert not is_current(ChildRecord(seen, "d1", "g0"), "d1"), "edited since the apply"
    assert not is_current(ChildRecord(seen, "d1", None), "d1"), "no apply recorded"
    assert not is_current(ChildRecord(None, "d1", "g1"), "d1"), "never seen"
    assert not is_current(None, "d1")


def test_a_render_plan_holds_only_for_the_same_inputs_with_every_child_current() -> None:
    seen = state_of(_statefulset(observed=1, ready=1))
    current = ChildRecord(seen, "d1", "g1")
    plan = RenderPlan("in-1", {"StatefulSet/motor": "d1"})
    assert plan_holds(plan, "in-1", {"StatefulSet/motor": current})
    assert not plan_holds(plan, "in-2", {"StatefulSet/motor": current}), "the inputs changed"
    assert not plan_holds(plan, "in-1", {}), "the child is gone"
    edited = ChildRecord(seen, "d1", "g0")
    assert not plan_holds(plan, "in-1", {"StatefulSet/motor": edited}), "edited since"
    assert not plan_holds(None, "in-1", {"StatefulSet/motor": current})
    assert not plan_holds(RenderPlan("in-1", {}), "in-1", {}), "an empty plan renders"


def test_a_render_plan_survives_its_text_and_garbage_is_no_plan() -> None:
    plan = RenderPlan("in-1", {"StatefulSet/motor": "d1", "Service/motor": "d2"})
    assert RenderPlan.decode(plan.encode()) == plan
    for text in ("", "null", "[]", '{"inputs": 1, "children": {}}', '{"inputs": "x"}'):
        assert RenderPlan.decode(text) is None, text
