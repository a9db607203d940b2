r"""What a name written to the TANGO DB may be: the limits the CRD and the operator enforce.

Data in: the names a DeviceServer gives TANGO — ``spec.dsname`` and ``spec.args`` (the server
instance ``dsname/args``) and, inside ``spec.config``, class, device, alias, property and
attribute names. Data out: ``None`` for a name that round-trips, else the reason it does not,
worded for a CR's status (``tango_operator.crd`` wraps it in a SpecError naming the field).
The CRD schema in ``helm/tango-operator/crds/`` carries the same limits for ``dsname`` and
``args`` (tests/unit/test_tango_names.py keeps the two in step).

Why these limits:

* **ASCII only.** The TANGO DB stores names in Latin-1 columns and the operator reads an
  instance back with ``DbMySqlSelect``; a non-ASCII instance name never matched its
  read-back, so every reconcile wrote the server again (a hot loop of DB writes that reset
  the device's export). Property *values* are not names: any Unicode round-trips.
* **No ``/``, no whitespace** in a word: TANGO splits names on ``/``; ``dsname/args`` is
  also the server's command line. The characters the DB dump puts into SQL unescaped
  (``' " \\ % * ? ;``) are refused in the words that go there (instance, device, class).
* **85 characters** for ``dsname``, ``args`` and each part of a device name: the DB's
  ``device.domain``/``family``/``member`` columns are ``varchar(85)``, and the admin device
  ``dserver/<dsname>/<args>`` puts both in them (MariaDB truncates or refuses longer ones).
  The launcher file ``<dsname>.py`` stays far below Linux's 255-byte file-name limit.
* **No ``*`` and no ``\``** in a class, property or attribute name: the DB reads ``*`` as
  a wildcard, and a class property whose name holds a ``\`` is not found again when it is
  read back (PyTango's DataBaseds), so either was written again by every reconcile.
* **255 characters** for a whole device name, a class, alias, property or attribute name
  and the server instance: the DB's ``varchar(255)`` columns.
"""

from __future__ import annotations

import re

PART_MAX = 85
"""Longest ``dsname``, ``args`` or device-name part (TANGO DB ``varchar(85)`` columns)."""
NAME_MAX = 255
"""Longest whole device name, server instance, class, alias, property or attribute name."""

WORD_CHARACTERS = r"A-Za-z0-9!#$&()+,.:<=>@\[\]^_`{|}~-"
"""Printable ASCII without whitespace, ``/`` and the characters ``' " \\ % * ? ;``."""
WORD_PATTERN = rf"^[{WORD_CHARACTERS}]+$"
"""The CRD's pattern of ``spec.args`` (the same check as :func:`word_problem`)."""
SERVER_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$"
"""The CRD's pattern of ``spec.dsname``: it also names an executable and a file."""

_WORD = re.compile(WORD_PATTERN)
_SERVER = re.compile(SERVER_PATTERN)
_PRINTABLE_ASCII = re.compile(r"^[ -~]+$")


def _length_problem(name: str, limit: int) -> str | None:
    if len(name) > limit:
        return f"is {len(name)} characters long, over TANGO's limit of {limit}"
    return None


def word_problem(name: str, limit: int = PART_MAX) -> str | None:
    """Why ``name`` cannot be an instance name or a part of a device name, or None."""
    if not _WORD.match(name):
        return (
            f"{name!r} must be printable ASCII without whitespace, '/' or any of "
            "' \" \\ % * ? ; (a TANGO name)"
        )
    return _length_problem(name, limit)


def server_problem(name: str) -> str | None:
    """Why ``name`` cannot be a ``dsname`` (server executable name), or None."""
    if not _SERVER.match(name):
        return f"{name!r} must be letters, digits and _ . + - (a TANGO server name)"
    return _length_problem(name, PART_MAX)


def device_problem(name: str) -> str | None:
    """Why ``name`` cannot be a device of the config (``domain/family/member``), or None."""
    parts = name.split("/")
    if len(parts) != 3:
        return f"{name!r} is not a device name of the form domain/family/member"
    for part in parts:
        problem = word_problem(part)
        if problem:
            return f"in {name!r}: {problem}"
    return _length_problem(name, NAME_MAX)


def label_problem(name: str) -> str | None:
    r"""Why ``name`` cannot be a class, alias, property or attribute name, or None.

    Printable ASCII (spaces allowed inside, as Jive allows them), no leading or trailing
    space, no ``*`` or ``\``, at most 255 characters. ``*`` is the DB's wildcard when a
    property is read: a property named ``*`` reads back as the values of every property of
    its owner, so it never matches what was written. A class property named ``\``, ``a\b``
    or ``x\`` is not found when the class's properties are read back, so it too was
    written again by every reconcile. Hypothesis found both (tests/integration/tango/
    test_config_names.py).
    """
    if not _PRINTABLE_ASCII.match(name) or name != name.strip() or "*" in name or "\\" in name:
        return (
            f"{name!r} must be printable ASCII without '*' or '\\' and without leading or "
            "trailing spaces (a TANGO name)"
        )
    return _length_problem(name, NAME_MAX)
