"""Where the code under test lives, for the tests that read source files themselves."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OPERATOR_PACKAGES = ("tango_operator", "watcher", "workers")
"""The packages of the operator's wheel (tests/unit/test_packaging.py pins the same set)."""
DEV_PACKAGES = ("devstack", "kubeemu/src")
"""Code of this repository that is never deployed: the local stack and the emulator."""
