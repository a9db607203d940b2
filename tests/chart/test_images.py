"""The operator's images: how `make images` builds them and how the chart names them.

``scripts/build-images.sh`` runs a container engine; this machine has none, so the engine is
a recording script put in its place (``ENGINE``), and what is checked is the command line the
script gives it — the Dockerfile's targets, the names and tags the chart pulls. The chart
side is ``helm template`` with ``global.imageRegistry``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.chart.chart import CHART, find, render

REPO = CHART.parents[1]
SCRIPT = REPO / "scripts" / "build-images.sh"
RECORDER = """#!/bin/sh
echo "$@" >> "{log}"
"""


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("REGISTRY", "TAG", "PUSH", "ENGINE")}
    return subprocess.run(
        [str(SCRIPT)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )


def _engine(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "engine.log"
    engine = tmp_path / "engine"
    engine.write_text(RECORDER.format(log=log))
    engine.chmod(0o755)
    return engine, log


def test_without_an_engine_it_says_what_is_missing(tmp_path: Path) -> None:
    result = _run(tmp_path, PATH="/usr/bin:/bin", ENGINE="")
    assert result.returncode == 2
    assert "no container engine found: install docker or podman" in result.stderr


def test_the_three_targets_under_the_charts_names_pushed_to_the_registry(tmp_path: Path) -> None:
    engine, log = _engine(tmp_path)
    result = _run(tmp_path, ENGINE=str(engine), REGISTRY="reg.example.org/tango/", PUSH="1")
    assert result.returncode == 0, result.stderr
    version = next(
        line.split('"')[1]
        for line in (REPO / "pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )
    image = "reg.example.org/tango/tango-operator-{}:" + version
    assert log.read_text().splitlines() == [
        line
        for target in ("watcher", "worker", "flower")
        for line in (
            f"build --target {target} --tag {image.format(target)} .",
            f"push {image.format(target)}",
        )
    ]
    assert "--set global.imageRegistry=reg.example.org/tango" in result.stdout


def test_push_without_a_registry_is_refused(tmp_path: Path) -> None:
    engine, log = _engine(tmp_path)
    result = _run(tmp_path, ENGINE=str(engine), PUSH="1")
    assert result.returncode == 2
    assert "PUSH=1 needs REGISTRY" in result.stderr
    assert not log.exists(), "nothing built"


def test_the_chart_pulls_from_the_global_registry(tmp_path: Path) -> None:
    objects = render(
        "--set", "global.imageRegistry=reg.example.org/tango/", "--set", "worker.image.tag=1.2.3",
        workdir=tmp_path,
    )  # fmt: skip
    images = {
        suffix: find(objects, "Deployment", suffix)["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
        for suffix in ("-watcher", "-worker", "-flower")
    }
    assert images["-watcher"].startswith("reg.example.org/tango/tango-operator-watcher:")
    assert images["-worker"] == "reg.example.org/tango/tango-operator-worker:1.2.3"
    assert images["-flower"].startswith("reg.example.org/tango/tango-operator-flower:")
    redis = find(objects, "StatefulSet", "-redis")["spec"]["template"]["spec"]["containers"][0]
    assert redis["image"].startswith("docker.io/library/redis:"), "Redis keeps its own"
