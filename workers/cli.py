"""The ``tango-operator`` command line.

``tango-operator render -f FILE`` reads DeviceServer / DatabaseDS resources from YAML files (or
stdin with ``-f -``), renders their children exactly as the workers would apply them, and writes
them to stdout as one multi-document YAML stream, like ``helm template``. Problems go to stderr;
the exit status is 1 when any resource could not be rendered (the others still are).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

import yaml

from workers import api, names, rendering, supervise
from workers.contract import QUEUE_NAME

JsonDict = dict[str, Any]

# What the rendered ownerReferences point at when a file's resource has no metadata.uid (it was
# never created). The real reconciler never uses it: an ownerReference to a uid that does not
# exist makes the garbage collector delete the child.
PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"


_LINE_BREAKS = re.compile("[\x85\u2028\u2029]")


class _Dumper(yaml.SafeDumper):
    """Block literals for multi-line strings (scripts, config.json), so the output is readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    lines = value.split("\n")
    readable = len(lines) > 1 and all(
        line.isprintable() and line == line.rstrip() for line in lines
    )
    style = "|" if readable else None
    if _LINE_BREAKS.search(value):
        # PyYAML's emitter (allow_unicode) writes these raw; its reader folds them as newlines.
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_documents(documents: Sequence[tuple[str, JsonDict]]) -> str:
    """``(comment, manifest)`` pairs as a YAML stream, each document under its ``# comment``."""
    parts = []
    for comment, manifest in documents:
        body = yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
        parts.append(f"---\n# {comment}\n{body}")
    return "".join(parts)


def _read(path: str, stdin: TextIO) -> Iterator[Any]:
    if path == "-":
        text = stdin.read()
    else:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    for document in yaml.safe_load_all(text):
        if isinstance(document, dict) and document.get("kind") == "List":
            yield from document.get("items") or []
        elif document is not None:
            yield document


def _children(resource: JsonDict, args: argparse.Namespace) -> list[JsonDict]:
    kind = resource.get("kind")
    name = resource["metadata"]["name"]
    if kind == api.Kind.DEVICE_SERVER:
        device_server = api.parse_device_server(resource)
        tango_host = args.tango_host or api.tango_host_for(
            device_server.databaseds,
            namespace=resource["metadata"]["namespace"],
            cluster_domain=device_server.cluster_domain,
        )
        return rendering.render_device_server(
            resource, device_server, tango_host=tango_host, replicas=args.replicas
        )
    database_ds = api.parse_database_ds(resource)
    return rendering.render_database_ds(
        resource,
        database_ds,
        credentials_secret=database_ds.credentials_secret
        or names.secret(name, "-tangodb-credentials"),
        databaseds_replicas=args.replicas,
    )


def _prepared(document: JsonDict, namespace: str | None) -> JsonDict:
    """A copy of the document with the namespace and (placeholder) uid the renderer needs."""
    metadata = dict(document.get("metadata") or {})
    metadata["namespace"] = namespace or metadata.get("namespace") or "default"
    metadata["uid"] = metadata.get("uid") or PLACEHOLDER_UID
    return {
        **document,
        "apiVersion": document.get("apiVersion") or api.API_VERSION,
        "metadata": metadata,
    }


def render(args: argparse.Namespace, stdout: TextIO, stderr: TextIO, stdin: TextIO) -> int:
    status = 0
    documents: list[tuple[str, JsonDict]] = []
    for path in args.files:
        try:
            resources = list(_read(path, stdin))
        except (OSError, yaml.YAMLError) as exc:
            print(f"{path}: {exc}", file=stderr)
            status = 1
            continue
        for document in resources:
            kind = document.get("kind") if isinstance(document, dict) else None
            if kind not in (api.Kind.DEVICE_SERVER, api.Kind.DATABASE_DS):
                print(f"{path}: skipping a document of kind {kind!r}", file=stderr)
                continue
            name = (document.get("metadata") or {}).get("name")
            if not isinstance(name, str) or not name:
                print(f"{path}: {kind} without metadata.name", file=stderr)
                status = 1
                continue
            resource = _prepared(document, args.namespace)
            try:
                children = _children(resource, args)
            except api.SpecError as exc:
                print(f"{kind}/{name}: {exc.field}: {exc.message}", file=stderr)
                status = 1
                continue
            source = f"{kind}/{name}"
            documents += [
                (f"Source: {source} → {c['kind']}/{c['metadata']['name']}", c) for c in children
            ]
    stdout.write(dump_documents(documents))
    return status


def _replicas(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="tango-operator", description="Kubernetes operator for TANGO-controls."
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    render_command = commands.add_parser(
        "render",
        help="print the child manifests of DeviceServer/DatabaseDS resources",
        description="Render the children of DeviceServer and DatabaseDS resources, as the "
        "workers would apply them, as a multi-document YAML stream.",
    )
    render_command.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="FILE",
        help="YAML file with resources (multi-document); '-' reads stdin; repeatable",
    )
    render_command.add_argument(
        "-n", "--namespace", help="namespace of the resources (default: their own, or default)"
    )
    render_command.add_argument(
        "--replicas",
        type=_replicas,
        default=1,
        help="replicas of the DeviceServer and DataBaseds StatefulSets (default 1)",
    )
    render_command.add_argument(
        "--tango-host",
        metavar="HOST:PORT",
        help="TANGO_HOST of the DeviceServers (default: their databaseds in the namespace)",
    )
    render_command.set_defaults(handler=render)
    for name, summary in PASSTHROUGH.items():
        commands.add_parser(name, help=summary, add_help=False)
    return top


PASSTHROUGH = {
    "worker": "run Celery workers: every `celery worker` option is accepted",
    "watcher": "run the watcher (list/watch → Redis), leader-elected",
}


def _exec_worker(rest: Sequence[str]) -> int:
    """``celery -A workers.app worker -Q tango-operator`` plus the user's options.

    Sets up PROMETHEUS_MULTIPROC_DIR (a fresh directory unless given) so the metrics of all
    Celery child processes add up on the main process's /metrics. The worker runs under
    ``workers.supervise`` (restarted after a crash, see there) unless
    ``TANGO_OPERATOR_WORKER_MAX_RESTARTS=0``, which execs Celery in place.
    """
    environment = dict(os.environ)
    if not environment.get("PROMETHEUS_MULTIPROC_DIR"):
        environment["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tango-operator-metrics-")
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "-Q",
        QUEUE_NAME,
        *rest,
    ]
    max_restarts = _non_negative_int(environment, "TANGO_OPERATOR_WORKER_MAX_RESTARTS", 10)
    if max_restarts == 0:
        os.execve(sys.executable, command, environment)
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s: %(levelname)s/supervisor] %(message)s"
    )
    supervisor = supervise.Supervisor(
        command, environment, supervise.RestartPolicy(max_restarts=max_restarts)
    )
    supervisor.install_signal_handlers()
    return supervisor.run()


def _non_negative_int(environment: dict[str, str], name: str, default: int) -> int:
    text = environment.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise SystemExit(f"{name}={text!r}: expected a whole number, 0 or more")
    return value


def _exec_watcher(rest: Sequence[str]) -> int:
    command = [sys.executable, "-m", "watcher", *rest]
    os.execv(sys.executable, command)
    return 1  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] == "worker":
        return _exec_worker(arguments[1:])
    if arguments and arguments[0] == "watcher":
        return _exec_watcher(arguments[1:])
    args = parser().parse_args(arguments)
    status: int = args.handler(args, sys.stdout, sys.stderr, sys.stdin)
    return status


if __name__ == "__main__":
    sys.exit(main())
