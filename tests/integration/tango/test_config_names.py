"""No input makes the operator write the same configuration twice (real DataBaseds).

Hypothesis draws whole DeviceServers — instance, class, device, alias, property and attribute
names from alphabets wider than TANGO's (non-ASCII letters, spaces, quotes, SQL wildcards,
very long names) and property values from any Unicode text. What the operator's parser
(``tango_operator.crd.parse_device_server``, the same checks as the CRD schema for
``dsname``/``args``) refuses is an Error in the CR and never reaches TANGO; everything it
accepts is applied to PyTango's DataBaseds twice, in either configuration mode each time, and
the second apply must find nothing to do — a read-back that differs from what was written
would rewrite the server at every reconcile (issue 18: a non-ASCII ``args`` did, ~95 times in
3.5 minutes). On the C++ DataBaseds (MariaDB) the longest names the limits admit are applied
twice the same way.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tango_operator import crd, tango_names
from tests.support.tango_db import PyTangoDatabase
from workers.tango import PyTangoPort

JsonDict = dict[str, Any]
_runs = itertools.count()

# Mostly TANGO's own alphabet, sometimes wider on purpose (non-ASCII letters, spaces,
# quotes, SQL wildcards, '/', past the length limits): the parser decides what gets through.
_WORD = st.text(st.sampled_from(list("abcXYZ019_-.+#:@()[]{}~!$&=<>,^`|")), min_size=1, max_size=12)
_WIDE = st.text(st.sampled_from(list("aZ0_ '\"\\%*?;/é日\t")), min_size=1, max_size=12)
_LIMITS = st.sampled_from(["x" * tango_names.PART_MAX, "x" * (tango_names.PART_MAX + 1)])
_names = st.sampled_from(["word"] * 8 + ["wide", "limit"]).flatmap(
    lambda kind: {"word": _WORD, "wide": _WIDE, "limit": _LIMITS}[kind]
)
_values = st.lists(st.text(max_size=20), max_size=3)
_modes = st.sampled_from(list(crd.ConfigMode))


@st.composite
def device_servers(draw: st.DrawFn) -> JsonDict:
    """A DeviceServer resource whose config names one device of this instance."""
    instance = draw(_names)
    device = "/".join(draw(st.lists(_names, min_size=3, max_size=3)))
    body: JsonDict = {
        "properties": draw(st.dictionaries(_names, _values, max_size=3)),
        "attribute_properties": draw(
            st.dictionaries(_names, st.dictionaries(_names, _values, max_size=2), max_size=2)
        ),
    }
    alias = draw(st.none() | _names)
    if alias is not None:
        body["alias"] = alias
    class_name = draw(_names)
    config = {
        "servers": {"NameServer": {instance: {class_name: {device: body}}}},
        "classes": {class_name: {"properties": draw(st.dictionaries(_names, _values, max_size=2))}},
    }
    return {
        "metadata": {"name": "names", "namespace": "default"},
        "spec": {
            "dsname": "NameServer",
            "args": instance,
            "command": "/bin/true",
            "databaseds": "db",
            "image": "x",
            "config": json.dumps(config),
        },
    }


def _accepted(resource: JsonDict) -> crd.DeviceServerSpec | None:
    try:
        return crd.parse_device_server(resource)
    except crd.SpecError:
        return None


def _unique(resource: JsonDict) -> JsonDict:
    """The same resource with device, alias and class names no earlier example used.

    One DB per module: class properties are shared by every server of the class, and what an
    earlier example left there would be the second apply's to remove in Declarative mode.
    """
    run = next(_runs)
    config = json.loads(resource["spec"]["config"])
    (instances,) = config["servers"].values()
    ((instance, classes),) = instances.items()
    ((drawn_class, devices),) = classes.items()
    ((device, body),) = devices.items()
    class_name = f"{drawn_class[: tango_names.NAME_MAX - 7]}n{run:06d}"
    config["classes"] = {class_name: config["classes"][drawn_class]}
    parts = device.split("/")
    if len(parts) == 3:  # else the parser refuses it anyway
        device = "/".join([f"{parts[0][: tango_names.PART_MAX - 7]}n{run:06d}", *parts[1:]])
    if body.get("alias"):
        body["alias"] = f"{body['alias'][: tango_names.NAME_MAX - 8]}n{run:06d}"
    config["servers"] = {"NameServer": {instance: {class_name: {device: body}}}}
    return {**resource, "spec": {**resource["spec"], "config": json.dumps(config)}}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
@pytest.mark.slow
@given(resource=device_servers(), first=_modes, then=_modes)
def test_whatever_the_parser_admits_is_written_once(
    tango_db: PyTangoDatabase,
    port: PyTangoPort,
    resource: JsonDict,
    first: crd.ConfigMode,
    then: crd.ConfigMode,
) -> None:
    """In either mode, after either: both write what the document lists, the same way."""
    spec = _accepted(_unique(resource))
    assume(spec is not None and spec.config is not None)
    assert spec is not None
    assert spec.config is not None
    port.remove_server(tango_db.tango_host, spec.server_instance)  # a shrunk example reruns
    port.apply_config(tango_db.tango_host, spec.server_instance, spec.config.document, mode=first)
    before = tango_db.snapshot()
    second = port.apply_config(
        tango_db.tango_host, spec.server_instance, spec.config.document, mode=then
    )
    assert not second.changed, (first, then, spec.config.document)
    assert tango_db.snapshot() == before


def test_a_non_ascii_instance_is_refused_before_it_reaches_tango() -> None:
    """The example of issue 18: refused by the parser (and the CRD), naming the field."""
    resource = {
        "metadata": {"name": "u", "namespace": "default"},
        "spec": {
            "dsname": "NameServer",
            "args": "ünïcødé",
            "command": "/bin/true",
            "databaseds": "db",
            "image": "x",
        },
    }
    with pytest.raises(crd.SpecError) as refused:
        crd.parse_device_server(resource)
    assert refused.value.field == "spec.args"
