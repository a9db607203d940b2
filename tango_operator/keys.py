"""What a reconcile request is: the key of one custom resource.

The watcher builds keys from Kubernetes events (``watcher.mapping``) and the workers build
them for follow-ups and woken dependents (``workers.execution``); both put them on the work
queue (``tango_operator.workqueue``) and into Celery messages (``tango_operator.messages``).
A key names an object, never carries it: the worker re-reads the world (level-triggered
reconciliation).
"""

from __future__ import annotations

from dataclasses import dataclass

from tango_operator import jsontext

KINDS = ("DeviceServer", "DatabaseDS")


@dataclass(frozen=True, order=True)
class Key:
    """One reconcile request: the kind, namespace and name of a custom resource."""

    kind: str
    namespace: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if not self.namespace or not self.name:
            raise ValueError("a key needs a namespace and a name")

    def encode(self) -> str:
        """A compact, stable string form (also the Redis member and lock name)."""
        return jsontext.dumps([self.kind, self.namespace, self.name])

    @classmethod
    def decode(cls, text: str) -> Key:
        """Parse the form ``encode`` made; ``ValueError`` if ``text`` is not a key."""
        try:
            kind, namespace, name = jsontext.loads(text)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a reconcile key: {text!r}") from exc
        return cls(str(kind), str(namespace), str(name))

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"
