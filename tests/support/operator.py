"""Drive the reconcilers against kubeemu without a queue: the tests' stand-in for Celery.

``Operator.settle`` plays the role of the watcher and the workers for a handful of keys:
it reconciles each until its state stops changing or reaches the wanted one, honouring
the ``wake`` keys of each Outcome, so a test reads like "apply these CRs, then expect".
Before every reconcile it shows the child ledger the custom resource and its children as they
are, as the watcher's watch would (``observe``), so drift is seen, and the reconcilers read
the resource from that copy as in production (``workers.reconcile.owners``); the DatabaseDS
states are read from the API.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from tango_operator import crd, observed, resources
from tango_operator.keys import Key
from tests.support.standin_tango import StandInTango
from watcher.mapping import owner_key
from workers.kube import Kube
from workers.reconcile import by_kind
from workers.reconcile.owners import OwnerCopies
from workers.reconcile.ports import (
    DatabaseStatesPort,
    InMemoryChildLedger,
    InMemoryDependencyIndex,
    Outcome,
    Ports,
    UnknownDatabaseStates,
)
from workers.settings import Settings

JsonDict = dict[str, Any]


CHILD_KINDS = {child.path("{namespace}"): child.kind for child in resources.CHILDREN}
"""The children the watcher watches (not the Secret: the ledger keeps it by itself)."""
OPTIONAL_KINDS = {child.path("{namespace}"): child.kind for child in resources.OPTIONAL_CHILDREN}
"""Watched too with ``Settings.network_policy`` (``watcher.main.watched``)."""


def ds_key(name: str, namespace: str = "default") -> Key:
    return Key(crd.Kind.DEVICE_SERVER.value, namespace, name)


def db_key(name: str, namespace: str = "default") -> Key:
    return Key(crd.Kind.DATABASE_DS.value, namespace, name)


@dataclass
class Operator:
    api_client: client.ApiClient
    tango: StandInTango = field(default_factory=StandInTango)
    settings: Settings = field(default_factory=Settings)
    index: InMemoryDependencyIndex = field(default_factory=InMemoryDependencyIndex)
    ledger: InMemoryChildLedger = field(default_factory=InMemoryChildLedger)
    databases: DatabaseStatesPort = field(default_factory=UnknownDatabaseStates)
    """What the watcher's DatabaseDS record would say; by default nothing (the API is read)."""

    @property
    def ports(self) -> Ports:
        return Ports(
            kube=OwnerCopies(Kube(self.api_client), self.ledger),
            tango=self.tango,
            index=self.index,
            settings=self.settings,
            ledger=self.ledger,
            databases=self.databases,
        )

    def observe(self, key: Key) -> None:
        """Show the ledger ``key`` and its children as they are now (what the watch would show)."""
        kind = crd.Kind(key.kind)
        owner = Kube(self.api_client).get_custom(kind, key.namespace, key.name)
        self.ledger.observe_owner(key, owner)
        watched = CHILD_KINDS | (OPTIONAL_KINDS if self.settings.network_policy else {})
        present: dict[str, JsonDict] = {}
        for path, child_kind in watched.items():
            response = self.api_client.call_api(
                path.format(namespace=key.namespace),
                "GET",
                query_params=[("labelSelector", f"app.kubernetes.io/managed-by={crd.MANAGED_BY}")],
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
            )
            listed = json.loads(response.data)
            for item in listed.get("items") or []:
                item.setdefault("kind", child_kind)
                if owner_key(item) == key:
                    present[observed.child_id(item)] = item
        for child in set(self.ledger.records(key)) - set(present):
            if child.partition("/")[0] in watched.values():  # unwatched ones are the workers'
                self.ledger.observe(key, child, None)
        for child, item in present.items():
            self.ledger.observe(key, child, observed.state_of(item))

    def reconcile(self, key: Key) -> Outcome:
        self.observe(key)
        return by_kind.reconcile(key, self.ports)

    def settle(
        self, *keys: Key, until: str | None = "Running", timeout: float = 15.0
    ) -> dict[Key, Outcome]:
        """Reconcile ``keys`` (and the keys they wake) until each is in state ``until``.

        With ``until=None``, stops once a full round changes no state. Raises
        AssertionError with the last outcomes when the deadline passes.
        """
        pending = list(keys)
        outcomes: dict[Key, Outcome] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            changed = False
            for key in list(dict.fromkeys(pending)):
                outcome = self.reconcile(key)
                if key not in outcomes or outcomes[key].state != outcome.state:
                    changed = True
                outcomes[key] = outcome
                for woken in outcome.wake:
                    if woken not in pending:
                        pending.append(woken)
            if set(pending) - set(outcomes):
                continue  # keys woken in this round have not run yet
            if until is None and not changed:
                return outcomes
            if until is not None and all(o.state == until for o in outcomes.values()):
                return outcomes
            time.sleep(0.05)
        raise AssertionError(f"not settled within {timeout}s: {outcomes}")
