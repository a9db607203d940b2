"""Apply a DeviceServer's dsconfig document to the TANGO DB, and remove a server instance.

Data in: a ``tango.Database`` (from :mod:`workers.tango.connections`), the server instance
``Server/instance`` and its dsconfig JSON document (``tango_operator.crd.TangoConfig.document``:
this instance plus ``classes``). Data out: the TANGO DB changed to match (devices, device
properties, attribute properties, aliases, class properties), and whether anything was
written.

The diff is dsconfig's (``prepare_config`` → ``configure`` recording the DB calls on an
``ObjectWrapper``), with json2tango's write semantics in one of two modes
(``tango_operator.crd.ConfigMode``, docs/tango.md):

* ``Update`` (``json2tango -w -a -u``, as the SKA charts ran it): devices and properties are
  added and changed, never removed; what the document does not list stays (a property set
  at run time in Jive, say), and a property given as ``[]`` is left alone;
* ``Declarative`` (``json2tango -w -a``): devices of the instance missing from the document
  are deleted, properties missing from it are deleted (except dsconfig's protected ones:
  memorized ``__value``, ``polled_attr``, ...), ``"properties": {}`` clears them and a
  property given as ``[]`` is deleted, protected or not.

In both, aliases of the document's devices follow the document (json2tango's pre-step,
which ``-u`` does not skip either). Differences from json2tango, on purpose:

* a device (or alias) registered to another server instance is a ConfigConflictError;
  json2tango moves it and deletes the server it emptied;
* only this server instance is read from the DB (not the whole DB), through
  :mod:`workers.tango.dbdump`, whose corrections make a second identical apply write
  nothing; aliases are diffed here, without dsconfig's NULL-as-"" mistake;
* in Declarative mode, a class of the instance that the document no longer lists loses its
  devices too;
* attribute property names are not checked against dsconfig's list (json2tango ``-a``,
  as the SKA charts ran it).
"""

from __future__ import annotations

import copy
from typing import Any

from dsconfig.configure import configure
from dsconfig.json2tango import prepare_config
from dsconfig.utils import ObjectWrapper

from tango_operator.crd import ConfigMode
from workers.reconcile.ports import ConfigConflictError
from workers.tango import dbdump
from workers.tango.calls import describe, reasons, unavailable

JsonDict = dict[str, Any]
_UNSAFE = set("'\"\\%*?; \t\r\n")
"""Characters that cannot be used in a name the DB dump puts into SQL."""


class DatabaseUnreachableError(Exception):
    """The DB could not be reached during an apply (mapped to TangoUnavailableError)."""


def _split_instance(server_instance: str) -> tuple[str, str]:
    server, sep, instance = server_instance.partition("/")
    if not sep or not server or not instance or "/" in instance:
        raise ValueError(f"{server_instance!r} is not a server instance Server/instance")
    if _UNSAFE & set(server_instance):
        raise ValueError(f"server instance {server_instance!r} contains unsupported characters")
    return server, instance


def _own_instance(config: JsonDict, server: str, instance: str) -> JsonDict | None:
    """``{class: {device: body}}`` of this instance in the document, None if absent."""
    mine: JsonDict | None = None
    others: list[str] = []
    for doc_server, instances in (config.get("servers") or {}).items():
        for doc_instance, classes in instances.items():
            if (doc_server.lower(), doc_instance.lower()) == (server.lower(), instance.lower()):
                mine = classes
            else:
                others.append(f"{doc_server}/{doc_instance}")
    if others:
        raise ValueError(f"the document also describes other server instances: {others}")
    return mine


def _check_properties(body: Any, path: str) -> None:
    """Property values must be lists of strings (what the DB stores and gives back)."""
    if not isinstance(body, dict):
        raise ValueError(f"{path} must be an object")
    groups = [(f"{path}.properties", body.get("properties") or {})]
    for attribute, props in (body.get("attribute_properties") or {}).items():
        groups.append((f"{path}.attribute_properties.{attribute}", props))
    for where, props in groups:
        if not isinstance(props, dict):
            raise ValueError(f"{where} must be an object")
        for name, values in props.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"{where}.{name} must be a list of strings")
    if "alias" in body and not isinstance(body["alias"], str):
        raise ValueError(f"{path}.alias must be a string")


def _check_values(config: JsonDict) -> None:
    for server, instances in (config.get("servers") or {}).items():
        for instance, classes in instances.items():
            for class_name, devices in classes.items():
                for device, body in devices.items():
                    _check_properties(body, f"servers.{server}.{instance}.{class_name}.{device}")
    for class_name, body in (config.get("classes") or {}).items():
        _check_properties(body, f"classes.{class_name}")


def _guard(exc: Exception, doing: str) -> Exception:
    """The exception to raise for a failed DB call: unreachable, or refused (ValueError)."""
    if unavailable(exc):
        return DatabaseUnreachableError(f"{doing}: {describe(exc)}")
    return ValueError(f"the TANGO DB refused {doing}: {describe(exc)}")


def _owner(database: Any, device: str) -> str | None:
    """The server instance a device is registered to, None if it is not defined."""
    try:
        return str(database.get_device_info(device).ds_full_name)
    except Exception as exc:
        if "DB_DeviceNotDefined" in reasons(exc):
            return None
        raise _guard(exc, f"get_device_info({device})") from exc


def _alias_owner(database: Any, alias: str) -> str | None:
    try:
        return str(database.get_device_from_alias(alias))
    except Exception as exc:
        if any(r.startswith("DB_") for r in reasons(exc)):
            return None  # DB_SQLError / DB_AliasNotDefined: no such alias
        raise _guard(exc, f"get_device_from_alias({alias})") from exc


