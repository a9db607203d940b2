"""tango-operator render (``workers.render``).

CRs in, child manifests out as a YAML stream; bad specs on stderr. And the ``tango-operator``
command (``tango_operator.cli``) around it.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from tango_operator import cli, crd, variables
from tests.unit.test_rendering import (
    assert_valid_manifest,
    database_ds,
    nasty,
    python_server,
    tangotest,
)
from workers import render, rendering

JsonDict = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]


def _without_uid(resource: JsonDict) -> JsonDict:
    resource["metadata"].pop("uid")
    resource["metadata"].pop("namespace")
    return resource


def _write(path: Path, *documents: Any) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    assert argv[0] == "render"
    status = render.main(argv[1:])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _sources(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("# Source: ")]


def test_render_prints_every_child_as_a_yaml_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crs = _write(
        tmp_path / "crs.yaml",
        _without_uid(database_ds()),
        _without_uid(tangotest()),
        _without_uid(python_server()),
    )
    status, out, err = _run(["render", "-f", str(crs)], capsys)
    assert (status, err) == (0, "")
    documents = list(yaml.safe_load_all(out))
    assert len(documents) == 4 + 3 + 3
    for document in documents:
        assert_valid_manifest(document)
        assert document["metadata"]["namespace"] == "default"
        assert document["metadata"]["ownerReferences"][0]["uid"] == render.PLACEHOLDER_UID
    sources = _sources(out)
    assert len(sources) == len(documents)
    assert sources[0] == (
        "# Source: DatabaseDS/databaseds-tango-base → Service/databaseds-tango-base-tangodb"
    )
    assert "# Source: DeviceServer/tangotest-test → ConfigMap/tangotest-test-config" in sources
    statefulset = documents[6]
    assert statefulset["kind"] == "StatefulSet"
    assert statefulset["spec"]["replicas"] == 1
    env = {
        e["name"]: e.get("value")
        for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["TANGO_HOST"] == "databaseds-tango-base.default.svc.cluster.local:10000"
    # the DataBaseds pods read the Secret the reconciler would create for the DatabaseDS
    secret_ref = documents[3]["spec"]["template"]["spec"]["containers"][0]["env"][3]
    assert secret_ref["valueFrom"]["secretKeyRef"]["name"] == (
        "databaseds-tango-base-tangodb-credentials"
    )


def test_options_namespace_replicas_and_tango_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crs = _write(tmp_path / "crs.yaml", tangotest())
    status, out, _ = _run(
        ["render", "-f", str(crs), "-n", "other", "--replicas", "0", "--tango-host", "db:10000"],
        capsys,
    )
    assert status == 0
    *_, statefulset = yaml.safe_load_all(out)
    assert statefulset["metadata"]["namespace"] == "other"
    assert statefulset["spec"]["replicas"] == 0
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["TANGO_HOST"] == "db:10000"
    assert env["TANGO_SERVER_PUBLISH_HOSTNAME"] == "tangotest-test.other.svc.cluster.local"
    # a uid present in the file is kept
    assert statefulset["metadata"]["ownerReferences"][0]["uid"] == tangotest()["metadata"]["uid"]


def test_network_policy_option_renders_the_policies_the_workers_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crs = _write(tmp_path / "crs.yaml", database_ds(), tangotest())
    status, out, _ = _run(["render", "-f", str(crs), "--network-policy"], capsys)
    assert status == 0
    policies = [d for d in yaml.safe_load_all(out) if d["kind"] == "NetworkPolicy"]
    assert [p["metadata"]["name"] for p in policies] == [
        "databaseds-tango-base-tangodb-network-policy",
        "databaseds-tango-base-network-policy",
        "tangotest-test-network-policy",
    ]
    _, plain, _ = _run(["render", "-f", str(crs)], capsys)
    assert "NetworkPolicy" not in plain


def test_a_bad_spec_is_reported_and_the_others_still_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tangotest()
    broken["metadata"]["name"] = "broken"
    broken["spec"]["script"] = "print()"  # and command: both
    crs = _write(tmp_path / "crs.yaml", broken, {"apiVersion": "v1", "kind": "ConfigMap"})
    more = _write(tmp_path / "more.yaml", python_server())
    status, out, err = _run(["render", "-f", str(crs), "-f", str(more)], capsys)
    assert status == 1
    assert "DeviceServer/broken: spec.command: give either command or script" in err
    assert "skipping a document of kind 'ConfigMap'" in err
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(out)] == [
        "powersupply-test-config",
        "powersupply-test",
        "powersupply-test",
    ]


def test_unknown_kinds_alone_are_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crs = _write(tmp_path / "crs.yaml", {"apiVersion": "v1", "kind": "Secret"})
    status, out, err = _run(["render", "-f", str(crs)], capsys)
    assert (status, out) == (0, "")
    assert "'Secret'" in err


def test_unreadable_input_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("a: [unclosed\n")
    status, _, err = _run(
        ["render", "-f", str(tmp_path / "bad.yaml"), "-f", str(tmp_path / "missing.yaml")],
        capsys,
    )
    assert status == 1
    assert "bad.yaml" in err
    assert "missing.yaml" in err


def test_stdin_and_kubectl_lists(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = {"apiVersion": "v1", "kind": "List", "items": [tangotest(), database_ds()]}
    monkeypatch.setattr(sys, "stdin", io.StringIO(yaml.safe_dump(listing)))
    status, out, _ = _run(["render", "-f", "-"], capsys)
    assert status == 0
    assert len(list(yaml.safe_load_all(out))) == 3 + 4


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["nonsense"], ["--bogus"]):
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
        assert exited.value.code == 2
    assert "usage: tango-operator" in capsys.readouterr().err
    for argv in ([], ["-f", "x", "--replicas", "-1"]):
        with pytest.raises(SystemExit) as exited:
            render.main(argv)
        assert exited.value.code == 2
    assert "usage: tango-operator render" in capsys.readouterr().err


def test_version_and_help_name_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"tango-operator {cli.version()}"
    assert cli.version()[0].isdigit(), "the installed distribution's version"
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("render", "watcher", "worker"):
        assert command in out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=nasty, post_start=nasty, env_value=nasty)
def test_the_yaml_stream_reads_back_exactly(script: str, post_start: str, env_value: str) -> None:
    resource = python_server()
    resource["spec"].update(
        script=script + "x",
        postStart=post_start or "true",
        env=[{"name": "A", "value": env_value}],
    )
    spec = crd.parse_device_server(resource)
    children = rendering.render_device_server(resource, spec, tango_host="h:1", replicas=1)
    stream = render.dump_documents([(f"Source: {i}", c) for i, c in enumerate(children)])
    assert list(yaml.safe_load_all(stream)) == children


def test_multi_line_scripts_are_block_literals() -> None:
    stream = render.dump_documents([("c", {"data": {"server.py": "import tango\nrun()\n"}})])
    assert "server.py: |\n    import tango\n    run()\n" in stream


def test_the_installed_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "tango-operator"
    if not script.exists():
        pytest.fail("the tango-operator script is missing: run `.venv/bin/pip install -e .`")
    crs = _write(tmp_path / "crs.yaml", _without_uid(tangotest()))
    done = subprocess.run(
        [str(script), "render", "-f", str(crs), "--namespace", "ska"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    kinds = [(d["kind"], d["metadata"]["namespace"]) for d in yaml.safe_load_all(done.stdout)]
    assert kinds == [("ConfigMap", "ska"), ("Service", "ska"), ("StatefulSet", "ska")]
    broken = _write(tmp_path / "broken.yaml", {**tangotest(), "spec": {"dsname": "x"}})
    done = subprocess.run(
        [str(script), "render", "-f", str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{broken}: DeviceServer/tangotest-test: {field}: {message}"
        for field, message in [
            ("spec.args", "is required"),
            ("spec.command", "one of command or script is required"),
            ("spec.databaseds", "is required"),
            ("spec.image", "is required"),
        ]
    ]


def test_a_directory_is_read_as_kubectl_reads_it_and_every_problem_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "crs"
    (folder / "nested").mkdir(parents=True)
    _write(folder / "a-database.yaml", _without_uid(database_ds()))
    (folder / "b-server.json").write_text(json.dumps(_without_uid(python_server())))
    (folder / "notes.txt").write_text("not a manifest")
    broken = tangotest()
    broken["metadata"]["name"] = "broken"
    broken["spec"]["script"] = "print()"  # and command: both
    broken["spec"]["clusterDomain"] = "Not_A_Domain"
    _write(folder / "nested" / "c-broken.yml", broken)

    status, out, err = _run(["render", "-f", str(folder)], capsys)
    assert (status, err) == (0, "")
    assert len(_sources(out)) == 7  # 4 children of the DatabaseDS, 3 of the DeviceServer

    status, out, err = _run(["render", "-R", "-f", str(folder)], capsys)
    assert status == 1
    nested = folder / "nested" / "c-broken.yml"
    assert f"{nested}: DeviceServer/broken: spec.command: give either command or script" in err
    assert f"{nested}: DeviceServer/broken: spec.clusterDomain: " in err
    assert len(_sources(out)) == 7, "the others still render"

    empty = tmp_path / "empty"
    empty.mkdir()
    status, out, err = _run(["render", "-f", str(empty)], capsys)
    assert status == 1
    assert "no manifest files" in err


def _variables_read_by(folders: tuple[str, ...]) -> set[str]:
    names: set[str] = set()
    for folder in folders:
        for source in (REPO / folder).rglob("*.py"):
            names |= set(re.findall(r"TANGO_OPERATOR_[A-Z_]*[A-Z]", source.read_text()))
    return names


def test_every_variable_the_code_reads_is_in_the_help() -> None:
    listed = {variable.name for variable in variables.VARIABLES}
    read = _variables_read_by(("tango_operator", "watcher", "workers"))
    assert read - listed == set(), "read by the code but missing from tango_operator.variables"
    assert listed - read == set(), "listed but read by nothing"


@pytest.mark.parametrize(
    ("command", "present", "absent"),
    [
        ("watcher", "TANGO_OPERATOR_RESYNC_SECONDS", "TANGO_OPERATOR_API_RETRIES"),
        ("worker", "TANGO_OPERATOR_API_RETRIES", "TANGO_OPERATOR_RESYNC_SECONDS"),
    ],
)
def test_each_commands_help_lists_its_environment_variables(
    command: str, present: str, absent: str
) -> None:
    script = Path(sys.executable).parent / "tango-operator"
    done = subprocess.run(
        [str(script), command, "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "environment variables" in done.stdout
    assert present in done.stdout
    assert absent not in done.stdout
    assert "TANGO_OPERATOR_REDIS_URL" in done.stdout
    if command == "worker":
        assert "--concurrency" in done.stdout, "Celery's own options follow"


def test_the_command_that_supervises_every_pod_loads_no_client_library() -> None:
    """``tango-operator worker|watcher`` stays the parent of its process all the pod's life.

    What it imports it holds: kombu alone, pulled in once through ``tango_operator.messages``,
    was 6-7 MiB in every worker pod. A fresh interpreter, so no other test's imports count.
    """
    heavy = ("kombu", "celery", "redis", "kubernetes", "urllib3", "jinja2", "tango", "yaml")
    probe = (
        "import sys, tango_operator.cli; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout.strip() == "[]", done.stdout
