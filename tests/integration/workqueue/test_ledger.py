"""The child ledger and the DatabaseDS states against a real redis-server.

The same scenario runs against the in-memory ledger the reconcile tests use, so the two
cannot drift apart.
"""

from __future__ import annotations

import threading
from typing import cast

import pytest
from redis import Redis

from tango_operator.keys import Key
from tango_operator.observed import (
    DATABASEDS_DELETED,
    DATABASEDS_DELETING,
    DATABASEDS_UNKNOWN,
    DELETED_MEMORY_SECONDS,
    OWNER_DELETED,
    ChildState,
    RenderPlan,
)
from tango_operator.workqueue.hosts import RedisDatabaseStates
from tango_operator.workqueue.ledger import PLAN, RedisChildLedger
from workers.reconcile.children import known_state
from workers.reconcile.ports import ChildLedgerPort, InMemoryChildLedger

OWNER = Key("DeviceServer", "lab", "motor")
STS = "StatefulSet/motor"


def _state(version: str, *, ready: bool = False, digest: str = "d1") -> ChildState:
    return ChildState(digest=digest, version=version, ready=ready, detail={"replicas": 1})


@pytest.fixture(params=["redis", "memory"])
def ledger(request: pytest.FixtureRequest, redis_client: Redis) -> ChildLedgerPort:
    if request.param == "redis":
        return RedisChildLedger(redis_client)
    return InMemoryChildLedger()


def test_the_create_path_calls_the_owner_back_once_when_ready(ledger: ChildLedgerPort) -> None:
    ledger.intend(OWNER, {STS: "d1"})
    ledger.applied(OWNER, {STS: _state("g1")})
    assert ledger.observe(OWNER, STS, _state("g1")) is False, "its own apply"
    assert ledger.observe(OWNER, STS, _state("g1")) is False, "nothing new"
    assert ledger.observe(OWNER, STS, _state("g1", ready=True)) is True, "the pod is ready"
    record = ledger.records(OWNER)[STS]
    assert (record.intended, record.applied_version) == ("d1", "g1")
    assert known_state(ledger.records(OWNER), "StatefulSet", "motor") == _state("g1", ready=True)


def test_an_edit_by_someone_else_and_a_deletion_call_the_owner_back(
    ledger: ChildLedgerPort,
) -> None:
    ledger.intend(OWNER, {STS: "d1"})
    ledger.applied(OWNER, {STS: _state("g1")})
    ledger.observe(OWNER, STS, _state("g1", ready=True))
    assert ledger.observe(OWNER, STS, _state("g2", ready=True)) is True
    assert ledger.observe(OWNER, STS, None) is True
    assert STS not in ledger.records(OWNER), "a deleted child is unknown: applied again"


def test_an_apply_records_what_was_seen_only_if_nothing_was(ledger: ChildLedgerPort) -> None:
    ledger.observe(OWNER, STS, _state("g1", ready=True))
    ledger.applied(OWNER, {STS: _state("g1")})
    assert ledger.records(OWNER)[STS].seen == _state("g1", ready=True)
    ledger.forget(OWNER)
    assert ledger.records(OWNER) == {}


def test_a_child_a_worker_removed_is_forgotten_and_the_others_stay(
    ledger: ChildLedgerPort,
) -> None:
    policy = "NetworkPolicy/motor-network-policy"
    ledger.intend(OWNER, {STS: "d1", policy: "d2"})
    ledger.applied(OWNER, {STS: _state("g1"), policy: _state("g1", digest="d2")})
    ledger.removed(OWNER, [policy])
    assert set(ledger.records(OWNER)) == {STS}
    ledger.removed(OWNER, [policy])  # again, and for an owner with no records: nothing to do
    ledger.removed(Key("DeviceServer", "lab", "other"), [policy])
    assert set(ledger.records(OWNER)) == {STS}


def test_observe_and_intend_from_two_threads_lose_nothing(redis_client: Redis) -> None:
    """The watcher's read-modify-write never loses a worker's concurrent intend."""
    ledger = RedisChildLedger(redis_client)
    children = [f"ConfigMap/c{number}" for number in range(40)]

    def watch() -> None:
        for number, child in enumerate(children):
            ledger.observe(OWNER, child, _state(f"r{number}"))

    thread = threading.Thread(target=watch)
    thread.start()
    for child in children:
        ledger.intend(OWNER, {child: "d1"})
    thread.join()
    records = ledger.records(OWNER)
    assert all(records[child].intended == "d1" for child in children)
    assert all(records[child].seen is not None for child in children)


