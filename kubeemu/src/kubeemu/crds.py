"""CustomResourceDefinitions themselves: defaulting, validation, the accepted status, schemas.

Data comes in as a CustomResourceDefinition object written through the API.  The admission
layer (``kubeemu.admission``) defaults it (:func:`default_crd`), validates it
(:func:`validate_crd`: group, scope, names, versions, structural schemas; the causes become a
422 Status via ``kubeemu.errors.invalid``) and gives it the status the naming and establishing
controllers would (:func:`established_crd_status`); ``kubeemu.registry`` takes a version's
schema with :func:`version_schema`.  Rules and texts are the apiextensions-apiserver's (1.31).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubeemu.clone import clone
from kubeemu.fielderrors import (
    INVALID,
    NOT_SUPPORTED,
    REQUIRED,
    Cause,
    field_cause,
)
from kubeemu.goformat import go_json
from kubeemu.names import dns1035_label_errors, dns1123_subdomain_errors
from kubeemu.schema import SchemaNode, crd_schema

JsonDict = dict[str, Any]


def default_crd(crd: JsonDict, *, copy: bool = True) -> JsonDict:
    """apiextensions.k8s.io/v1 defaulting: names.singular, names.listKind, conversion None.

    A defaulted copy, or ``crd`` itself defaulted in place when not ``copy``.
    """
    result = clone(crd) if copy else crd
    spec = result.setdefault("spec", {})
    if not isinstance(spec, dict):
        return result
    names = spec.setdefault("names", {})
    kind = str(names.get("kind") or "") if isinstance(names, dict) else ""
    if kind and not names.get("singular"):
        names["singular"] = kind.lower()
    if kind and not names.get("listKind"):
        names["listKind"] = kind + "List"
    if spec.get("conversion") is None:
        spec["conversion"] = {"strategy": "None"}
    return result


def validate_crd(crd: JsonDict) -> list[Cause]:
    """The CRD rules the apiserver enforces (names, group, scope, versions, schemas)."""
    defaulted = default_crd(crd)
    spec: JsonDict = defaulted["spec"]
    names: JsonDict = spec.get("names") or {}
    group = str(spec.get("group") or "")
    causes: list[Cause] = []
    name = str(defaulted.get("metadata", {}).get("name") or "")
    if name != f"{names.get('plural') or ''}.{group}":
        detail = 'must be spec.names.plural+"."+spec.group'
        causes.append(field_cause("metadata.name", INVALID, detail, value=name))
    causes += _validate_crd_group(group)
    causes += _validate_crd_scope(str(spec.get("scope") or ""))
    causes += _validate_crd_versions(spec.get("versions") or [])
    causes += _validate_crd_names(names)
    return causes


def validate_crd_stored_versions(crd: JsonDict) -> list[Cause]:
    """On an update: every version in ``status.storedVersions`` must still be in spec.versions.

    Upstream's ValidateCustomResourceDefinitionStoredVersions (its other rules cannot fail
    here: the storage version is added to the stored ones on every write, as PrepareForUpdate
    does). Objects may still be stored at a version left out, so it stays until a client (a
    storage migration) takes it out of the status.
    """
    spec = crd.get("spec")
    versions = (spec.get("versions") if isinstance(spec, dict) else None) or []
    listed = {v.get("name") for v in versions if isinstance(v, dict)}
    stored = (crd.get("status") or {}).get("storedVersions") or []
    detail = "must appear in spec.versions"
    return [
        field_cause(f"status.storedVersions[{index}]", INVALID, detail, value=version)
        for index, version in enumerate(stored)
        if version not in listed
    ]


def _validate_crd_group(group: str) -> list[Cause]:
    if not group:
        return [field_cause("spec.group", REQUIRED)]
    errors = dns1123_subdomain_errors(group)
    if errors:
        return [field_cause("spec.group", INVALID, ",".join(errors), value=group)]
    if "." not in group:
        return [
            field_cause(
                "spec.group", INVALID, "should be a domain with at least one dot", value=group
            )
        ]
    return []


def _validate_crd_scope(scope: str) -> list[Cause]:
    if not scope:
        return [field_cause("spec.scope", REQUIRED)]
    if scope not in ("Cluster", "Namespaced"):
        detail = 'supported values: "Cluster", "Namespaced"'
        return [field_cause("spec.scope", NOT_SUPPORTED, detail, value=scope)]
    return []


def _versions_value(versions: list[Any]) -> str:
    return "[]apiextensions.CustomResourceDefinitionVersion{" + go_json(versions) + "}"


def _validate_crd_versions(versions: list[Any]) -> list[Cause]:
    if not versions:
        return [field_cause("spec.versions", REQUIRED, "must have at least one version")]
    causes: list[Cause] = []
    names_seen: set[str] = set()
    unique = True
    storage_count = 0
    for position, entry in enumerate(versions):
        version: JsonDict = entry if isinstance(entry, dict) else {}
        path = f"spec.versions[{position}]"
        version_name = str(version.get("name") or "")
        unique = unique and version_name not in names_seen
        names_seen.add(version_name)
        storage_count += 1 if version.get("storage") else 0
        errors = dns1035_label_errors(version_name)
        if errors:
            causes.append(
                field_cause(f"{path}.name", INVALID, ",".join(errors), value=version_name)
            )
        causes += _validate_version_schema(version.get("schema"), f"{path}.schema.openAPIV3Schema")
    shown = _versions_value(versions)
    if not unique:
        causes.append(("spec.versions", *_invalid_body(shown, "must contain unique version names")))
    if storage_count != 1:
        detail = "must have exactly one version marked as storage version"
        causes.append(("spec.versions", *_invalid_body(shown, detail)))
    return causes


def _invalid_body(shown: str, detail: str) -> tuple[str, str]:
    """An Invalid cause whose bad value is a Go struct dump (approximated)."""
    return INVALID[0], f"{INVALID[1]}: {shown}: {detail}"


def _validate_version_schema(schema: Any, path: str) -> list[Cause]:
    root = schema.get("openAPIV3Schema") if isinstance(schema, dict) else None
    if not isinstance(root, dict):
        return [field_cause(path, REQUIRED, "schemas are required")]
    declared = root.get("type")
    if not declared:
        return [field_cause(f"{path}.type", REQUIRED, "must not be empty at the root")]
    if declared != "object":
        return [field_cause(f"{path}.type", INVALID, "must be object at the root", value=declared)]
    return _structural_type_errors(root, path)


def _structural_type_errors(node: JsonDict, path: str) -> list[Cause]:
    """Specified fields need a type, unless they preserve unknown fields or are int-or-string."""
    causes: list[Cause] = []
    for name, sub in (node.get("properties") or {}).items():
        if not isinstance(sub, dict):
            continue
        sub_path = f"{path}.properties[{name}]"
        untyped = not sub.get("type") and not sub.get("x-kubernetes-int-or-string")
        if untyped and not sub.get("x-kubernetes-preserve-unknown-fields"):
            causes.append(
                field_cause(
                    f"{sub_path}.type", REQUIRED, "must not be empty for specified object fields"
                )
            )
        causes += _structural_type_errors(sub, sub_path)
    items = node.get("items")
    if isinstance(items, dict):
        causes += _structural_type_errors(items, f"{path}.items")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        causes += _structural_type_errors(extra, f"{path}.additionalProperties")
    return causes


def _validate_crd_names(names: JsonDict) -> list[Cause]:
    causes: list[Cause] = []
    for field in ("plural", "singular", "kind", "listKind"):
        if not names.get(field):
            causes.append(field_cause(f"spec.names.{field}", REQUIRED))
    for field in ("plural", "singular"):
        value = str(names.get(field) or "")
        errors = dns1035_label_errors(value) if value else []
        if errors:
            causes.append(
                field_cause(f"spec.names.{field}", INVALID, ",".join(errors), value=value)
            )
    for field in ("kind", "listKind"):
        value = str(names.get(field) or "")
        errors = dns1035_label_errors(value.lower()) if value else []
        if errors:
            detail = "may have mixed case, but should otherwise match: " + ",".join(errors)
            causes.append(field_cause(f"spec.names.{field}", INVALID, detail, value=value))
    for position, short_name in enumerate(names.get("shortNames") or []):
        errors = dns1035_label_errors(str(short_name))
        if errors:
            path = f"spec.names.shortNames[{position}]"
            causes.append(field_cause(path, INVALID, ",".join(errors), value=str(short_name)))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        detail = "kind and listKind may not be the same"
        causes.append(field_cause("spec.names.listKind", INVALID, detail, value=names["kind"]))
    return causes


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def established_crd_status(crd: JsonDict, now: str | None = None) -> JsonDict:
    """The status the naming and establishing controllers give an accepted CRD."""
    spec = default_crd(crd)["spec"]
    names: JsonDict = spec.get("names") or {}
    accepted = {
        field: clone(names[field])
        for field in ("plural", "singular", "shortNames", "kind", "listKind", "categories")
        if names.get(field)
    }
    stored = list(crd.get("status", {}).get("storedVersions") or [])
    for version in spec.get("versions") or []:
        if (
            isinstance(version, dict)
            and version.get("storage")
            and version.get("name") not in stored
        ):
            stored.append(version["name"])
    timestamp = now or _utc_now()
    return {
        "conditions": [
            _condition("NamesAccepted", "NoConflicts", "no conflicts found", timestamp),
            _condition(
                "Established",
                "InitialNamesAccepted",
                "the initial names have been accepted",
                timestamp,
            ),
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    }


def _condition(kind: str, reason: str, message: str, timestamp: str) -> JsonDict:
    return {
        "type": kind,
        "status": "True",
        "lastTransitionTime": timestamp,
        "reason": reason,
        "message": message,
    }


def version_schema(crd: JsonDict, version: str) -> SchemaNode:
    """The custom resource schema of one CRD version (``crd_schema`` of its openAPIV3Schema)."""
    for entry in crd.get("spec", {}).get("versions") or []:
        if isinstance(entry, dict) and entry.get("name") == version:
            return crd_schema((entry.get("schema") or {}).get("openAPIV3Schema"))
    return crd_schema(None)
