"""What the operator knows from the watch, so that workers need not read it from the API.

Three kinds of fact: the children of each custom resource (below), a copy of each custom
resource itself (``OwnerCopy``, at the end), and the state of every DatabaseDS
(``DATABASEDS_UNKNOWN``, ``DATABASEDS_DELETING``; kept by ``tango_operator.workqueue.hosts``).

Every child the workers apply carries the digest of its rendered manifest in the annotation
``DIGEST_ANNOTATION`` (``stamp``). The watcher reduces every watch event of a child to a
:class:`ChildState` (``state_of``): that digest, the object's version (``metadata.generation``
where the API keeps one, the resourceVersion otherwise) and, for a StatefulSet, its rollout
and readiness. Both sides keep these facts per owner in the child ledger
(``tango_operator.workqueue.ledger``):

- the watcher records what it **sees** and enqueues the owner only for a change the
  operator did not cause itself (``needs_reconcile``): a child deleted, edited by someone
  else, or a StatefulSet whose readiness flipped;
- a worker records what it **intends** (the digest, before applying) and what it
  **applied** (the version the API server answered), and skips the apply of a child that
  is already as rendered and untouched since (``is_current``).

So a resync, a relist or a failover writes nothing, and a worker learns a StatefulSet's
readiness from the ledger instead of a GET. Pure functions: no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from tango_operator import crd, jsontext

JsonDict = dict[str, Any]

DIGEST_ANNOTATION = f"{crd.GROUP}/applied-digest"
"""The digest of the rendered manifest a child was last applied from."""

DATABASEDS_UNKNOWN: Final = "?"
"""A DatabaseDS state the watcher cannot vouch for (it has not listed that namespace yet)."""
DATABASEDS_DELETING: Final = "Deleting"
"""The recorded state of a DatabaseDS with a deletionTimestamp."""
DATABASEDS_DELETED: Final = "Deleted"
"""The recorded state of a DatabaseDS that is gone, for ``DELETED_MEMORY_SECONDS``: its
DeviceServers report it at once, while its DataBaseds may still answer for a moment."""
DELETED_MEMORY_SECONDS: Final = 600


@dataclass(frozen=True)
class ChildState:
    """One child as the API last showed it; ``detail`` holds a StatefulSet's status."""

    digest: str | None
    version: str
    ready: bool | None = None
    """StatefulSets only: rolled out (observedGeneration caught up) and every replica ready."""
    detail: JsonDict = field(default_factory=dict, compare=False)
    watched: bool = field(default=True, compare=False)
    """False when a worker recorded it from an apply answer, before the watch showed it:
    its status may have moved on since, unseen."""

    @property
    def rolled_out(self) -> bool | None:
        """StatefulSets only: its controller has seen the current generation."""
        if "observedGeneration" not in self.detail:
            return None
        return int(self.detail["observedGeneration"]) >= int(self.detail.get("generation") or 0)

    def significant(self) -> tuple[str | None, str, bool | None, bool | None]:
        """What a change must touch to concern the owner (other status churn does not).

        The readiness, and a StatefulSet's rollout being seen by its controller: the owner's
        state moves from Building on either, so neither needs polling.
        """
        return (self.digest, self.version, self.ready, self.rolled_out)

    def encode(self) -> str:
        """The JSON text stored in the ledger."""
        return jsontext.dumps(
            {
                "digest": self.digest,
                "version": self.version,
                "ready": self.ready,
                "watched": self.watched,
                **self.detail,
            },
            sort_keys=True,
        )

    @classmethod
    def decode(cls, text: str | bytes) -> ChildState:
        """The inverse of ``encode``."""
        data = jsontext.loads(text)
        digest, version, ready = data.pop("digest"), data.pop("version"), data.pop("ready")
        watched = bool(data.pop("watched", True))
        return cls(digest=digest, version=str(version), ready=ready, detail=data, watched=watched)


@dataclass(frozen=True)
class ChildRecord:
    """The ledger's three facts about one child (each may be unknown)."""

    seen: ChildState | None = None
    intended: str | None = None
    """The digest a worker is about to apply or last applied."""
    applied_version: str | None = None
    """The version the API server answered to the worker's last apply."""


def child_id(obj: JsonDict) -> str:
    """``Kind/name``: a child's field in its owner's ledger."""
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def digest_of(manifest: JsonDict) -> str:
    """A stable digest of a rendered manifest (without the digest annotation itself)."""
    text = jsontext.dumps(manifest, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stamp(manifest: JsonDict) -> tuple[str, JsonDict]:
    """The manifest's digest, and a copy of it annotated with that digest."""
    digest = digest_of(manifest)
    metadata = dict(manifest.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), DIGEST_ANNOTATION: digest}
    return digest, {**manifest, "metadata": metadata}


def _version(obj: JsonDict) -> str:
    meta = obj.get("metadata") or {}
    if meta.get("generation") is not None:
        return f"g{meta['generation']}"
    return f"r{meta.get('resourceVersion', '')}"


