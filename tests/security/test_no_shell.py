"""User strings never reach a shell they were not written for.

Two halves (docs/security.md, point 7; the rendered manifests themselves are checked in
``tests/unit/test_rendering.py``, ``test_hostile_strings_*``):

- The local kubelet (``devstack.runner``) runs a rendered DeviceServer pod as a container
  runtime would: ``command`` + ``args`` as an argv (after the kubelet's ``$(VAR)`` expansion),
  ``env`` as the environment, and each lifecycle hook's ``exec.command`` as its own argv — the
  user's ``postStart``/``preStop`` string is the ``-c`` argument of the one ``/bin/sh`` the
  manifest names, never pasted into another command line. Checked with a real process and
  real hooks: shell metacharacters in the instance name, an env value and the hooks' data
  come out byte for byte, and none of the ``touch`` commands hidden in them runs.
- No module of the operator, the local stack or kubeemu starts a process through a shell or
  from a command string (an AST scan for ``shell=True``, ``os.system``, ``os.popen``,
  ``create_subprocess_shell``, string or f-string commands). Every place that starts a
  process is listed here and justified in docs/security.md; a new one fails until it is.
"""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.runner import plan
from devstack.runner.process import LocalPod
from tango_operator import crd
from tests.support.layout import DEV_PACKAGES, OPERATOR_PACKAGES
from tests.support.workers import REPO, wait_for
from workers import rendering

JsonDict = dict[str, Any]

REPORTER = """\
import json, os, sys
with open(os.environ["REPORT"], "w", encoding="utf-8") as out:
    json.dump({"argv": sys.argv[1:], "hostile": os.environ["HOSTILE"]}, out)
import time
time.sleep(120)
"""
HOSTILE_VALUE = (
    "'; touch pwned-quote #\" `touch pwned-backtick` $(touch pwned-dollar) && touch pwned-and"
    " | touch pwned-pipe\n touch pwned-newline {{ 7*7 }} \\$HOME ${IFS}"
)
# a TANGO name (no ; or spaces), still a shell line if anything ran it through a shell
HOSTILE_INSTANCE = "`touch${IFS}pwned-args`$(touch${IFS}pwned-args2)&&touch${IFS}pwned-args3"


class Objects:
    """``plan.ObjectReader`` over the rendered ConfigMap (the pod reads no Secret here)."""

    def __init__(self, config_maps: Mapping[str, Mapping[str, str]]) -> None:
        self.config_maps = config_maps

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:  # noqa: ARG002
        return self.config_maps.get(name)

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:  # noqa: ARG002
        return None


def test_the_local_kubelet_runs_user_strings_without_a_shell(tmp_path: Path) -> None:
    resource = {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "metadata": {"name": "hostile", "namespace": "ns", "uid": "0123456789abcdef"},
        "spec": {
            "dsname": "Reporter",
            "args": HOSTILE_INSTANCE,
            "script": REPORTER,
            "image": "registry.example/reporter:1",
            "databaseds": "tango-db",
            "env": [
                {"name": "HOSTILE", "value": HOSTILE_VALUE},
                {"name": "REPORT", "value": str(tmp_path / "report.json")},
            ],
            # the user's own shell commands: they print the hostile value, they do not run it
            "postStart": 'printf %s "$HOSTILE" > post-start.out',
            "preStop": 'printf %s "$HOSTILE" > pre-stop.out',
        },
    }
    spec = crd.parse_device_server(resource)
    configmap, _, statefulset = rendering.render_device_server(
        resource, spec, tango_host="tango-db.ns.svc.cluster.local:10000", replicas=1
    )
    pod = {
        "metadata": {"name": "hostile-0", "namespace": "ns", "uid": "fedcba9876543210"},
        "spec": statefulset["spec"]["template"]["spec"],
    }
    container = pod["spec"]["containers"][0]
    launch = plan.plan_container(
        pod,
        container,
        Objects({configmap["metadata"]["name"]: configmap["data"]}),
        plan.Settings(workdir=tmp_path / "kubelet"),
    )
    # the hooks are the manifest's argv, untouched: one shell, the user's string its -c
    assert launch.post_start == container["lifecycle"]["postStart"]["exec"]["command"]
    assert launch.post_start == ["/bin/sh", "-c", 'printf %s "$HOSTILE" > post-start.out']
    assert launch.pre_stop == ["/bin/sh", "-c", 'printf %s "$HOSTILE" > pre-stop.out']
    # the program's argv: the interpreter, the launcher, then the instance name as one word
    assert launch.argv[2] == HOSTILE_INSTANCE
    assert launch.env["HOSTILE"] == HOSTILE_VALUE

    local = LocalPod("ns/hostile-0", launch, tmp_path / "pod.log")
    try:
        local.step()  # starts the process and runs postStart
        wait_for(
            (tmp_path / "report.json").exists,
            timeout=20,
            what=f"the reporter's output; log: {(tmp_path / 'pod.log').read_text()}",
        )
        time.sleep(0.2)  # the file is written in one go, but let it close
    finally:
        local.stop()  # runs preStop, then SIGTERM
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["argv"][0] == HOSTILE_INSTANCE
    assert report["hostile"] == HOSTILE_VALUE
    assert (launch.cwd / "post-start.out").read_text() == HOSTILE_VALUE
    assert (launch.cwd / "pre-stop.out").read_text() == HOSTILE_VALUE
    planted = sorted(p.name for p in tmp_path.rglob("pwned*"))
    assert planted == [], f"a shell ran what was data: {planted}"


