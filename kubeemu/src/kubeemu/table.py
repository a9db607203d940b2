"""``meta.k8s.io/v1`` Table responses, for clients that ask ``Accept: ...;as=Table`` (kubectl get).

Data comes in as the served objects of one list, get or watch event (from ``kubeemu.listing``
and ``kubeemu.watch``), plus either a CRD version's ``additionalPrinterColumns`` (custom
resources) or a built-in column set from ``kubeemu.printers``.  The Table goes out to the HTTP
layer as a JSON dict.  Column definitions, cell values and row objects follow the apiserver
1.31: the CRD table convertor (JSONPath cells via ``kubeemu.jsonpath``, ``type: date`` shown as
an age such as ``5m``, missing values as ``null`` which kubectl prints as ``<none>``) and the
default convertor (Name, Created At) used for CRDs.  Descriptions come from the OpenAPI
documentation in the ``kubernetes-validate`` schemas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from kubeemu import errors, jsonpath
from kubeemu.clone import clone
from kubeemu.schema import builtin_definition
from kubeemu.timefmt import age_of, human_age, parse_timestamp

JsonDict = dict[str, Any]
CellFunction = Callable[[JsonDict, datetime], Any]


@dataclass(frozen=True)
class Column:
    """One table column; its cell comes from ``cell(obj, now)`` or from ``json_path``."""

    name: str
    type: str
    description: str
    format: str = ""
    priority: int = 0
    json_path: str | None = None
    cell: CellFunction | None = None

    def definition(self) -> JsonDict:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }

    def value(self, obj: JsonDict, now: datetime) -> Any:
        if self.cell is not None:
            return self.cell(obj, now)
        if self.json_path is None:
            return None
        return json_path_cell(self.type, self.json_path, obj, now)


# ================================================================================================
# Table assembly
# ================================================================================================
def to_table(
    objects: list[JsonDict],
    *,
    columns: Sequence[Column] | Sequence[JsonDict] | None,
    list_metadata: JsonDict,
    include_object: str = "Metadata",
    now: datetime | None = None,
    api_version: str = "meta.k8s.io/v1",
) -> JsonDict:
    """A Table of ``objects``.

    ``columns`` is a list of :class:`Column` (used as given), a CRD version's
    ``additionalPrinterColumns`` (Name is put first), or None (a custom resource without printer
    columns: Name and Age).  ``list_metadata`` gives ``resourceVersion`` and, for lists,
    ``continue`` and ``remainingItemCount``; for a single GET pass the object's resourceVersion.
    ``include_object`` is the ``includeObject`` query parameter: Metadata (default), Object or
    None; anything else is a 400.
    """
    if include_object not in ("Metadata", "", "Object", "None"):
        raise errors.bad_request(f'unrecognized includeObject value: "{include_object}"')
    resolved = resolve_columns(columns)
    moment = now or datetime.now(UTC)
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": _table_metadata(list_metadata),
        "columnDefinitions": [column.definition() for column in resolved],
        "rows": [_row(obj, resolved, include_object, moment, api_version) for obj in objects],
    }


def resolve_columns(columns: Sequence[Column] | Sequence[JsonDict] | None) -> list[Column]:
    """Column objects for whatever ``to_table`` was given."""
    if columns is None or len(columns) == 0:
        return [name_column(), _crd_age_column()]
    if all(isinstance(column, Column) for column in columns):
        return [column for column in columns if isinstance(column, Column)]
    return printer_columns([column for column in columns if isinstance(column, dict)])


def printer_columns(additional_printer_columns: list[JsonDict]) -> list[Column]:
    """Name, then a CRD version's ``additionalPrinterColumns`` (JSONPath cells)."""
    if not additional_printer_columns:
        return [name_column(), _crd_age_column()]
    result = [name_column()]
    for column in additional_printer_columns:
        json_path = str(column.get("jsonPath", ""))
        default_description = f"Custom resource definition column (in JSONPath format): {json_path}"
        result.append(
            Column(
                name=str(column.get("name", "")),
                type=str(column.get("type", "")),
                format=str(column.get("format", "") or ""),
                description=str(column.get("description") or default_description),
                priority=int(column.get("priority", 0) or 0),
                json_path=json_path,
            )
        )
    return result


