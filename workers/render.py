"""``tango-operator render``: the children of custom resources, without a cluster.

``tango-operator render -f FILE`` (run by the command in ``tango_operator.cli``) reads
DeviceServer / DatabaseDS resources from YAML files (or stdin with ``-f -``), renders their
children exactly as the workers would apply them, and writes them to stdout as one
multi-document YAML stream, like ``helm template``. Problems go to stderr; the exit status is 1
when any resource could not be rendered (the others still are).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from tango_operator import crd, names
from workers import rendering

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


MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")
"""The files of a directory that ``-f DIR`` reads, as kubectl does."""


def expand(paths: Sequence[str], *, recursive: bool) -> list[str]:
    """Each file as given, each directory as its manifest files, as ``kubectl -f`` reads them.

    A directory's files are sorted; its subdirectories are read only when ``recursive``.
    """
    files: list[str] = []
    for path in paths:
        folder = Path(path)
        if path == "-" or not folder.is_dir():
            files.append(path)
            continue
        found = folder.rglob("*") if recursive else folder.glob("*")
        files += sorted(
            str(f) for f in found if f.is_file() and f.suffix.lower() in MANIFEST_SUFFIXES
        )
    return files


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
    if kind == crd.Kind.DEVICE_SERVER:
        device_server = crd.parse_device_server(resource)
        tango_host = args.tango_host or crd.tango_host_for(
            device_server.databaseds,
            namespace=resource["metadata"]["namespace"],
            cluster_domain=device_server.cluster_domain,
        )
        return rendering.render_device_server(
            resource,
            device_server,
            tango_host=tango_host,
            replicas=args.replicas,
            network_policy=args.network_policy,
        )
    database_ds = crd.parse_database_ds(resource)
    return rendering.render_database_ds(
        resource,
        database_ds,
        credentials_secret=database_ds.credentials_secret
        or names.secret(name, "-tangodb-credentials"),
        databaseds_replicas=args.replicas,
        network_policy=args.network_policy,
    )


def _prepared(document: JsonDict, namespace: str | None) -> JsonDict:
    """A copy of the document with the namespace and (placeholder) uid the renderer needs."""
    metadata = dict(document.get("metadata") or {})
    metadata["namespace"] = namespace or metadata.get("namespace") or "default"
    metadata["uid"] = metadata.get("uid") or PLACEHOLDER_UID
    return {
        **document,
        "apiVersion": document.get("apiVersion") or crd.API_VERSION,
        "metadata": metadata,
    }


def render(args: argparse.Namespace, stdout: TextIO, stderr: TextIO, stdin: TextIO) -> int:
    """Write the children of every CR in ``args.files`` to ``stdout`` as one YAML stream.

    Documents of other kinds are skipped; unreadable files and bad specs are reported on
    ``stderr``. Returns 1 if anything was reported as wrong, else 0.
    """
    status = 0
    documents: list[tuple[str, JsonDict]] = []
    files = expand(args.files, recursive=args.recursive)
    if not files:
        print(
            f"no manifest files ({', '.join(MANIFEST_SUFFIXES)}) in {', '.join(args.files)}",
            file=stderr,
        )
        return 1
    for path in files:
        try:
            resources = list(_read(path, stdin))
        except (OSError, yaml.YAMLError) as exc:
            print(f"{path}: {exc}", file=stderr)
            status = 1
            continue
        for document in resources:
            kind = document.get("kind") if isinstance(document, dict) else None
            if kind not in (crd.Kind.DEVICE_SERVER, crd.Kind.DATABASE_DS):
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
            except crd.SpecError as exc:
                problems = exc.problems if isinstance(exc, crd.SeveralSpecError) else (exc,)
                for problem in problems:
                    print(f"{path}: {kind}/{name}: {problem.field}: {problem.message}", file=stderr)
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
    """The options of ``tango-operator render``."""
    command = argparse.ArgumentParser(
        prog="tango-operator render",
        description="Render the children of DeviceServer and DatabaseDS resources, as the "
        "workers would apply them, as a multi-document YAML stream.",
    )
    command.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="FILE",
        help="YAML or JSON file with resources (multi-document), or a directory of them;"
        " '-' reads stdin; repeatable",
    )
    command.add_argument(
        "-R",
        "--recursive",
        action="store_true",
        help="read the directories given with -f and their subdirectories",
    )
    command.add_argument(
        "-n", "--namespace", help="namespace of the resources (default: their own, or default)"
    )
    command.add_argument(
        "--replicas",
        type=_replicas,
        default=1,
        help="replicas of the DeviceServer and DataBaseds StatefulSets (default 1)",
    )
    command.add_argument(
        "--tango-host",
        metavar="HOST:PORT",
        help="TANGO_HOST of the DeviceServers (default: their databaseds in the namespace)",
    )
    command.add_argument(
        "--network-policy",
        action="store_true",
        help="with the NetworkPolicies the workers make when TANGO_OPERATOR_NETWORK_POLICY is true",
    )
    return command


def main(argv: Sequence[str] | None = None) -> int:
    """Render the files named in ``argv``; 1 when any resource could not be rendered."""
    args = parser().parse_args(argv)
    return render(args, sys.stdout, sys.stderr, sys.stdin)


if __name__ == "__main__":
    sys.exit(main())
