"""docker-compose.yml and the Dockerfile, checked without a container engine.

The compose file parses, every service of ours runs a real entry point of the project (a console
script and sub-command, or a module that exists) from a Dockerfile target that exists, every
environment variable it sets is read by the code that runs, and the images keep to the chart's
security settings (UID, no baked-in secrets, the watcher without PyTango).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tango_operator.cli import COMMANDS
from tests.chart.chart import CHART
from tests.conftest import ROOT
from tests.support.layout import OPERATOR_PACKAGES

JsonDict = dict[str, Any]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS: dict[str, str] = PYPROJECT["project"]["scripts"]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    joined, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            joined.append(pending.strip())
            pending = ""
    return [(item.split(" ", 1)[0].upper(), item.split(" ", 1)[1]) for item in joined]


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions of each named stage (inherited ones included, base first)."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, arguments in _instructions():
        if instruction == "FROM":
            image, _, name = arguments.partition(" AS ")
            current = list(stages.get(image.strip(), []))
            stages[name.strip()] = current
        current.append((instruction, arguments))
    return stages


STAGES = _stages()


def _exec_form(stage: str, instruction: str) -> list[str] | None:
    found = [a for i, a in STAGES[stage] if i == instruction]
    if not found:
        return None
    value: list[str] = yaml.safe_load(found[-1])
    return value


def _names_read_by_the_code() -> set[str]:
    names = {"KUBECONFIG", "PROMETHEUS_MULTIPROC_DIR"}
    for package in OPERATOR_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            names |= set(re.findall(r"\"(TANGO_OPERATOR_[A-Z_]+)\"", path.read_text()))
    return names


def _flower_options() -> set[str]:
    """The options Flower takes from FLOWER_<NAME> variables (its tornado options)."""
    probe = "import flower.options, tornado.options; print(*tornado.options.options._options)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return {name.replace("-", "_").upper() for name in out.split()}


OURS = {name: s for name, s in COMPOSE["services"].items() if "build" in s}


def test_the_stack_has_every_part() -> None:
    services = COMPOSE["services"]
    assert {"redis", "watcher", "flower", "tango-db"} <= set(services)
    workers = [s for s in OURS.values() if s["build"]["target"] == "worker" and "command" in s]
    assert len([w for w in workers if w["command"][0] == "worker"]) == 2
    assert "--requirepass" in " ".join(services["redis"]["command"])
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    assert "kubeconfig" in (ROOT / "docker-compose.yml").read_text().lower()


@pytest.mark.parametrize("service", sorted(OURS))
def test_service_runs_a_real_entry_point(service: str) -> None:
    spec = OURS[service]
    target = spec["build"]["target"]
    assert target in STAGES, f"{service}: no Dockerfile target {target!r}"
    entrypoint = spec.get("entrypoint") or _exec_form(target, "ENTRYPOINT") or []
    command = spec.get("command") or _exec_form(target, "CMD") or []
    argv = [*entrypoint, *command]
    if argv[0] == "python":
        assert argv[1] == "-m", argv
        assert importlib.util.find_spec(argv[2]) is not None, f"{service}: no module {argv[2]}"
    else:
        assert argv[0] in SCRIPTS, f"{service}: {argv[0]} is no console script"
        assert argv[1] in COMMANDS, f"{service}: tango-operator has no {argv[1]!r} command"


@pytest.mark.parametrize("service", sorted(OURS))
def test_environment_is_read_by_the_code(service: str) -> None:
    read = _names_read_by_the_code()
    flower = _flower_options()
    for name in OURS[service].get("environment") or {}:
        if name.startswith("FLOWER_"):
            assert name.removeprefix("FLOWER_") in flower, f"{service}: Flower has no {name}"
        elif name == "PYTANGO_DATABASE_NAME":
            databaseds = importlib.util.find_spec("tango.databaseds.db_access.sqlite3")
            assert databaseds is not None
            assert databaseds.origin is not None
            assert name in Path(databaseds.origin).read_text()
        else:
            assert name in read, f"{service} sets {name}, which no code reads"


def test_services_are_locked_down_like_the_chart() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["podSecurityContext"]
    user = f"{values['runAsUser']}:{values['runAsGroup']}"
    assert user == "10001:10001"
    for name, spec in COMPOSE["services"].items():
        assert spec["user"] == user, name
        assert spec["read_only"] is True, name
        assert spec["cap_drop"] == ["ALL"], name


def test_dockerfile_images() -> None:
    assert {"watcher", "worker", "flower"} <= set(STAGES)
    for target in ("watcher", "worker", "flower"):
        instructions = STAGES[target]
        assert ("USER", "10001:10001") in instructions, target
        everything = " ".join(arguments for _, arguments in instructions)
        assert "useradd --system --uid 10001" in everything
        for instruction, arguments in instructions:
            if instruction in ("ENV", "ARG"):
                assert not re.search(r"(PASSWORD|SECRET|TOKEN|BASIC_AUTH)", arguments), arguments
    installs = {
        stage: re.findall(r"\[(\w+)\]", " ".join(a for i, a in STAGES[stage] if i == "RUN"))
        for stage in ("venv-watcher", "venv-worker", "venv-flower")
    }
    assert installs == {
        "venv-watcher": ["watcher"],
        "venv-worker": ["worker"],
        "venv-flower": ["flower"],
    }
    copied = [a for i, a in STAGES["watcher"] if i == "COPY"]
    assert copied == ["--from=venv-watcher /opt/venv /opt/venv"]
    assert ("COPY", "templates /opt/tango-operator/templates") in STAGES["worker"]
    assert "TANGO_OPERATOR_TEMPLATES" in _names_read_by_the_code()


def test_extras_keep_the_watcher_and_flower_images_small() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    for extra in ("watcher", "flower"):
        names = {re.split(r"[<>=\[ ]", requirement)[0].lower() for requirement in extras[extra]}
        assert not names & {"pytango", "jinja2", "dsconfig"}, extra
    assert any(r.startswith("flower") for r in extras["flower"])
    assert any("flower" in r for r in extras["dev"])


def test_flower_launcher_imports_no_reconcile_code() -> None:
    """The flower image has Celery and Flower only: the launcher must not pull in the rest."""
    probe = (
        "import sys, workers.flower\n"
        "from workers.flower import app\n"
        "app.loader.import_default_modules()\n"
        "print(' '.join(sorted(m for m in sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    heavy = {"jinja2", "tango", "dsconfig", "kubernetes", "workers.reconcile", "workers.tasks"}
    assert not heavy & set(loaded), sorted(heavy & set(loaded))


def test_compose_commands_are_shell_safe() -> None:
    redis_command = COMPOSE["services"]["redis"]["command"][-1]
    assert shlex.split(redis_command)[0] == "exec"
    assert '"$$REDIS_PASSWORD"' in redis_command  # compose's escape for the shell's $