def _table_metadata(list_metadata: JsonDict) -> JsonDict:
    metadata: JsonDict = {"resourceVersion": str(list_metadata.get("resourceVersion", ""))}
    if list_metadata.get("continue"):
        metadata["continue"] = list_metadata["continue"]
    if list_metadata.get("remainingItemCount") is not None:
        metadata["remainingItemCount"] = list_metadata["remainingItemCount"]
    return metadata


def _row(
    obj: JsonDict, columns: list[Column], include_object: str, now: datetime, api_version: str
) -> JsonDict:
    row: JsonDict = {"cells": [column.value(obj, now) for column in columns]}
    conditions = _row_conditions(obj)
    if conditions:
        row["conditions"] = conditions
    if include_object == "Object":
        row["object"] = clone(obj)
    elif include_object == "None":
        row["object"] = None
    else:
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": api_version,
            "metadata": clone(obj.get("metadata", {})),
        }
    return row


def _row_conditions(obj: JsonDict) -> list[JsonDict]:
    """Finished pods carry a ``Completed`` row condition (kubectl hides them unless -a)."""
    if obj.get("kind") != "Pod":
        return []
    phase = obj.get("status", {}).get("phase")
    messages = {"Succeeded": "The pod has completed successfully.", "Failed": "The pod failed."}
    if phase not in messages:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": messages[phase]}]


def json_path_cell(column_type: str, path: str, obj: JsonDict, now: datetime) -> Any:
    """The cell of a CRD printer column, like the apiextensions table convertor builds it."""
    try:
        results = jsonpath.evaluate(path, obj)
    except ValueError:
        return None
    if not results:
        return None
    value = results[0]
    if column_type == "string":
        return jsonpath.print_value(value)
    return _typed_cell(column_type, value, now)


def _typed_cell(column_type: str, value: Any, now: datetime) -> Any:
    if value is None or (isinstance(value, bool) and column_type in ("integer", "number")):
        return None
    if column_type == "integer" and isinstance(value, int | float):
        return int(value)
    if column_type == "number" and isinstance(value, int | float):
        return float(value)
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if column_type == "date" and isinstance(value, str):
        moment = parse_timestamp(value)
        return "<invalid>" if moment is None else human_age(moment, now)
    return None


def _created_at(obj: JsonDict, _now: datetime) -> str:
    """The default convertor's ``Created At``: the raw RFC 3339 UTC timestamp."""
    moment = parse_timestamp(str(obj.get("metadata", {}).get("creationTimestamp") or ""))
    if moment is None:
        return "0001-01-01T00:00:00Z"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ================================================================================================
# Columns every kind can have
# ================================================================================================
@cache
def field_doc(definition: str, field: str) -> str:
    """A field's OpenAPI description (the Go type's SwaggerDoc)."""
    node = builtin_definition(definition)
    return str(node.property(field).raw.get("description", "")) if node.known else ""


_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def name_column(priority: int = 0) -> Column:
    return Column(
        name="Name",
        type="string",
        format="name",
        description=field_doc(_OBJECT_META, "name"),
        priority=priority,
        cell=lambda obj, _now: str(obj.get("metadata", {}).get("name", "")),
    )


def age_column() -> Column:
    return Column(
        name="Age",
        type="string",
        description=field_doc(_OBJECT_META, "creationTimestamp"),
        cell=lambda obj, now: age_of(obj.get("metadata", {}).get("creationTimestamp"), now),
    )


def _crd_age_column() -> Column:
    """The Age column the apiserver adds for a CRD version without printer columns."""
    return Column(
        name="Age",
        type="date",
        description=field_doc(_OBJECT_META, "creationTimestamp"),
        json_path=".metadata.creationTimestamp",
    )


def default_columns() -> list[Column]:
    """The default table convertor (kinds without a printer, e.g. CRDs): Name, Created At."""
    return [
        name_column(),
        Column(
            name="Created At",
            type="date",
            description=field_doc(_OBJECT_META, "creationTimestamp"),
            cell=_created_at,
        ),
    ]