def test_database_states_are_unknown_until_the_watcher_listed(redis_client: Redis) -> None:
    states = RedisDatabaseStates(redis_client)
    assert states.state("lab", "db") == DATABASEDS_UNKNOWN
    states.record("lab", "db", "Building")
    assert states.state("lab", "db") == "Building", "a recorded state is known"
    assert states.state("lab", "other") == DATABASEDS_UNKNOWN
    states.mark_listed("lab")
    assert states.state("lab", "other") is None, "listed: absent means there is none"
    assert states.state("elsewhere", "db") == DATABASEDS_UNKNOWN
    states.record("lab", "db", DATABASEDS_DELETING)
    assert states.state("lab", "db") == DATABASEDS_DELETING
    states.record("lab", "db", None)
    assert states.state("lab", "db") == DATABASEDS_DELETED, "remembered as gone for a while"
    ttl = int(cast(int, redis_client.ttl(states.deleted + "lab/db")))
    assert 0 < ttl <= DELETED_MEMORY_SECONDS
    states.record("lab", "db", "Building")
    assert states.state("lab", "db") == "Building", "created again: the memory is dropped"
    assert not redis_client.exists(states.deleted + "lab/db")
    states.record("lab", "db", None)
    redis_client.delete(states.deleted + "lab/db")  # as after DELETED_MEMORY_SECONDS
    assert states.state("lab", "db") is None
    states.mark_listed(None)
    assert states.state("elsewhere", "db") is None, "a watcher of every namespace"
    redis_client.flushall()
    assert states.state("lab", "db") == DATABASEDS_UNKNOWN, "a flushed Redis knows nothing"


# --- the owner's copy ---------------------------------------------------------------------------
def _cr(version: str, state: str = "Pending") -> dict[str, object]:
    return {
        "apiVersion": "tango.tango-controls.org/v1",
        "kind": "DeviceServer",
        "metadata": {
            "name": "motor",
            "namespace": "lab",
            "resourceVersion": version,
            "managedFields": [{"manager": "kubectl"}],
        },
        "status": {"state": state},
    }


def _copied_version(ledger: ChildLedgerPort) -> str | None:
    copy = ledger.owner_copy(OWNER)
    if copy.obj is None:
        return None
    return str(copy.obj["metadata"]["resourceVersion"])


def test_the_owner_copy_only_moves_forward(ledger: ChildLedgerPort) -> None:
    assert ledger.owner_copy(OWNER).known is False, "nothing recorded: read the API"
    ledger.observe_owner(OWNER, _cr("9"))
    copy = ledger.owner_copy(OWNER)
    assert copy.known
    assert copy.obj is not None
    assert "managedFields" not in copy.obj["metadata"], "kept without its managed fields"
    ledger.observe_owner(OWNER, _cr("10"))
    ledger.observe_owner(OWNER, _cr("9"))  # a late event of an older version
    assert _copied_version(ledger) == "10"
    ledger.wrote_owner(OWNER, _cr("8"))  # an answer older than what the watcher saw
    assert _copied_version(ledger) == "10"
    ledger.wrote_owner(OWNER, _cr("11", "Running"))  # the worker's own write, not seen yet
    copy = ledger.owner_copy(OWNER)
    assert copy.obj is not None
    assert copy.obj["status"] == {"state": "Running"}
    ledger.observe_owner(OWNER, _cr("11", "Running"))  # the watcher catches up
    assert _copied_version(ledger) == "11"


def test_a_worker_never_makes_or_revives_a_copy(ledger: ChildLedgerPort) -> None:
    ledger.wrote_owner(OWNER, _cr("5"))
    assert ledger.owner_copy(OWNER).known is False, "only over a copy the watcher made"
    ledger.observe_owner(OWNER, _cr("5"))
    ledger.observe_owner(OWNER, None)  # deleted
    ledger.wrote_owner(OWNER, _cr("7"))  # an answer that raced with the deletion
    ledger.drop_owner_copy(OWNER)  # a failed write: the tombstone stays
    assert ledger.owner_copy(OWNER) == OWNER_DELETED
    ledger.observe_owner(OWNER, _cr("12"))  # created again under the same name
    assert _copied_version(ledger) == "12"
    ledger.drop_owner_copy(OWNER)
    assert ledger.owner_copy(OWNER).known is False, "dropped: read the API"


