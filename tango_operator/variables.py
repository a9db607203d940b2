"""Every ``TANGO_OPERATOR_*`` environment variable, for the ``--help`` of each command.

The settings modules read the variables (``watcher.settings``, ``workers.settings``,
``workers.tango.port``, ``tango_operator.redis_url``, ``tango_operator.dispatch_settings``,
``tango_operator.cli``); this table only describes them, and ``tests/unit/test_cli.py`` checks
that every name the code reads is here, so the help cannot fall behind. ``help_text`` lays the
table out for one command (the chart sets most of them; docs/deploy.md has the chart values).
"""

from __future__ import annotations

from dataclasses import dataclass

WATCHER, WORKER = "watcher", "worker"
BOTH = (WATCHER, WORKER)


@dataclass(frozen=True)
class Variable:
    """One environment variable: who reads it, its default, what it does."""

    name: str
    readers: tuple[str, ...]
    default: str
    meaning: str


VARIABLES = (
    Variable(
        "TANGO_OPERATOR_REDIS_URL",
        BOTH,
        "redis://127.0.0.1:6379/0",
        "the work queue and broker (redis:// or rediss://)",
    ),
    Variable(
        "TANGO_OPERATOR_REDIS_PASSWORD",
        BOTH,
        "none",
        "Redis password (kept out of the URL and the logs)",
    ),
    Variable(
        "TANGO_OPERATOR_REDIS_CA_FILE", BOTH, "system CAs", "CA bundle verifying a rediss:// server"
    ),
    Variable("TANGO_OPERATOR_REDIS_CERT_FILE", BOTH, "none", "client certificate for rediss://"),
    Variable("TANGO_OPERATOR_REDIS_KEY_FILE", BOTH, "none", "client key for rediss://"),
    Variable(
        "TANGO_OPERATOR_METRICS_PORT", BOTH, "off", "port of the Prometheus /metrics endpoint"
    ),
    Variable("TANGO_OPERATOR_DISPATCH", BOTH, "fair", "fair (per-namespace turns) or fifo"),
    Variable(
        "TANGO_OPERATOR_DISPATCH_WINDOW", BOTH, "auto", "keys in flight at most (fair dispatch)"
    ),
    Variable(
        "TANGO_OPERATOR_NAMESPACE_WEIGHTS", BOTH, "1 each", "ns=weight,... shares of fair dispatch"
    ),
    Variable(
        "TANGO_OPERATOR_DISPATCH_DRAIN",
        BOTH,
        "7",
        "pending keys a task takes in turn after its own (fair dispatch; 0: none)",
    ),
    Variable(
        "TANGO_OPERATOR_NETWORK_POLICY",
        BOTH,
        "false",
        "true: NetworkPolicies for the CRs' pods (DNS, TANGO ports); false: none",
    ),
    Variable("TANGO_OPERATOR_NAMESPACES", (WATCHER,), "all", "comma-separated namespaces to watch"),
    Variable(
        "TANGO_OPERATOR_NAMESPACE_SELECTOR",
        (WATCHER,),
        "none",
        "label selector of the namespaces to reconcile",
    ),
    Variable(
        "TANGO_OPERATOR_RESYNC_SECONDS",
        (WATCHER,),
        "300",
        "every key offered again this often (costs no write)",
    ),
    Variable(
        "TANGO_OPERATOR_INACTIVITY_SECONDS",
        (WATCHER,),
        "70",
        "a watch silent this long is reopened",
    ),
    Variable(
        "TANGO_OPERATOR_WATCH_TIMEOUT_SECONDS",
        (WATCHER,),
        "server's",
        "timeoutSeconds of each watch request",
    ),
    Variable(
        "TANGO_OPERATOR_INITIAL_LIST_SECONDS",
        (WATCHER,),
        "30",
        "keys are offered after this even if a list failed",
    ),
    Variable(
        "TANGO_OPERATOR_LEASE_NAME",
        (WATCHER,),
        "tango-operator-watcher",
        "Lease of the leader election",
    ),
    Variable(
        "TANGO_OPERATOR_LEASE_NAMESPACE", (WATCHER,), "own namespace", "namespace of that Lease"
    ),
    Variable(
        "TANGO_OPERATOR_LEASE_DURATION_SECONDS",
        (WATCHER,),
        "15",
        "leadership lasts this long unrenewed",
    ),
    Variable(
        "TANGO_OPERATOR_LEASE_RENEW_SECONDS",
        (WATCHER,),
        "10",
        "the leader gives up if not renewed within this",
    ),
    Variable("TANGO_OPERATOR_LEASE_RETRY_SECONDS", (WATCHER,), "2", "how often the Lease is tried"),
    Variable(
        "TANGO_OPERATOR_IDENTITY", (WATCHER,), "hostname-pid", "this replica's name in the Lease"
    ),
    Variable(
        "TANGO_OPERATOR_WORKER_POOL", (WORKER,), "threads", "Celery pool (threads or prefork)"
    ),
    Variable(
        "TANGO_OPERATOR_WORKER_CONCURRENCY",
        (WORKER,),
        "8",
        "reconciles in flight per worker process",
    ),
    Variable(
        "TANGO_OPERATOR_WORKER_MAX_RESTARTS",
        (WORKER,),
        "10",
        "crashes the supervisor restarts (0: no supervisor)",
    ),
    Variable(
        "TANGO_OPERATOR_LEASE_SECONDS",
        (WORKER,),
        "30",
        "a key's lease; renewed while its reconcile runs",
    ),
    Variable(
        "TANGO_OPERATOR_API_RETRIES",
        (WORKER,),
        "4",
        "retries of a Kubernetes request failing transiently",
    ),
    Variable(
        "TANGO_OPERATOR_BACKOFF_CAP_SECONDS", (WORKER,), "60", "longest backoff of a failing key"
    ),
    Variable(
        "TANGO_OPERATOR_SETTLING_SECONDS",
        (WORKER,),
        "2",
        "Building/Pending published only if still so after this",
    ),
    Variable(
        "TANGO_OPERATOR_PENDING_POLL_SECONDS",
        (WORKER,),
        "2",
        "fallback poll of a starting server's devices",
    ),
    Variable(
        "TANGO_OPERATOR_WAITING_MIN_SECONDS",
        (WORKER,),
        "1",
        "first re-check of an unmet dependency",
    ),
    Variable(
        "TANGO_OPERATOR_WAITING_MAX_SECONDS", (WORKER,), "60", "longest wait between re-checks"
    ),
    Variable(
        "TANGO_OPERATOR_DEVICE_HEALTH_SECONDS",
        (WORKER,),
        "60",
        "how often a Running server's device State/Status is read (0: off)",
    ),
    Variable(
        "TANGO_OPERATOR_EXPORT_POLL_SECONDS", (WORKER,), "0.1", "export watcher period (0: off)"
    ),
    Variable(
        "TANGO_OPERATOR_TANGO_DB_CLEANUP",
        (WORKER,),
        "Delete",
        "Delete or Retain a deleted server's TANGO DB entries",
    ),
    Variable(
        "TANGO_OPERATOR_CONFIG_MODE",
        (WORKER,),
        "Update",
        "Update (add, change) or Declarative (also remove) a config",
    ),
    Variable(
        "TANGO_OPERATOR_CONFIG_RELOAD",
        (WORKER,),
        "Restart",
        "a changed config: Restart the pod, or Init the running devices",
    ),
    Variable(
        "TANGO_OPERATOR_TANGO_PORT",
        (WORKER,),
        "workers.tango:PyTangoPort",
        "module:Class of the TANGO adapter (tests plug in a stand-in)",
    ),
    Variable("TANGO_OPERATOR_TANGO_TIMEOUT", (WORKER,), "1.0", "seconds of each TANGO probe call"),
    Variable(
        "TANGO_OPERATOR_TANGO_CONFIG_TIMEOUT",
        (WORKER,),
        "5.0",
        "seconds of each TANGO DB call of a config apply",
    ),
    Variable(
        "TANGO_OPERATOR_TANGO_CACHE_TTL",
        (WORKER,),
        "1.5",
        "seconds probe answers are reused (0: off)",
    ),
    Variable(
        "TANGO_OPERATOR_TANGO_NEGATIVE_TTL",
        (WORKER,),
        "0.25",
        "seconds 'not ready' answers are reused",
    ),
    Variable(
        "TANGO_OPERATOR_HOST_MAP",
        (WORKER,),
        "none",
        "JSON {in-cluster host:port: reachable host:port}",
    ),
    Variable(
        "TANGO_OPERATOR_TEMPLATES", (WORKER,), "built in", "another folder of child templates"
    ),
)


def help_text(reader: str) -> str:
    """The variables ``reader`` (``watcher`` or ``worker``) reads, as an aligned list."""
    mine = [v for v in VARIABLES if reader in v.readers]
    width = max(len(v.name) for v in mine)
    lines = ["environment variables (default in brackets):"]
    lines += [f"  {v.name:<{width}}  {v.meaning} [{v.default}]" for v in mine]
    return "\n".join(lines)
