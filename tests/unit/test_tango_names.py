"""tango_operator.tango_names: the limits of names written to the TANGO DB, and the CRD's copy.

The CRD schema rejects a bad ``dsname`` or ``args`` before the operator sees it; the same
limits in the operator catch what slips through (a CRD installed before them). The two are
kept in step here (and tests/integration/test_crds.py checks the schema and the parser agree
on every example).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tango_operator import tango_names

CRD = (
    Path(__file__).parents[2]
    / "helm/tango-operator/crds/deviceservers.tango.tango-controls.org.yaml"
)


def _spec_schema() -> dict[str, Any]:
    document = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in document["spec"]["versions"] if v["name"] == "v1"]
    properties: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]
    return properties


def test_the_crd_carries_the_operators_limits() -> None:
    properties = _spec_schema()
    assert properties["dsname"]["pattern"] == tango_names.SERVER_PATTERN
    assert properties["dsname"]["maxLength"] == tango_names.PART_MAX
    assert properties["args"]["pattern"] == tango_names.WORD_PATTERN
    assert properties["args"]["maxLength"] == tango_names.PART_MAX


@pytest.mark.parametrize(
    ("name", "admitted"),
    [
        ("test", True),
        ("ps-2", True),
        ("01", True),
        ("a.b_c+d#e:f", True),
        ("x" * 85, True),
        ("x" * 86, False),
        ("ünïcødé", False),
        ("a b", False),
        ("a/b", False),
        ("50%", False),
        ("it's", False),
        ("", False),
    ],
)
def test_instance_names(name: str, admitted: bool) -> None:
    assert (tango_names.word_problem(name) is None) == admitted


@pytest.mark.parametrize(
    ("name", "admitted"),
    [
        ("sys/tg_test/1", True),
        ("/".join(["p" * 85] * 3), False),  # 257 characters: every part fits, the whole does not
        ("/".join(["p" * 85, "q" * 85, "r" * 83]), True),
        ("a/b", False),
        ("a/b/c/d", False),
        ("a/bé/c", False),
        ("a/b c/d", False),
    ],
)
def test_device_names(name: str, admitted: bool) -> None:
    assert (tango_names.device_problem(name) is None) == admitted


def test_launcher_file_name_fits_the_kernels_limit() -> None:
    assert len(("D" * tango_names.PART_MAX + ".py").encode()) <= 255