def state_of(obj: JsonDict) -> ChildState:
    """Reduce a child as the API returns it (watch event or apply answer) to its state."""
    meta = obj.get("metadata") or {}
    digest = (meta.get("annotations") or {}).get(DIGEST_ANNOTATION)
    if obj.get("kind") != "StatefulSet":
        return ChildState(digest=digest, version=_version(obj))
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    generation = int(meta.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    wanted = spec.get("replicas")
    replicas = 1 if wanted is None else int(wanted)
    ready_replicas = int(status.get("readyReplicas") or 0)
    rolled_out = observed >= generation
    detail: JsonDict = {
        "replicas": replicas,
        "readyReplicas": ready_replicas,
        "generation": generation,
        "observedGeneration": observed,
    }
    if status.get("updateRevision"):
        detail["updateRevision"] = str(status["updateRevision"])
    return ChildState(
        digest=digest,
        version=_version(obj),
        ready=rolled_out and ready_replicas >= replicas,
        detail=detail,
    )


def needs_reconcile(
    previous: ChildState | None, new: ChildState | None, intended: str | None
) -> bool:
    """Whether a watch event of a child concerns its owner (the watcher's rule).

    ``new`` None is a deletion: always. A state equal to the one seen before: never. A new
    object or a new digest that is the one a worker intended, with readiness unchanged, is
    the operator's own apply: no. Anything else — an edit by someone else (the version
    moved, the digest did not), readiness flipping, an unknown digest — yes.
    """
    if new is None:
        return True
    if previous is not None and previous.significant() == new.significant():
        return False
    own_apply = (
        new.digest is not None
        and new.digest == intended
        and (previous is None or previous.digest != new.digest)
        and (previous is None or previous.ready == new.ready)
    )
    return not own_apply


def is_current(record: ChildRecord | None, desired: str) -> bool:
    """Whether a child is already as rendered (``desired`` digest) and untouched since.

    True only when the watcher saw it with that digest at the version the worker's own
    apply produced; anything unknown (a flushed Redis, a child never seen) means apply.
    """
    if record is None or record.seen is None:
        return False
    return (
        record.seen.digest == desired
        and record.intended == desired
        and record.applied_version == record.seen.version
    )


@dataclass(frozen=True)
class RenderPlan:
    """What a worker last rendered an owner's children from, and what came out.

    ``inputs`` is the digest of everything the rendering reads (``workers.rendering``:
    the custom resource's spec and identity, the pass's parameters, the templates and the
    renderer itself); ``children`` the digest of each manifest it produced, by
    ``Kind/name``. Recorded in the child ledger with the digests a worker intends; a later
    pass with the same inputs would render the same manifests, so when each of them is
    still current (``is_current``) the pass need not render at all (``plan_holds``).
    """

    inputs: str
    children: dict[str, str]

    def encode(self) -> str:
        """The JSON text stored in the ledger."""
        return jsontext.dumps({"inputs": self.inputs, "children": self.children}, sort_keys=True)

    @classmethod
    def decode(cls, text: str | bytes) -> RenderPlan | None:
        """The inverse of ``encode``; None for text that is not a plan (it is then ignored)."""
        try:
            data = jsontext.loads(text)
            inputs, children = data["inputs"], data["children"]
        except (ValueError, TypeError, KeyError):
            return None
        if not isinstance(inputs, str) or not isinstance(children, dict):
            return None
        return cls(inputs=inputs, children={str(c): str(d) for c, d in children.items()})


def plan_holds(plan: RenderPlan | None, inputs: str, records: dict[str, ChildRecord]) -> bool:
    """Whether rendering ``inputs`` again would apply nothing: same inputs, every child current.

    A child deleted or edited since, a flushed ledger, or anything unknown means render.
    """
    if plan is None or plan.inputs != inputs or not plan.children:
        return False
    return all(is_current(records.get(child), digest) for child, digest in plan.children.items())


# --- the owner's copy: the custom resource itself, as the watcher last saw it -------------------
@dataclass(frozen=True)
class OwnerCopy:
    """What the ledger holds of a custom resource itself (``tango_operator.workqueue.ledger``).

    ``known`` False: nothing is recorded (a fresh or flushed Redis, a resourceVersion that is
    not a number): read the API. ``known`` with ``obj`` None: the watcher saw it deleted.
    """

    known: bool
    obj: JsonDict | None = None


OWNER_UNKNOWN: Final = OwnerCopy(known=False)
OWNER_DELETED: Final = OwnerCopy(known=True)


def owner_version(obj: JsonDict) -> str | None:
    """The resourceVersion by which copies of ``obj`` are ordered, or None if it has none.

    Kubernetes documents resourceVersions as opaque; every API server there is (etcd's
    revision, kubeemu's counter) hands out decimal integers that grow, and the API server's
    own watch cache orders them so. A version that is not one is never ordered: such an
    object is not copied, and workers read it from the API.
    """
    version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    if not version.isdigit() or (len(version) > 1 and version.startswith("0")):
        return None
    return version


def is_newer(version: str, than: str) -> bool:
    """Whether decimal ``version`` is greater than ``than`` (as numbers, of any length)."""
    return len(version) > len(than) or (len(version) == len(than) and version > than)


def owner_copy_of(obj: JsonDict) -> JsonDict:
    """``obj`` as the ledger keeps it: without ``managedFields`` (the bulk of a large CR)."""
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": metadata}
