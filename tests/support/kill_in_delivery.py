"""A fault hook loaded into the tests' worker processes: die exactly inside kombu's delivery.

Loaded with ``celery worker --include tests.support.kill_in_delivery``
(``tests.support.workers.WorkerPool``); inert unless ``TANGO_KILL_IN_DELIVERY`` names a
file path. kombu's Redis transport pops a message with BRPOP and only then records it in its
``unacked`` hash (``QoS.append``); a process killed between the two loses the message — no
copy anywhere. Random SIGKILLs hit that gap about once in eighteen kills of a busy Celery main
process; this hook hits it on demand: when the armed file exists, the first ``QoS.append``
that claims it (an atomic rename, so one arming is one death) SIGKILLs its own process before
recording the message. The kill is real; only its instant is chosen.

Before it dies it writes into the claimed file (``<armed>.fired-by-<pid>``) the
``time.monotonic()`` of its death (the clock is the machine's, the same in every process), the
pids dying with it — itself and its pool children, which Celery's PDEATHSIG kills — so a test
can close their reconcile windows (``fired``), and the key of the message it loses
(``lost_keys``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from kombu.transport.redis import QoS

from tango_operator.workqueue import lost

_record: Any = QoS.append


def _children() -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            found += [int(pid) for pid in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _records(armed: Path) -> list[list[str]]:
    """[death time, pids, member] of every firing (a record is empty only for an instant)."""
    found = []
    for record in armed.parent.glob(f"{armed.name}.fired-by-*"):
        lines = record.read_text().split("\n")
        if len(lines) >= 3:
            found.append(lines[:3])
    return found


def fired(armed: Path) -> dict[int, float]:
    """The processes an arming of ``armed`` killed: pid → time.monotonic() of the death."""
    deaths: dict[int, float] = {}
    for when, pids, _ in _records(armed):
        deaths.update(dict.fromkeys(map(int, pids.split()), float(when)))
    return deaths


def lost_keys(armed: Path) -> list[tuple[str, float]]:
    """(member, time of the loss) of every reconcile message a firing lost."""
    return [(member, float(when)) for when, _, member in _records(armed) if member]


def _append_or_die(self: Any, message: Any, delivery_tag: Any) -> Any:
    armed = os.environ.get("TANGO_KILL_IN_DELIVERY")
    if armed:
        claimed = Path(f"{armed}.fired-by-{os.getpid()}")
        try:
            os.rename(armed, claimed)
        except OSError:
            pass  # not armed, or another process claimed it
        else:
            dying = [os.getpid(), *_children()]
            member = lost.member_of(getattr(message, "_raw", None)) or ""
            claimed.write_text(f"{time.monotonic()}\n{' '.join(map(str, dying))}\n{member}\n")
            os.kill(os.getpid(), signal.SIGKILL)
    return _record(self, message, delivery_tag)


QoS.append = _append_or_die  # type: ignore[method-assign]
