"""RBAC as Kubernetes evaluates it, for the chart's rendered rules and kubeemu's audit log.

``Grants.from_objects`` reads the (Cluster)Roles and (Cluster)RoleBindings of a ``helm
template`` output into what each ServiceAccount may do and where; ``Request.from_audit``
turns one kubeemu audit record into the attributes RBAC authorizes (API group, resource or
resource/subresource, verb, namespace, name). Used by ``test_rbac``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]
NAMELESS_VERBS = frozenset({"create", "list", "watch", "deletecollection"})
"""Verbs a resourceNames rule can never allow (no name is known when they are authorized)."""


@dataclass(frozen=True)
class Request:
    group: str
    resource: str
    """``plural`` or ``plural/subresource``."""
    verb: str
    namespace: str
    """Empty for cluster-scoped objects and all-namespace lists and watches."""
    name: str

    @classmethod
    def from_audit(cls, record: JsonDict) -> Request:
        resource = record["resource"]
        if record.get("subresource"):
            resource = f"{resource}/{record['subresource']}"
        return cls(record["group"], resource, record["verb"], record["namespace"], record["name"])

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {self.group or 'core'}/{self.resource} {self.name}{where}".strip()


@dataclass(frozen=True)
class Rule:
    groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    names: frozenset[str]

    @classmethod
    def parse(cls, rule: JsonDict) -> Rule:
        return cls(
            frozenset(rule.get("apiGroups") or ()),
            frozenset(rule.get("resources") or ()),
            frozenset(rule.get("verbs") or ()),
            frozenset(rule.get("resourceNames") or ()),
        )

    def allows(self, request: Request) -> bool:
        if request.group not in self.groups or request.resource not in self.resources:
            return False
        if request.verb not in self.verbs:
            return False
        if self.names:
            return request.verb not in NAMELESS_VERBS and request.name in self.names
        return True

    def triples(self) -> Iterator[tuple[str, str, str]]:
        for group in self.groups:
            for resource in self.resources:
                for verb in self.verbs:
                    yield group, resource, verb


@dataclass(frozen=True)
class Grant:
    """Rules bound to a subject, cluster-wide (namespace None) or in one namespace."""

    namespace: str | None
    rules: tuple[Rule, ...]

    def allows(self, request: Request) -> bool:
        if self.namespace is not None and request.namespace != self.namespace:
            return False
        return any(rule.allows(request) for rule in self.rules)


@dataclass
class Grants:
    by_account: dict[str, list[Grant]]

    @classmethod
    def from_objects(cls, objects: list[JsonDict], namespace: str) -> Grants:
        roles: dict[tuple[str, str | None], tuple[Rule, ...]] = {}
        """(kind/name, namespace of a Role) → its rules."""
        for obj in objects:
            if obj["kind"] in ("ClusterRole", "Role"):
                scope = obj["metadata"].get("namespace") if obj["kind"] == "Role" else None
                key = (f"{obj['kind']}/{obj['metadata']['name']}", scope)
                roles[key] = tuple(Rule.parse(rule) for rule in obj.get("rules") or [])
        by_account: dict[str, list[Grant]] = {}
        for obj in objects:
            if obj["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
                continue
            bound_in = obj["metadata"].get("namespace") if obj["kind"] == "RoleBinding" else None
            ref = obj["roleRef"]
            role_scope = bound_in if ref["kind"] == "Role" else None
            rules = roles[(f"{ref['kind']}/{ref['name']}", role_scope)]
            for subject in obj["subjects"]:
                assert subject["kind"] == "ServiceAccount"
                assert subject.get("namespace", namespace) == namespace
                by_account.setdefault(subject["name"], []).append(Grant(bound_in, rules))
        return cls(by_account)

    def allows(self, account: str, request: Request) -> bool:
        return any(grant.allows(request) for grant in self.by_account.get(account, []))

    def triples(self, account: str) -> set[tuple[str, str, str]]:
        """Every (group, resource, verb) some rule of ``account`` names."""
        return {
            triple
            for grant in self.by_account.get(account, [])
            for rule in grant.rules
            for triple in rule.triples()
        }

    def rules(self, account: str) -> Iterator[Rule]:
        for grant in self.by_account.get(account, []):
            yield from grant.rules