def check_claims(database: Any, server_instance: str, classes: JsonDict) -> None:
    """ConfigConflictError if a device or alias of the document belongs to another instance."""
    mine = server_instance.lower()
    conflicts: list[str] = []
    devices = {str(d).lower() for devs in classes.values() for d in devs}
    for devs in classes.values():
        for device, body in devs.items():
            owner = _owner(database, device)
            if owner is not None and owner.lower() != mine:
                conflicts.append(f"device {device} is registered to server {owner}")
            alias = (body or {}).get("alias")
            if alias:
                holder = _alias_owner(database, alias)
                if holder and holder.lower() not in devices:
                    holder_server = _owner(database, holder)
                    if holder_server and holder_server.lower() != mine:
                        conflicts.append(
                            f"alias {alias} belongs to device {holder} of server {holder_server}"
                        )
    if conflicts:
        raise ConfigConflictError(
            f"{'; '.join(conflicts)}, not to {server_instance} (remove it there first)"
        )


def _alias_calls(wrapper: Any, database: Any, classes: JsonDict, current: JsonDict) -> None:
    """Deletions of aliases that the document drops or moves (dsconfig's pre-step, fixed)."""
    in_db = {
        str(device).lower(): str(body["alias"])
        for devs in current.values()
        for device, body in devs.items()
        if body.get("alias")
    }
    wanted = {
        str(device).lower(): str((body or {})["alias"])
        for devs in classes.values()
        for device, body in devs.items()
        if (body or {}).get("alias")
    }
    deleted: set[str] = set()
    listed = {str(d).lower() for devs in classes.values() for d in devs}
    for device, alias in sorted(in_db.items()):
        if device in listed and wanted.get(device, "").lower() != alias.lower():
            wrapper.delete_device_alias(alias)
            deleted.add(alias.lower())
    for device, alias in sorted(wanted.items()):
        holder = _alias_owner(database, alias)
        if holder and holder.lower() != device and alias.lower() not in deleted:
            wrapper.delete_device_alias(alias)  # moved between devices of this instance
            deleted.add(alias.lower())


def _drop_empty_aliases(classes: JsonDict) -> None:
    """Take out ``"alias": ""``, which means no alias (as the parser reads it).

    dsconfig would write the empty alias at every apply: the DB has nothing to read back.
    """
    for devices in classes.values():
        for body in devices.values():
            if isinstance(body, dict) and body.get("alias") == "":
                del body["alias"]


def plan(
    database: Any, server_instance: str, document: JsonDict, *, mode: ConfigMode, timeout: float
) -> list[Any]:
    """The DB calls (method, args, kwargs) that write the document in ``mode``."""
    update = mode == ConfigMode.UPDATE
    server, instance = _split_instance(server_instance)
    if "devices" in document:
        raise ValueError("the top-level 'devices' form of dsconfig is not supported")
    try:
        config = prepare_config(copy.deepcopy(document))
    except Exception as exc:
        raise ValueError(f"not a dsconfig document: {exc}") from exc
    try:
        _check_values(config)
    except (AttributeError, TypeError) as exc:
        raise ValueError(f"not a dsconfig document: {exc}") from exc
    classes = _own_instance(config, server, instance)
    if classes is not None:
        _drop_empty_aliases(classes)
    class_names = list((config.get("classes") or {}).keys())
    try:
        original: JsonDict = {"servers": {}, "classes": {}}
        if classes is not None:
            check_claims(database, server_instance, classes)
            current = dbdump.dump_instance(
                database, server, instance, list(classes), timeout=timeout
            )
            dropped = set() if update else set(current) - set(classes)
            classes.update({name: {} for name in dropped})  # their devices go (Declarative)
            original["servers"] = {server: {instance: current}}
            config["servers"] = {server: {instance: classes}}
        original["classes"] = dbdump.dump_classes(database, class_names)
    except (ConfigConflictError, DatabaseUnreachableError, ValueError):
        raise
    except Exception as exc:
        raise _guard(exc, "reading the DB") from exc
    wrapper = ObjectWrapper()
    if classes is not None:
        _alias_calls(wrapper, database, classes, original["servers"][server][instance])
    try:
        configure(
            config,
            original,
            update=update,
            ignore_case=True,
            strict_attr_props=False,
            db=wrapper,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"dsconfig cannot use this document: {exc!r}") from exc
    return list(wrapper.calls)


def apply(
    database: Any, server_instance: str, document: JsonDict, *, mode: ConfigMode, timeout: float
) -> bool:
    """Write the planned calls; True when the DB was changed."""
    calls = plan(database, server_instance, document, mode=mode, timeout=timeout)
    for method, args, kwargs in calls:
        try:
            getattr(database, method)(*args, **kwargs)
        except Exception as exc:
            raise _guard(exc, f"{method}{tuple(args)!r}") from exc
    return bool(calls)


def _delete_server(database: Any, server_instance: str) -> None:
    """Rows left behind by a concurrent writer; the C++ DB says "not defined" when none."""
    try:
        database.delete_server(server_instance)
    except Exception as exc:
        if "DB_IncorrectServerName" not in reasons(exc):
            raise


def remove(database: Any, server_instance: str) -> None:
    """Delete the server instance, its devices and their properties (gone already: fine)."""
    _split_instance(server_instance)
    try:
        listing = list(database.get_device_class_list(server_instance))
        for device in listing[0::2]:
            database.delete_device(device)  # the device row, its properties, attribute props
        if listing:
            _delete_server(database, server_instance)
        database.delete_server_info(server_instance)
    except Exception as exc:
        raise _guard(exc, f"removing {server_instance}") from exc