def test_an_unordered_version_is_never_copied(ledger: ChildLedgerPort) -> None:
    ledger.observe_owner(OWNER, _cr("7"))
    ledger.observe_owner(OWNER, _cr("abc"))
    assert ledger.owner_copy(OWNER).known is False
    ledger.observe_owner(OWNER, _cr("12345678901234567890"))  # beyond 64-bit floats: exact
    ledger.observe_owner(OWNER, _cr("12345678901234567889"))
    assert _copied_version(ledger) == "12345678901234567890"
    ledger.forget(OWNER)
    assert ledger.owner_copy(OWNER).known is False


def test_the_answers_of_one_pass_are_recorded_together(ledger: ChildLedgerPort) -> None:
    service = "Service/motor"
    ledger.observe(OWNER, STS, _state("g1", ready=True))  # the watch was first for this one
    ledger.applied(OWNER, {STS: _state("g2"), service: _state("r7", digest="d2")})
    records = ledger.records(OWNER)
    assert records[STS].applied_version == "g2"
    assert records[STS].seen == _state("g1", ready=True), "what was seen stays"
    assert records[service].applied_version == "r7"
    assert records[service].seen == _state("r7", digest="d2"), "filled in while unseen"
    ledger.applied(OWNER, {})  # nothing applied: nothing written
    assert ledger.records(OWNER) == records


def test_the_plan_of_a_render_is_kept_beside_the_children(ledger: ChildLedgerPort) -> None:
    """Written with the intended digests, read with the records; not a child of its own."""
    assert ledger.records_and_plan(OWNER) == ({}, None)
    plan = RenderPlan("inputs-1", {STS: "d1", "Service/motor": "d2"})
    ledger.intend(OWNER, {STS: "d1"}, plan)
    records, found = ledger.records_and_plan(OWNER)
    assert found == plan
    assert set(records) == {STS}, "the plan is no child"
    assert set(ledger.records(OWNER)) == {STS}
    ledger.intend(OWNER, {STS: "d3"})  # a write without a new plan keeps the old one
    assert ledger.records_and_plan(OWNER)[1] == plan
    ledger.forget(OWNER)
    assert ledger.records_and_plan(OWNER) == ({}, None)


def test_a_plan_that_cannot_be_read_is_no_plan(redis_client: Redis) -> None:
    """Anything but a plan in its field (another version wrote it, a person did) means render."""
    ledger = RedisChildLedger(redis_client)
    ledger.intend(OWNER, {STS: "d1"}, RenderPlan("inputs-1", {STS: "d1"}))
    redis_client.hset(ledger._name(OWNER), PLAN, "not json")
    records, plan = ledger.records_and_plan(OWNER)
    assert plan is None
    assert set(records) == {STS}


def test_one_read_gives_the_owner_copy_the_records_and_the_plan(ledger: ChildLedgerPort) -> None:
    copy, records, plan = ledger.owner_and_records(OWNER)
    assert (copy.known, records, plan) == (False, {}, None), "nothing recorded"
    plan_made = RenderPlan("inputs", {STS: "d1"})
    ledger.intend(OWNER, {STS: "d1"}, plan_made)
    ledger.applied(OWNER, {STS: _state("g1")})
    ledger.observe_owner(OWNER, _cr("9", "Pending"))
    copy, records, plan = ledger.owner_and_records(OWNER)
    assert copy.obj is not None
    assert (copy.obj["metadata"]["resourceVersion"], copy.obj["status"]) == (
        "9",
        {"state": "Pending"},
    )
    assert (records, plan) == ledger.records_and_plan(OWNER)
    assert records[STS].applied_version == "g1"
    assert plan == plan_made
    ledger.observe_owner(OWNER, None)
    assert ledger.owner_and_records(OWNER)[0] == OWNER_DELETED
