"""The Redis URL every part of the operator connects with, from the environment.

Read by the watcher's settings (``watcher.settings``), the workers' wiring (``workers.wiring``
through ``workers.settings``), and the Celery configuration (``tango_operator.celeryconfig``)
that the watcher, the workers and Flower all load. Passwords and TLS files are merged into
the URL here, once; messages never contain a password.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from tango_operator import environment
from tango_operator.environment import SettingsError

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


class RedisSettingsError(SettingsError):
    """The Redis settings contradict each other.

    The message names the variables (never a password or a URL that could hold one).
    """


def _tls_query(query: str, environ: Mapping[str, str]) -> str:
    """The query of a ``rediss://`` URL with the TLS settings merged in.

    The server is always verified (``ssl_cert_reqs=required`` unless the URL itself says otherwise),
    and the CA, certificate and key files of the environment replace any the URL names.
    """
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
    environ = environment.environ_or_default(environ)
    url = environment.text(environ, REDIS_URL_ENV, DEFAULT_REDIS_URL)
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
    """The Celery (kombu) form of a Redis URL from ``redis_url``.

    The same URL, except that redis-py's ``unix:///path?db=N&password=P`` becomes kombu's
    ``redis+socket://:P@/path?virtual_host=N`` (kombu has no ``unix`` transport).
    """
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

    For Celery's ``broker_use_ssl`` (``tango_operator.celeryconfig``): kombu reads the URL's
    parameters itself, but Flower's broker page reads only this setting. The same
    ``ssl_*`` names redis-py's connections take.
    """
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
