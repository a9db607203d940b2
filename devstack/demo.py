"""``make demo``: the operator on its embedded local stack, with the chart's samples.

Reads the sample resources (``helm/samples/*.yaml`` unless told otherwise), starts a
``LocalStack`` with a local port for every DatabaseDS among them — on kubeemu, or with
``--api real`` (``make demo API=real``) on a real control plane of its own
(``devstack.stack_api``) — creates the samples, and shows a table of their states — redrawn
in place on a terminal, a line per change otherwise — until every one is Running. Then it
prints where the API server, Flower, the metrics and a kubeconfig for ``kubectl`` (the API
server's admin one) are, and keeps the stack up until Ctrl-C (or, with ``--until-running``,
exits 0 at once; 1 if ``--timeout`` passes first, a process dies or the control plane cannot
start).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml
from kubernetes import client

from devstack.controlplane import ControlPlaneError
from devstack.stack import ROOT, LocalStack, StackOptions, cluster_tango_host
from devstack.stack_api import API_CHOICES
from workers import render

JsonDict = dict[str, Any]
SAMPLES = ROOT / "helm" / "samples"
PLURALS = {"DeviceServer": "deviceservers", "DatabaseDS": "databaseds"}
GROUP, VERSION = "tango.tango-controls.org", "v1"
WORKDIR_MARKER = ".tango-operator-demo"
"""The file that says a directory is a demo's own: only such a directory is ever deleted."""
HANGUP_AND_STOP = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Ctrl-C, a kill, or the terminal closing: each stops the stack and every process it ran."""


class WorkdirError(Exception):
    """A ``--workdir`` the demo will not use (it holds something the demo did not make)."""


def prepare_workdir(workdir: Path) -> None:
    """Empty a workdir of an earlier demo, or make a new one; never delete anything else.

    A directory that exists is deleted only when it carries ``WORKDIR_MARKER`` (an earlier
    demo made it) or is empty; otherwise ``WorkdirError`` names it.
    """
    if workdir.exists():
        if not workdir.is_dir():
            raise WorkdirError(f"--workdir {workdir} is a file, not a directory")
        if not (workdir / WORKDIR_MARKER).exists() and any(workdir.iterdir()):
            raise WorkdirError(
                f"--workdir {workdir} exists and was not made by the demo: the demo deletes "
                "its workdir at every start, so give it a new or empty directory"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / WORKDIR_MARKER).write_text("made by `make demo`; deleted at its next start\n")


def load_samples(paths: Sequence[Path]) -> list[JsonDict]:
    """Read every YAML document (objects only) from ``paths``, files or directories.

    A directory's manifest files are read as ``tango-operator render -f`` (and kubectl) does.
    """
    documents: list[JsonDict] = []
    for file in render.expand([str(path) for path in paths], recursive=False):
        documents += [d for d in yaml.safe_load_all(Path(file).read_text()) if isinstance(d, dict)]
    return documents


def databaseds_of(documents: Sequence[JsonDict]) -> tuple[tuple[str, str], ...]:
    """Return (namespace, name) of each DatabaseDS among ``documents``."""
    return tuple(
        ((d.get("metadata") or {}).get("namespace") or "default", d["metadata"]["name"])
        for d in documents
        if d.get("kind") == "DatabaseDS"
    )


def read_states(
    api_client: client.ApiClient, resources: Sequence[tuple[str, str, str]]
) -> list[tuple[str, str, str, str, str, str]]:
    """(namespace, kind/name, state, devices, waiting for, message) of each resource.

    ``devices`` is a Running server's device states counted (``2/3 ON, 1 FAULT``).
    """
    custom = client.CustomObjectsApi(api_client)
    rows = []
    for kind, namespace, name in resources:
        try:
            found = custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], name
            )
        except client.ApiException as exc:
            rows.append((namespace, f"{kind}/{name}", "?", "", "", f"cannot read: {exc.reason}"))
            continue
        status = found.get("status") or {}
        rows.append(
            (
                namespace,
                f"{kind}/{name}",
                str(status.get("state") or "-"),
                str(status.get("deviceSummary") or ""),
                ", ".join(status.get("waitingFor") or []),
                str(status.get("message") or ""),
            )
        )
    return rows


def format_table(rows: Sequence[tuple[str, ...]], width: int) -> str:
    """Lay out the state rows under a header; lines longer than ``width`` end in an ellipsis."""
    header = ("NAMESPACE", "RESOURCE", "STATE", "DEVICES", "WAITING FOR", "MESSAGE")
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = []
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        line = "  ".join([*cells, row[-1]])
        lines.append(line if len(line) <= width else line[: width - 1] + "…")
    return "\n".join(lines)


class Display:
    """Redraws the table in place on a terminal; prints it again on change otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last = ""
        self.drawn_lines = 0

    def show(self, text: str) -> None:
        """Show ``text`` unless it is what is shown already."""
        if text == self.last:
            return
        if self.tty and self.drawn_lines:
            self.out.write(f"\x1b[{self.drawn_lines}F\x1b[J")
        self.out.write(text + "\n")
        self.out.flush()
        self.last = text
        self.drawn_lines = text.count("\n") + 1 if self.tty else 0


