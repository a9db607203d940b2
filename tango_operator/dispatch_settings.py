"""How reconcile keys reach Celery: fair lanes per namespace or plain FIFO.

Read from the environment by both sides (``watcher.settings``, ``workers.settings``), which
must agree on the mode: the watcher's dispatcher (``watcher.dispatch``) and the workers'
wake-ups (``workers.wiring``) both use the fair queue of ``tango_operator.workqueue.fair``
when it is on. A plain value: no Redis here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tango_operator import environment

MODES = ("fair", "fifo")
DEFAULT_DRAIN = 7
"""Up to eight reconciles per Celery message while a backlog waits (docs/dispatch.md)."""


@dataclass(frozen=True)
class DispatchSettings:
    """How keys reach Celery; the watcher and the workers must agree on ``mode``.

    ``TANGO_OPERATOR_DISPATCH``: ``fair`` (default; keys wait in Redis per namespace and the
    watcher's dispatcher sends a window of them at a time) or ``fifo`` (every key is sent at
    once: one Celery queue in arrival order, as a plain workqueue would).
    ``TANGO_OPERATOR_DISPATCH_WINDOW``: keys in flight at most; ``auto`` (default) keeps it
    at twice the number of reconciles running at the busiest moment of the last minute,
    plus 4, so that workers never idle for want of a message.
    ``TANGO_OPERATOR_NAMESPACE_WEIGHTS``: JSON ``{"namespace": weight}``; a namespace's keys
    per turn (default 1).
    ``TANGO_OPERATOR_DISPATCH_DRAIN``: while keys wait their turn, how many more of them a
    worker's task may take from the lanes itself, in turn, after its own key (default 7;
    0 turns it off); the watcher's dispatcher then only starts idle workers
    (docs/dispatch.md, "Draining a backlog").
    """

    mode: str = "fair"
    window: int | None = None
    """None: automatic."""
    weights: Mapping[str, int] = field(default_factory=dict)
    drain: int = DEFAULT_DRAIN
    """Pending keys a task may reconcile after its own (fair mode only)."""

    @property
    def fair(self) -> bool:
        """Whether keys wait in the fair queue (else each is sent at once, FIFO)."""
        return self.mode == "fair"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> DispatchSettings:
        """Read the four ``TANGO_OPERATOR_*`` variables above (``SettingsError`` if unusable)."""
        mode = environment.choice(environ, "TANGO_OPERATOR_DISPATCH", MODES, "fair")
        raw_window = environment.text(environ, "TANGO_OPERATOR_DISPATCH_WINDOW", "auto")
        window = None
        if raw_window != "auto":
            try:
                window = environment.whole_number(
                    environ, "TANGO_OPERATOR_DISPATCH_WINDOW", 0, minimum=1
                )
            except environment.SettingsError:
                raise environment.SettingsError(
                    f"TANGO_OPERATOR_DISPATCH_WINDOW={raw_window!r}: expected auto or a whole "
                    "number of at least 1"
                ) from None
        weights = environment.json_object(
            environ,
            "TANGO_OPERATOR_NAMESPACE_WEIGHTS",
            lambda decoded: all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in decoded.values()
            ),
            '{"namespace": weight ≥ 1, ...}',
        )
        drain = environment.whole_number(environ, "TANGO_OPERATOR_DISPATCH_DRAIN", DEFAULT_DRAIN)
        return cls(mode=mode, window=window, weights=weights, drain=drain)
