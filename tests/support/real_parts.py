"""Skip, or fail under CI, a test whose real part (a server, a Debian package) cannot run here.

Used by the fixtures that start real programs (``tests/integration/tango/conftest.py``'s
``mariadb``): on a developer's machine a missing part skips the test with the reason; when
``CI=true`` is in the environment (as ``.ci/run`` is run), where ``make system-deps`` has
installed everything, the same reason fails the test instead, so a tier cannot go missing
silently.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether this run is CI's (``CI=true``, any case)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """``pytest.fail`` with ``reason`` under ``CI=true``, else ``pytest.skip``."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a real part that cannot run is a failure)", pytrace=False)
    pytest.skip(reason)
