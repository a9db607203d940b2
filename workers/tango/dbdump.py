"""The current TANGO DB state of one server instance, in dsconfig's format, made exact.

Read from a ``tango.Database`` with dsconfig's own bulk dump (``get_servers_with_filters``:
three ``DbMySqlSelect`` queries) for the devices, and with the DB API for the class
properties the document names. What comes out is the ``original`` that dsconfig's diff
(``dsconfig.configure.configure``) compares the document with, after three corrections
that make an unchanged document diff to nothing (see docs/tango.md):

* ``DbMySqlSelect`` returns SQL NULL as an empty string. dsconfig reads the NULL alias of
  every device without one as the alias ``""`` and, on PyTango's sqlite DataBaseds where
  the newest device comes last, deletes that "alias" on every apply. Empty aliases are
  dropped here, and aliases are handled in :mod:`workers.tango.config`, not by dsconfig.
* ``DbMySqlSelect`` strings arrive decoded as Latin-1, while PyTango writes property values
  as UTF-8: a value with non-ASCII characters never compared equal and was rewritten on
  every apply. Strings are re-decoded as UTF-8 where they are valid UTF-8.
* The dump selects servers with SQL ``LIKE`` (``_`` matches any character) and keeps the
  DB's spelling of names; it is cut to exactly this server instance and re-keyed with the
  document's spelling of server, instance and class names (dsconfig looks those up
  case-sensitively even in its case-insensitive mode).
"""

from __future__ import annotations

from typing import Any

from dsconfig.tangodb import get_servers_with_filters

JsonDict = dict[str, Any]


def redecode(text: str) -> str:
    """A ``DbMySqlSelect`` string as PyTango's property API would have returned it."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _clean(value: Any) -> Any:
    """Plain dicts and lists of re-decoded strings (dsconfig's dicts are subclasses)."""
    if isinstance(value, dict):
        return {redecode(str(key)): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    if isinstance(value, str):
        return redecode(value)
    return value


def _spelling(names: Any, wanted: str) -> str:
    """The key of ``names`` that matches ``wanted`` case-insensitively, else ``wanted``."""
    for name in names:
        if str(name).lower() == wanted.lower():
            return str(name)
    return wanted


def dump_instance(
    database: Any, server: str, instance: str, classes: list[str], *, timeout: float
) -> dict[str, JsonDict]:
    """``{class: {device: {properties, attribute_properties, alias}}}`` of the instance.

    ``classes`` are the document's class names; DB classes that match one of them
    case-insensitively are re-keyed to the document's spelling.
    """
    raw = get_servers_with_filters(
        database, server=f"{server}/{instance}", timeout=max(1, round(timeout))
    ).to_dict()
    found: dict[str, JsonDict] = {}
    for db_server, instances in _clean(raw).items():
        if db_server.lower() != server.lower():
            continue
        for db_instance, db_classes in instances.items():
            if db_instance.lower() != instance.lower():
                continue
            for db_class, devices in db_classes.items():
                name = _spelling(classes, db_class)
                target = found.setdefault(name, {})
                for device, body in devices.items():
                    if not body.get("alias"):
                        body.pop("alias", None)
                    target[device] = body
    return found


def dump_classes(database: Any, classes: list[str]) -> dict[str, JsonDict]:
    """Read ``{class: {properties, attribute_properties}}`` as the DB holds them.

    All of them, so that properties dropped from the document are seen and removed.
    """
    found: dict[str, JsonDict] = {}
    for name in classes:
        entry: JsonDict = {}
        property_names = [str(p) for p in database.get_class_property_list(name)]
        if property_names:
            values = database.get_class_property(name, property_names)
            properties = {str(k): [str(v) for v in vs] for k, vs in values.items() if len(vs)}
            if properties:
                entry["properties"] = properties
        attributes = [str(a) for a in database.get_class_attribute_list(name, "*")]
        if attributes:
            values = database.get_class_attribute_property(name, attributes)
            attribute_properties = {
                str(attribute): {str(k): [str(v) for v in vs] for k, vs in props.items()}
                for attribute, props in values.items()
                if props
            }
            if attribute_properties:
                entry["attribute_properties"] = attribute_properties
        if entry:
            found[name] = entry
    return found
