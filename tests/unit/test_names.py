"""tango_operator.names: child names fit Kubernetes' limits, are stable, never collide."""

from __future__ import annotations

import re

from hypothesis import assume, given
from hypothesis import strategies as st

from tango_operator import names

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

# CR names as a DeviceServer may carry them (no dots: see the report on names with dots)
cr_names = st.from_regex(r"\A[a-z]([-a-z0-9]{0,300}[a-z0-9])?\Z")
long_names = st.from_regex(r"\A[a-z][-a-z0-9]{70,300}[a-z0-9]\Z")
limits = st.integers(min_value=names.STATEFULSET_NAME_MAX, max_value=names.DNS_SUBDOMAIN_MAX)


@given(cr_names, limits)
def test_shortened_names_fit_and_never_end_with_a_dash(name: str, limit: int) -> None:
    short = names.shorten(name, limit)
    assert len(short) <= limit
    assert not short.endswith(("-", "."))
    assert short == names.shorten(name, limit)  # stable


@given(cr_names, limits)
def test_names_that_fit_are_unchanged(name: str, limit: int) -> None:
    assume(len(name) <= limit)
    assert names.shorten(name, limit) == name


@given(long_names, long_names)
def test_different_long_names_stay_different(first: str, second: str) -> None:
    assume(first != second)
    for shorten in (names.service, names.statefulset, names.label_value):
        assert shorten(first) != shorten(second)


def test_a_shared_long_prefix_does_not_collide() -> None:
    prefix = "ska-mid-cbf-" + "x" * 80
    first, second = names.statefulset(prefix + "-a"), names.statefulset(prefix + "-b")
    assert first != second
    assert first[:30] == second[:30]  # still recognisable
    assert len(first) == len(second) == names.STATEFULSET_NAME_MAX


def test_shortening_drops_a_dash_before_the_hash() -> None:
    # the cut would end on '-' right before the hash separator
    name = "a" * (names.DNS_LABEL_MAX - 10) + "-" + "b" * 20
    short = names.service(name)
    assert "--" not in short
    assert len(short) <= names.DNS_LABEL_MAX


@given(cr_names)
def test_child_name_kinds_respect_their_own_limits(name: str) -> None:
    service = names.service(name, "-tangodb")
    statefulset = names.statefulset(name, "-tangodb")
    assert len(service) <= names.DNS_LABEL_MAX
    assert _DNS_LABEL.match(service)
    # pods are <statefulset>-<ordinal> and carry controller-revision-hash=<statefulset>-<hash>
    assert len(statefulset) + 11 <= names.DNS_LABEL_MAX
    assert _DNS_LABEL.match(statefulset)
    assert len(names.config_map(name, "-config")) <= names.DNS_SUBDOMAIN_MAX
    assert len(names.persistent_volume_claim(name, "-tangodb-storage")) <= 253
    assert len(names.secret(name, "-tangodb-credentials")) <= 253
    label = names.label_value(name)
    assert len(label) <= 63
    assert _DNS_LABEL.match(label)


def test_short_names_are_the_cr_name_plus_suffix() -> None:
    assert names.service("tangotest-test") == "tangotest-test"
    assert names.statefulset("databaseds-tango-base", "-tangodb") == (
        "databaseds-tango-base-tangodb"
    )
    assert names.config_map("tangotest-test", "-config") == "tangotest-test-config"
    assert names.label_value("tangotest-test") == "tangotest-test"


def test_names_that_are_no_dns_labels_are_rewritten_with_a_hash() -> None:
    dotted = names.service("tango.motor")
    dashed = names.service("tango-motor")
    assert dashed == "tango-motor"
    assert dotted.startswith("tango-motor-")
    assert dotted != dashed, "a rewritten name must not collide with the plain one"
    leading_digit = names.statefulset("1st-motor")
    assert leading_digit[0].isalpha()
    for name in (dotted, leading_digit, names.service("UPPER.case")):
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), name
        assert len(name) <= 63
