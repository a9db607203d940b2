"""Drive the reconcilers against kubeemu without a queue: the tests' stand-in for Celery.

``Operator.settle`` plays the role of the watcher and the workers for a handful of keys:
it reconciles each until its state stops changing or reaches the wanted one, honouring
the ``wake`` keys of each Outcome, so a test reads like "apply these CRs, then expect".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from tango_operator import crd
from tango_operator.keys import Key
from tests.support.standin_tango import StandInTango
from workers.kube import Kube
from workers.reconcile import by_kind
from workers.reconcile.ports import InMemoryDependencyIndex, Outcome, Ports
from workers.settings import Settings

JsonDict = dict[str, Any]


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

    @property
    def ports(self) -> Ports:
        return Ports(
            kube=Kube(self.api_client), tango=self.tango, index=self.index, settings=self.settings
        )

    def reconcile(self, key: Key) -> Outcome:
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
