"""The operator's wheel holds the operator only: no emulator, no local stack, no tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _build_wheel(directory: Path) -> Path:
    """Build from a clean copy of the tree: a stale ``build/`` would hide what is packaged."""
    source = directory / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv*", ".tools", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--wheel-dir", str(directory), str(source)),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = directory.glob("tango_operator-*.whl")
    return wheel


def test_the_wheel_holds_the_core_the_watcher_and_the_workers_only(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    packages = {name for name in top_level if not name.endswith(".dist-info")}
    assert packages == {"tango_operator", "watcher", "workers"}, sorted(top_level)
    assert "tango_operator/keys.py" in names
    assert "workers/reconcile/deviceserver.py" in names
    assert not [name for name in names if "kubeemu" in name or "devstack" in name]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "tango-operator = tango_operator.cli:main" in scripts
    assert "kubeemu" not in scripts
