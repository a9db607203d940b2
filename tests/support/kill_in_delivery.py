"""A fault hook loaded into the tests' worker processes: die exactly inside kombu's delivery.

Loaded with ``celery worker --include tests.support.kill_in_delivery``
(``tests.support.workers.WorkerPool``); inert unless ``TANGO_KILL_IN_DELIVERY`` names a
file path. kombu's Redis transport pops a message with BRPOP and only then records it in its
``unacked`` hash (``QoS.append``); a process killed between the two loses the message — no
copy anywhere. Random SIGKILLs hit that gap about once in eighteen kills of a busy Celery main
process; this hook hits it on demand: when the armed file exists, the first ``QoS.append``
that claims it (an atomic rename, so one arming is one death) SIGKILLs its own process before
recording the message. The kill is real; only its instant is chosen.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from kombu.transport.redis import QoS

_record: Any = QoS.append


def _append_or_die(self: Any, message: Any, delivery_tag: Any) -> Any:
    armed = os.environ.get("TANGO_KILL_IN_DELIVERY")
    if armed:
        try:
            os.rename(armed, f"{armed}.fired-by-{os.getpid()}")
        except OSError:
            pass  # not armed, or another process claimed it
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    return _record(self, message, delivery_tag)


QoS.append = _append_or_die  # type: ignore[method-assign]
