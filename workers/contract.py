"""The seam between the watcher and the workers: what a reconcile request is.

The watcher builds keys from Kubernetes events and puts them on the queue; a worker
task receives one and hands it to the reconciler of its kind. A key names an object,
never carries it: the worker re-reads the world (level-triggered reconciliation).

Stdlib only, so the watcher image needs nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

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
        return json.dumps([self.kind, self.namespace, self.name], separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> Key:
        try:
            kind, namespace, name = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a reconcile key: {text!r}") from exc
        return cls(str(kind), str(namespace), str(name))

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


TASK_NAME = "tango_operator.reconcile"
"""The one Celery task: its only argument is ``Key.encode()``."""
QUEUE_NAME = "tango-operator"
"""The Celery queue the watcher's dispatcher feeds and the workers consume."""

PRIORITY_URGENT = 0
"""A dependency wake-up of a few keys (``workers.queue.fair``): taken before the others."""
PRIORITY_NORMAL = 5
"""Every other reconcile message."""
PRIORITY_SEPARATOR = "\x06\x16"
BROKER_PRIORITY_OPTIONS: Mapping[str, object] = {
    "priority_steps": [PRIORITY_URGENT, PRIORITY_NORMAL],
    "sep": PRIORITY_SEPARATOR,
}
"""kombu's Redis transport keeps one list per priority step and a consumer pops them in
step order, lowest first: urgent messages live in the list named ``QUEUE_NAME``, the others
in ``QUEUE_NAME + sep + "5"``. Senders and consumers must agree on these options (a sender
picks the list), so every Celery app of the operator uses them (``broker_transport_options``);
kombu's own default separator is pinned so that ``queue_lists`` stays right. A message sent
without a priority counts as urgent (kombu's default, 0; Celery's ``send_task`` does not
apply ``task_default_priority``), so every sender of the operator names one."""


def queue_lists() -> tuple[str, str]:
    """The Redis lists holding the Celery queue's messages: urgent first, then normal."""
    return QUEUE_NAME, f"{QUEUE_NAME}{PRIORITY_SEPARATOR}{PRIORITY_NORMAL}"


REDIS_URL_ENV = "TANGO_OPERATOR_REDIS_URL"
REDIS_PASSWORD_ENV = "TANGO_OPERATOR_REDIS_PASSWORD"
REDIS_CA_FILE_ENV = "TANGO_OPERATOR_REDIS_CA_FILE"
REDIS_CERT_FILE_ENV = "TANGO_OPERATOR_REDIS_CERT_FILE"
REDIS_KEY_FILE_ENV = "TANGO_OPERATOR_REDIS_KEY_FILE"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

TLS_FILES = {
    REDIS_CA_FILE_ENV: "ssl_ca_certs",
    REDIS_CERT_FILE_ENV: "ssl_certfile",
    REDIS_KEY_FILE_ENV: "ssl_keyfile",
}
"""The TLS file settings and the query parameter each becomes in a ``rediss://`` URL (the
names redis-py's ``from_url`` and kombu's URL parser both read)."""


class RedisSettingsError(ValueError):
    """The Redis settings contradict each other; the message names the variables (never a
    password or a URL that could hold one)."""


def _tls_query(query: str, environ: Mapping[str, str]) -> str:
    """The query of a ``rediss://`` URL with the TLS settings merged in: the server is always
    verified (``ssl_cert_reqs=required`` unless the URL itself says otherwise), and the CA,
    certificate and key files of the environment replace any the URL names."""
    pairs = dict(parse_qsl(query, keep_blank_values=True))
    wanted = {param: environ[name] for name, param in TLS_FILES.items() if environ.get(name)}
    if "ssl_cert_reqs" in pairs and not wanted:
        return query  # as given: nothing to add
    pairs.setdefault("ssl_cert_reqs", "required")
    pairs.update(wanted)
    return urlencode(pairs, safe="/", quote_via=quote)


def redis_url(environ: Mapping[str, str] | None = None) -> str:
    """The Redis URL of the watcher, the workers and Flower, from the environment.

    ``TANGO_OPERATOR_REDIS_URL`` as given; when ``TANGO_OPERATOR_REDIS_PASSWORD`` is set too
    (the Helm chart passes it from a Secret), it becomes the URL's password, percent-encoded,
    so a password need not be URL-safe. A ``unix://`` URL gets it as the ``password`` query
    parameter, as redis-py reads it there.

    A ``rediss://`` URL (TLS) always verifies the server: ``ssl_cert_reqs=required`` is added
    unless the URL sets it, and ``TANGO_OPERATOR_REDIS_CA_FILE`` (the CA bundle to verify
    with; default the system CAs), ``TANGO_OPERATOR_REDIS_CERT_FILE`` and
    ``TANGO_OPERATOR_REDIS_KEY_FILE`` (a client certificate, for a Redis that asks for one)
    become its ``ssl_ca_certs``, ``ssl_certfile`` and ``ssl_keyfile`` parameters. redis-py
    (the work queue of the watcher and the workers) and kombu (every Celery connection) both
    read them from there; Flower's broker page reads the same values from Celery's
    ``broker_use_ssl`` (``redis_tls``). Those files with a URL that is not ``rediss://`` are
    a ``RedisSettingsError``: asking for TLS must never quietly give plain text.
    """
    environ = os.environ if environ is None else environ
    url = environ.get(REDIS_URL_ENV, "").strip() or DEFAULT_REDIS_URL
    parts = urlsplit(url)
    if parts.scheme == "rediss":
        parts = parts._replace(query=_tls_query(parts.query, environ))
        url = urlunsplit(parts)
    elif given := [name for name in TLS_FILES if environ.get(name)]:
        raise RedisSettingsError(
            f"{', '.join(given)} set, but {REDIS_URL_ENV} is a {parts.scheme or 'schemeless'}:// "
            "URL: TLS needs rediss://"
        )
    password = environ.get(REDIS_PASSWORD_ENV, "")
    if not password:
        return url
    if parts.scheme == "unix":
        return f"{url}{'&' if parts.query else '?'}password={quote(password, safe='')}"
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    netloc = f"{user}:{quote(password, safe='')}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))


def celery_url(url: str) -> str:
    """The Celery (kombu) form of a Redis URL from ``redis_url``: the same URL, except that
    redis-py's ``unix:///path?db=N&password=P`` becomes kombu's
    ``redis+socket://:P@/path?virtual_host=N`` (kombu has no ``unix`` transport)."""
    parts = urlsplit(url)
    if parts.scheme != "unix":
        return url
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    password = query.pop("password", "")
    database = query.pop("db", "")
    if database:
        query["virtual_host"] = database
    auth = f":{quote(password, safe='')}@" if password else ""
    suffix = f"?{urlencode(query)}" if query else ""
    return f"redis+socket://{auth}{parts.path}{suffix}"


def redis_tls(environ: Mapping[str, str] | None = None) -> dict[str, str | bool] | None:
    """The TLS options of ``redis_url``'s URL as keyword arguments (None without TLS).

    For Celery's ``broker_use_ssl`` (``workers.celeryconfig``): kombu reads the URL's
    parameters itself, but Flower's broker page reads only this setting. The same
    ``ssl_*`` names redis-py's connections take."""
    parts = urlsplit(redis_url(environ))
    if parts.scheme != "rediss":
        return None
    options: dict[str, str | bool] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "ssl_check_hostname":
            options[name] = value.lower() not in ("false", "0", "no", "off")
        elif name.startswith("ssl_"):
            options[name] = value
    return options
