"""``tango-operator status``: the TANGO view of a cluster, per namespace, from the CRs' status.

Reads DeviceServers and DatabaseDSs through the workers' Kubernetes adapter (``workers.kube``:
``--kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config``, or the pod's service account), in one
namespace or all, and prints one row per resource: its state, the reason of its Ready
condition, its devices (``3/3 ON`` once they are read), its TANGO host, and what it waits
for or why it fails (unmet dependencies with their reasons, a crashing container's exit
code and last output, the devices in FAULT, ALARM or UNKNOWN); with ``--devices``, each
device's State and Status under its server. Read-only; nothing here reaches TANGO itself —
the operator's workers already did.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from tango_operator import crd
from tango_operator.errors import PermanentError, TemporaryError
from workers.api_retry import RetryPolicy
from workers.kube import Kube

JsonDict = dict[str, Any]
HEADER = ("NAMESPACE", "KIND", "NAME", "STATE", "REASON", "DEVICES", "TANGO HOST", "DETAIL")


def _condition_reason(status: JsonDict, kind: str = "Ready") -> str:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("reason") or "")
    return ""


def detail(status: JsonDict) -> str:
    """What a user needs next: unmet dependencies, a crash, unhealthy devices, or the message."""
    unmet = status.get("unmetDependencies") or []
    if unmet:
        return "; ".join(f"{entry['name']}: {entry['reason']}" for entry in unmet)
    container = status.get("container") or {}
    if container:
        parts = [f"restarts {container.get('restartCount', 0)}"]
        if "lastExitCode" in container:
            parts.append(f"exit {container['lastExitCode']}")
        output = str(container.get("lastOutput") or "").strip().splitlines()
        if output:
            parts.append(output[-1].strip())
        return ", ".join(parts)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "DevicesHealthy" and condition.get("status") == "False":
            return str(condition.get("message") or "")
    return str(status.get("message") or "")


def _devices_cell(resource: JsonDict, status: JsonDict) -> str:
    """``3/3 ON`` for a Running server whose devices were read, else how many it has."""
    if resource.get("kind") != crd.Kind.DEVICE_SERVER:
        return ""
    return str(status.get("deviceSummary") or len(status.get("devices") or []))


def rows(resources: Sequence[JsonDict], *, devices: bool = False) -> list[tuple[str, ...]]:
    """One row per resource, sorted by namespace, kind and name.

    With ``devices``, each Running DeviceServer's row is followed by one row per device:
    its name, State, exported flag and Status (as in ``status.deviceHealth``).
    """
    groups = []
    for resource in resources:
        meta, status = resource.get("metadata") or {}, resource.get("status") or {}
        row = (
            str(meta.get("namespace") or ""),
            str(resource.get("kind") or ""),
            str(meta.get("name") or ""),
            str(status.get("state") or "-"),
            _condition_reason(status) or "-",
            _devices_cell(resource, status),
            str(status.get("tangoHost") or ""),
            detail(status),
        )
        below = [
            (
                "",
                "  device",
                str(entry.get("name") or ""),
                str(entry.get("state") or ""),
                "-" if entry.get("exported") else "NotExported",
                "",
                "",
                str(entry.get("status") or ""),
            )
            for entry in (status.get("deviceHealth") or [] if devices else [])
        ]
        groups.append((row, below))
    return [line for row, below in sorted(groups) for line in (row, *below)]


def format_table(table: Sequence[tuple[str, ...]], width: int) -> str:
    """Columns under ``HEADER``; each line cut at ``width`` with an ellipsis."""
    lines = [HEADER, *table]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER) - 1)]
    out = []
    for line in lines:
        text = "  ".join([*(c.ljust(widths[i]) for i, c in enumerate(line[:-1])), line[-1]])
        text = text.rstrip()
        out.append(text if len(text) <= width else text[: width - 1] + "…")
    return "\n".join(out)


def read(kube: Kube, namespace: str | None) -> list[JsonDict]:
    """Every DeviceServer and DatabaseDS in ``namespace`` (all namespaces for None)."""
    found: list[JsonDict] = []
    for kind in (crd.Kind.DATABASE_DS, crd.Kind.DEVICE_SERVER):
        for item in kube.list_custom(kind, namespace or ""):
            item.setdefault("kind", kind.value)
            found.append(item)
    return found


def _kubeconfig(given: str | None) -> str | None:
    """The kubeconfig to use, as kubectl finds it; None: the pod's service account."""
    if given:
        return given
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"].split(os.pathsep)[0]
    default = Path.home() / ".kube" / "config"
    return str(default) if default.exists() else None


def parser() -> argparse.ArgumentParser:
    """The options of ``tango-operator status``."""
    command = argparse.ArgumentParser(
        prog="tango-operator status",
        description="List the DeviceServers and DatabaseDSs with their state, devices, TANGO "
        "host and what each waits for or why it fails.",
    )
    command.add_argument("-n", "--namespace", help="one namespace (default: all namespaces)")
    command.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube)")
    command.add_argument(
        "--wide", action="store_true", help="do not cut lines at the terminal's width"
    )
    command.add_argument(
        "-d",
        "--devices",
        action="store_true",
        help="list each device of a Running server under it: State, Status",
    )
    return command


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    """Print the table; 1 when the cluster cannot be read (the reason on stderr)."""
    args = parser().parse_args(argv)
    try:
        kube = Kube.connect(_kubeconfig(args.kubeconfig), retry=RetryPolicy(retries=1))
    except Exception as exc:  # the loaders raise several kinds: a missing file, bad YAML, ...
        print(f"no cluster to read: {exc}", file=sys.stderr)
        return 1
    try:
        resources = read(kube, args.namespace)
    except (TemporaryError, PermanentError) as exc:
        print(f"cannot read the cluster: {exc}", file=sys.stderr)
        return 1
    if not resources:
        print("no DeviceServer or DatabaseDS found", file=out)
        return 0
    width = 10**6 if args.wide else shutil.get_terminal_size((160, 24)).columns
    print(format_table(rows(resources, devices=args.devices), width), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