def tango_lines(stack: LocalStack, documents: Sequence[JsonDict], width: int) -> list[str]:
    """``export TANGO_HOST=…`` per DatabaseDS, and where each device server's output goes."""
    lines: list[str] = []
    for namespace, name in databaseds_of(documents):
        local = stack.host_map.get(cluster_tango_host(name, namespace))
        if local:
            lines.append(f"  export TANGO_HOST={local}   # DatabaseDS {namespace}/{name}")
    pods = stack.workdir / "kubelet" / "logs"
    lines.append(f"  {'server output':<{width}} {pods}/NAMESPACE_POD.log, e.g.")
    for document in documents:
        if document.get("kind") == "DeviceServer":
            meta = document.get("metadata") or {}
            namespace = meta.get("namespace") or "default"
            lines.append(f"  {'':<{width}} {pods}/{namespace}_{meta.get('name')}-0.log")
            break
    return lines


def summary(stack: LocalStack, documents: Sequence[JsonDict] = ()) -> str:
    """What the user is told once every sample runs: the endpoints and how to use them."""
    kubectl = ROOT / ".tools" / "bin" / "kubectl"
    command = kubectl if kubectl.exists() else "kubectl"
    width = max(26, *(len(endpoint.name) for endpoint in stack.endpoints))
    lines = ["", "The operator is running on this machine:"]
    for endpoint in stack.endpoints:
        lines.append(f"  {endpoint.name:<{width}} {endpoint.url}")
    if stack.flower_credentials:
        user, password = stack.flower_credentials
        lines.append(f"  {'Flower login':<{width}} {user} / {password}")
    lines += [
        f"  {'logs':<{width}} {stack.logs}",
        "",
        "TANGO (Jive, itango, Taranta) reaches the servers with:",
        *tango_lines(stack, documents, width),
        "",
        "Try:",
        f"  export KUBECONFIG={stack.api.kubeconfig}",
        f"  {command} get deviceservers,databaseds -A -o wide",
        # this machine is the Node on either server; its kubelet serves the pods' logs
        f"  {command} get nodes,statefulsets,pods -A -o wide",
        f"  {command} logs sample-source-0",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run the demo: start the stack, create the samples, show their states until stopped.

    Returns 0 after Ctrl-C (or once all run, with ``--until-running``), 1 when a process of
    the stack dies or the samples do not all run within ``--timeout``, 2 without samples.
    """
    documents = load_samples([Path(p) for p in args.samples] or [SAMPLES])
    if not documents:
        print(f"no resources found in {args.samples or [SAMPLES]}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir)
    try:
        prepare_workdir(workdir)
    except WorkdirError as error:
        print(str(error), file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in HANGUP_AND_STOP:
        signal.signal(signum, lambda *_: stop.set())
    stack = LocalStack(
        StackOptions(
            workdir=workdir,
            api=args.api,
            databaseds=databaseds_of(documents),
            workers=args.workers,
            flower=not args.no_flower,
        )
    )
    server = "a real control plane" if args.api == "real" else "kubeemu"
    print(f"starting the local stack ({server}) in {workdir} …", file=out, flush=True)
    try:
        try:
            stack.start()
        except ControlPlaneError as error:
            print(f"the control plane did not start: {error}", file=out)
            return 1
        assert stack.api_client is not None
        resources = stack.apply(documents)
        print(f"created {len(resources)} resources; waiting for them to run", file=out)
        display = Display(out)
        deadline = time.monotonic() + args.timeout
        width = shutil.get_terminal_size((120, 24)).columns
        running = tango_shown = False
        while not stop.is_set():
            rows = read_states(stack.api_client, resources)
            display.show(format_table(rows, width))
            databases = [row for row in rows if row[1].startswith("DatabaseDS/")]
            waiting = any(row[2] != "Running" for row in rows)
            if not tango_shown and waiting and all(row[2] == "Running" for row in databases):
                # a server that never runs must not hide the TANGO DB that does
                tango_shown = True
                lines = ["", "The TANGO DB is up; Jive, itango or Taranta reach it with:"]
                lines += tango_lines(stack, documents, len("server output"))
                print("\n".join([*lines, ""]), file=out)
                display.drawn_lines = 0  # the next table goes below, not over this
            dead = stack.check()
            if dead:
                print(f"stopped unexpectedly: {', '.join(dead)}; see {stack.logs}", file=out)
                return 1
            if not running and all(row[2] == "Running" for row in rows):
                running = True
                print(summary(stack, documents), file=out, flush=True)
                if args.until_running:
                    return 0
                print("\nCtrl-C (or closing the terminal) stops everything.", file=out, flush=True)
            if not running and time.monotonic() > deadline:
                print(f"not all Running after {args.timeout:.0f}s; see {stack.logs}", file=out)
                return 1
            stop.wait(1.0)
        print("stopping …", file=out, flush=True)
        return 0
    finally:
        stack.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's command-line options to ``parser``."""
    parser.add_argument(
        "samples", nargs="*", help="YAML files or directories (default: helm/samples)"
    )
    parser.add_argument(
        "--workdir",
        default=str(ROOT / ".cache" / "demo"),
        help="where the stack keeps its files and logs; emptied at start, so it must be new,"
        " empty or an earlier demo's (default .cache/demo)",
    )
    parser.add_argument(
        "--api",
        choices=API_CHOICES,
        default="kubeemu",
        help="the Kubernetes API: kubeemu (default) or real (kube-apiserver and etcd of its own,"
        " built by `make controlplane`)",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--no-flower", action="store_true", help="do not start Flower")
    parser.add_argument(
        "--until-running", action="store_true", help="exit 0 as soon as all are Running"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for Running (default 300)"
    )