# --- every place that starts a process ------------------------------------------------------

SCANNED = OPERATOR_PACKAGES + DEV_PACKAGES
PROCESS_CALLS = {
    ("subprocess", "Popen"),
    ("subprocess", "run"),
    ("subprocess", "call"),
    ("subprocess", "check_call"),
    ("subprocess", "check_output"),
    ("os", "execv"),
    ("os", "execve"),
    ("os", "execvp"),
    ("os", "execvpe"),
    ("os", "execl"),
    ("os", "execlp"),
    ("os", "spawnv"),
    ("os", "spawnve"),
    ("os", "posix_spawn"),
    ("os", "posix_spawnp"),
}
SHELL_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
    ("asyncio", "create_subprocess_shell"),
}
KNOWN = {
    # module: the argv each call starts, as docs/security.md justifies it
    "devstack/controlplane/__init__.py": 1,  # etcd and the Kubernetes binaries, our options
    "devstack/pki.py": 1,  # openssl with fixed options and paths of the caller's
    "devstack/redis_server.py": 1,  # redis-server, fixed options and paths of its own
    "devstack/runner/process.py": 2,  # a pod's argv and its hooks' argv, as the manifest says
    "devstack/stack.py": 1,  # python -m watcher / tango_operator.cli / workers.flower
    "kubeemu/src/kubeemu/testing.py": 1,  # python -m kubeemu
    "tango_operator/cli.py": 2,  # exec of celery worker / python -m MODULE, the user's options
    "tango_operator/supervise.py": 1,  # the same celery worker argv, restarted
}


def _call_name(node: ast.Call) -> tuple[str, str] | None:
    function = node.func
    if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name):
        return function.value.id, function.attr
    return None


def _is_string_command(node: ast.expr) -> bool:
    """A command given as one string (a literal, an f-string, a concatenation, a format)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.JoinedStr | ast.BinOp):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("format", "join")
    return False


def test_no_code_starts_a_shell_or_a_command_string() -> None:
    found: dict[str, int] = {}
    problems: list[str] = []
    for package in SCANNED:
        for path in sorted((REPO / package).rglob("*.py")):
            module = str(path.relative_to(REPO))
            for node in ast.walk(ast.parse(path.read_text(), filename=module)):
                if not isinstance(node, ast.Call):
                    continue
                name = _call_name(node)
                where = f"{module}:{node.lineno}"
                if name in SHELL_CALLS:
                    problems.append(f"{where}: {'.'.join(name)} runs a shell")
                if name not in PROCESS_CALLS:
                    continue
                found[module] = found.get(module, 0) + 1
                for keyword in node.keywords:
                    if keyword.arg == "shell" and not (
                        isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                    ):
                        problems.append(f"{where}: shell={ast.unparse(keyword.value)}")
                arguments = node.args[1:2] if name[0] == "os" else node.args[:1]
                for argument in arguments:
                    if _is_string_command(argument):
                        problems.append(f"{where}: a command string {ast.unparse(argument)}")
    assert problems == []
    assert found == KNOWN, "a new place starts processes: justify it in docs/security.md"


def test_the_scan_sees_what_it_looks_for(tmp_path: Path) -> None:
    """The scan's own check: each forbidden form is recognised."""
    samples = {
        "subprocess.run('ls -l', shell=True)": True,
        "subprocess.Popen(f'echo {x}')": True,
        "subprocess.check_output('a' + b)": True,
        "subprocess.run(' '.join(argv))": True,
        "subprocess.run(['ls', '-l'])": False,
        "os.execv(sys.executable, ['python', '-c', code])": False,
        "os.execv(sys.executable, 'python ' + code)": True,
    }
    for source, bad in samples.items():
        call = ast.parse(source).body[0]
        assert isinstance(call, ast.Expr)
        assert isinstance(call.value, ast.Call)
        node = call.value
        name = _call_name(node)
        assert name in PROCESS_CALLS, source
        arguments = node.args[1:2] if name[0] == "os" else node.args[:1]
        shell = any(k.arg == "shell" for k in node.keywords)
        assert (shell or any(_is_string_command(a) for a in arguments)) is bad, source
    assert ("os", "system") in SHELL_CALLS
