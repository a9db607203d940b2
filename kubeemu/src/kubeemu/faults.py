"""Fault injection: errors, throttling and latency the emulator adds to matching requests.

Rules are set from tests, benchmarks or the command line (``--fault``) and through the admin API
(``PUT /_emu/faults``); the HTTP layer asks :meth:`FaultInjector.decide` before serving each API
request.  A rule matches by verb, resource and namespace and fires with its own probability.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FaultRule:
    """Fail or slow down a share of the matching requests.

    ``verbs`` / ``resources`` / ``namespaces`` empty means "any".  ``resources`` entries are a
    plural (``configmaps``) or ``plural.group`` (``deviceservers.tango.tango-controls.org``).
    ``code`` 0 means "no error, only latency".  ``code`` 429 adds ``Retry-After``.
    """

    rate: float = 1.0
    code: int = 0
    verbs: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    retry_after_seconds: int = 1
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    message: str = "injected fault"

    def matches(self, verb: str, resource: str, group: str, namespace: str) -> bool:
        if self.verbs and verb not in self.verbs:
            return False
        qualified = f"{resource}.{group}" if group else resource
        if self.resources and resource not in self.resources and qualified not in self.resources:
            return False
        return not (self.namespaces and namespace not in self.namespaces)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown fault rule fields: {sorted(unknown)}")
        return cls(**known)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FaultDecision:
    """What the injector decided for one request: a delay, and an error code or none."""

    delay_seconds: float = 0.0
    code: int = 0
    retry_after_seconds: int = 0
    message: str = ""


class FaultInjector:
    """Seeded random choice of the rules that fire for a request; counts injected faults."""

    def __init__(self, seed: int | None = None):
        self.rules: list[FaultRule] = []
        self._random = random.Random(seed)
        self.injected = 0

    def set_rules(self, rules: list[FaultRule], seed: int | None = None) -> None:
        self.rules = list(rules)
        if seed is not None:
            self._random.seed(seed)

    def decide(self, verb: str, resource: str, group: str, namespace: str) -> FaultDecision:
        """Latency adds up over matching rules; the first firing error rule wins."""
        delay = 0.0
        for rule in self.rules:
            if not rule.matches(verb, resource, group, namespace):
                continue
            if self._random.random() >= rule.rate:
                continue
            if rule.latency_ms or rule.latency_jitter_ms:
                delay += (rule.latency_ms + self._random.random() * rule.latency_jitter_ms) / 1000
            if rule.code:
                self.injected += 1
                return FaultDecision(delay, rule.code, rule.retry_after_seconds, rule.message)
        return FaultDecision(delay)


def parse_cli_fault(text: str) -> FaultRule:
    """``code=500,rate=0.1,verbs=create|patch,resources=configmaps,latency_ms=20``."""
    data: dict[str, Any] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, _, value = part.partition("=")
        key = key.strip()
        if key in ("verbs", "resources", "namespaces"):
            data[key] = [v for v in value.split("|") if v]
        elif key in ("code", "retry_after_seconds"):
            data[key] = int(value)
        elif key in ("rate", "latency_ms", "latency_jitter_ms"):
            data[key] = float(value)
        elif key == "message":
            data[key] = value
        else:
            raise ValueError(f"unknown fault option {key!r}")
    return FaultRule.from_dict(data)
