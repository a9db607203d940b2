"""The REST semantics of the emulated apiserver, independent of HTTP.

The HTTP layer (``kubeemu.server``) decodes a request into a call here; this module reads and
writes :class:`~kubeemu.store.Store` through the admission pipeline and returns the object (or
Status) to send back.  It owns resourceVersion preconditions, generation, managedFields, status
subresource isolation, the finalizer/deletionTimestamp flow, dry runs and no-op detection.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import yaml

from kubeemu import admission, conversion, errors, jsonio, managed_fields, patch
from kubeemu.clone import clone
from kubeemu.fieldsets import FieldSet
from kubeemu.registry import Registry, ResourceType
from kubeemu.store import Store

JsonDict = dict[str, Any]

APPLY_PATCH = "application/apply-patch+yaml"
CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
PODS = ("", "pods")
PRESENTED_KEPT = 2048
"""Stored objects whose served form :meth:`Api.presented` keeps (the most recent ones)."""
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SERVER_MANAGED_META = (
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)


_last_second: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """The current UTC time in whole seconds, ``2024-05-01T10:00:00Z`` (formatted once a second)."""
    global _last_second  # noqa: PLW0603 - a one-entry memo
    second = int(time.time())
    if second != _last_second[0]:
        _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _last_second[1]


def _seconds_after(stamp: str, seconds: int) -> str:
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (moment + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _normalize_managed_field_times(meta: JsonDict) -> None:
    """Rewrite client-sent managedFields times in the server's form (``...Z``, seconds).

    The apiserver decodes these into metav1.Time, so ``+00:00`` and ``Z`` spellings
    of the same instant compare equal there; without this a client that echoes an
    object back (the Python client writes ``+00:00``) would never be a no-op.
    """
    entries = meta.get("managedFields")
    if not isinstance(entries, list):
        return
    for entry in entries:
        stamp = entry.get("time") if isinstance(entry, dict) else None
        if not isinstance(stamp, str):
            continue
        normalized = _server_time(stamp)
        if normalized is None:
            raise errors.bad_request(f"metadata.managedFields: invalid time {stamp!r}")
        entry["time"] = normalized


@lru_cache(maxsize=4096)
def _server_time(stamp: str) -> str | None:
    """``stamp`` as the server writes times (UTC, whole seconds, ``Z``); None if no time.

    Memoized: every update reads back the times of every managedFields entry.
    """
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WriteOptions:
    """Query parameters shared by create, update and patch."""

    field_manager: str | None = None
    dry_run: bool = False
    field_validation: str = "Warn"
    force: bool | None = None
    user_agent: str = ""

    def manager(self) -> str:
        """``fieldManager`` or, as the apiserver does, the User-Agent up to the first ``/``."""
        if self.field_manager:
            return self.field_manager
        return self.user_agent.split("/", 1)[0] or "unknown"


@dataclass
class Result:
    """What a write returns: HTTP code, body, warnings and whether the store changed.

    The body may be shared with the emulator's served copies (:meth:`Api.presented`): it is
    to encode or read, never to change.
    """

    code: int
    body: JsonDict
    warnings: admission.Warnings = field(default_factory=admission.Warnings)
    changed: bool = False


@dataclass
class DeleteOptions:
    """DELETE options from the body or the query: propagation, grace period, preconditions."""

    propagation_policy: str | None = None
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False


class Api:
    """CRUD over the store, with the apiserver's rules."""

    def __init__(self, store: Store, registry: Registry):
        self.store = store
        self.registry = registry
        self.allocator = admission.Allocator()
        self.clock: Callable[[], str] = now_rfc3339
        self._random = random.Random()
        self.hold_pod_deletion: Callable[[], bool] = lambda: False
        """Set by the fake controllers: keep deleted pods Terminating (a kubelet that waits)."""
        self._presented: OrderedDict[tuple[int, int], tuple[JsonDict, ResourceType, JsonDict]] = (
            OrderedDict()
        )

    # --- reads ----------------------------------------------------------------------------------
    def get(self, rtype: ResourceType, namespace: str, name: str) -> JsonDict:
        """The object as served (a copy, the caller's to change)."""
        return self.present(rtype, self._stored(rtype, namespace, name))

    def get_shared(self, rtype: ResourceType, namespace: str, name: str) -> JsonDict:
        """What :meth:`get` answers, shared with other readers: to encode, never to change."""
        return self.presented(rtype, self._stored(rtype, namespace, name))

    def _stored(self, rtype: ResourceType, namespace: str, name: str) -> JsonDict:
        obj = self.store.get(rtype.group_resource, namespace, name)
        if obj is None:
            raise errors.not_found(rtype.resource, rtype.group, name)
        return obj

    def presented(self, rtype: ResourceType, stored: JsonDict) -> JsonDict:
        """:meth:`present` of a stored object, shared: to encode or read, never to change.

        A write's response and the watch events it causes present the same stored object (as
        does a read soon after); the recent ones are kept.  Stored objects are never changed
        in place (a write stores a new object), so an entry stays right while it is kept;
        holding the object and the type also keeps their ids from being reused.  A built-in
        kind's served form shares all but its top level with the stored object: only custom
        resources need a copy, for the defaults read adds.
        """
        key = (id(stored), id(rtype))
        entry = self._presented.get(key)
        if entry is None:
            if rtype.is_custom:
                served = self.present(rtype, stored)
            else:
                served = conversion.from_storage(rtype, stored)  # a new top level only
                served["apiVersion"] = rtype.group_version
                served["kind"] = rtype.kind
            entry = (stored, rtype, served)
            self._presented[key] = entry
            if len(self._presented) > PRESENTED_KEPT:
                self._presented.popitem(last=False)
        return entry[2]

    def present(self, rtype: ResourceType, obj: JsonDict) -> JsonDict:
        """The stored object as served at ``rtype``'s version (apiVersion set, defaults read).

        A fresh copy, the caller's to change.
        """
        served = conversion.from_storage(rtype, clone(obj))
        served["apiVersion"] = rtype.group_version
        served["kind"] = rtype.kind
        if rtype.is_custom:
            served = admission.read_custom_object(rtype, served)
        return served

    def _written(self, rtype: ResourceType, obj: JsonDict, stored: JsonDict) -> JsonDict:
        """The body answering a write of ``obj``, now ``stored`` (shared when it is the same)."""
        return self.presented(rtype, stored) if stored is obj else self.present(rtype, obj)

    def require_namespace(
        self, rtype: ResourceType, namespace: str, *, creating: bool, name: str = ""
    ) -> None:
        """404 when the namespace is missing; 403 on a create while it is terminating.

        The 403 is NamespaceLifecycle's, naming the object (or its generateName) as the
        admission plugin does.
        """
        if not rtype.namespaced:
            return
        ns = self.store.get(("", "namespaces"), "", namespace)
        if ns is None:
            raise errors.not_found("namespaces", "", namespace)
        if creating and ns.get("metadata", {}).get("deletionTimestamp"):
            raise errors.forbidden(
                f'{errors.qualified_resource(rtype.resource, rtype.group)} "{name or "Unknown"}" '
                f"is forbidden: unable to create new content in namespace {namespace} because it "
                "is being terminated",
                {
                    "name": name or "Unknown",
                    **({"group": rtype.group} if rtype.group else {}),
                    "kind": rtype.resource,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    # --- create ---------------------------------------------------------------------------------
    def create(
        self,
        rtype: ResourceType,
        namespace: str,
        body: JsonDict,
        options: WriteOptions,
        *,
        owned: bool = False,
    ) -> Result:
        """Create ``body`` (copied first, unless ``owned``: the caller gives it up)."""
        obj = self._check_type_meta(rtype, body if owned else clone(body))
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        self._check_namespace(rtype, namespace, meta)
        if rtype.is_custom and self._crd_terminating(rtype):
            raise errors.ApiError(
                405,
                "MethodNotAllowed",
                "create not allowed while custom resource definition is terminating",
                {"group": rtype.group, "kind": rtype.resource},
            )
        body_name = meta.get("name")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta["generateName"]) + "".join(
                self._random.choice(_GENERATE_ALPHABET) for _ in range(5)
            )
        if not meta.get("name"):
            raise errors.invalid(
                rtype.kind,
                rtype.group,
                "",
                [
                    (
                        "metadata.name",
                        "FieldValueRequired",
                        "Required value: name or generateName is required",
                    )
                ],
            )
        self.require_namespace(
            rtype, namespace, creating=True, name=str(body_name or meta.get("generateName") or "")
        )
        name = str(meta["name"])
        if self.store.get(rtype.group_resource, namespace if rtype.namespaced else "", name):
            raise errors.already_exists(rtype.resource, rtype.group, name)
        for key in _SERVER_MANAGED_META:
            meta.pop(key, None)
        _normalize_managed_field_times(meta)
        if rtype.has_status and rtype.resource not in ("namespaces",):
            obj.pop("status", None)
        warnings = admission.Warnings()
        obj = admission.prune_unknown_fields(rtype, obj, options.field_validation, warnings)
        obj = admission.default_object(rtype, obj, copy=False)
        admission.validate_object(rtype, obj, None)
        now = self.clock()
        obj = managed_fields.record_update(
            None,
            obj,
            manager=options.manager(),
            schema=rtype.schema,
            api_version=rtype.group_version,
            now=now,
            status_subresource=rtype.has_status,
            copy=False,
        )
        return self._insert(rtype, obj, options, warnings, now)

    def _insert(
        self,
        rtype: ResourceType,
        obj: JsonDict,
        options: WriteOptions,
        warnings: admission.Warnings,
        now: str,
        code: int = 201,
    ) -> Result:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now
        if rtype.has_generation:
            meta["generation"] = 1
        obj = self._apply_kind_effects(rtype, obj, None, dry_run=options.dry_run, now=now)
        if options.dry_run:
            return Result(code, self.present(rtype, obj), warnings)
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.store.next_revision())
        stored = self.store.put(rtype.group_resource, self._storage_form(rtype, obj))
        return Result(code, self._written(rtype, obj, stored), warnings, changed=True)

    # --- update / patch -------------------------------------------------------------------------
    def update(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        body: JsonDict,
        subresource: str | None,
        options: WriteOptions,
    ) -> Result:
        new = self._check_type_meta(rtype, clone(body))
        meta = new.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match "
                f"the name on the URL ({name})"
            )
        self._check_namespace(rtype, namespace, meta)
        live = self.store.get(rtype.group_resource, namespace, name)
        if live is None:
            raise errors.not_found(rtype.resource, rtype.group, name)
        expected_rv = meta.get("resourceVersion")
        if expected_rv and str(expected_rv) != live["metadata"]["resourceVersion"]:
            raise errors.conflict(rtype.resource, rtype.group, name)
        _normalize_managed_field_times(meta)
        return self._update_from(rtype, live, new, subresource, options, apply=False)

    def update_status(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        status: JsonDict,
        options: WriteOptions,
    ) -> Result:
        """A PUT of ``/status`` with the live object and ``status`` (the fake controllers').

        What :meth:`update` does with a copy of the live object carrying ``status``, without
        the copy: a status write takes nothing else from its body, and the live object's
        name, namespace, resourceVersion and managedFields times pass every check.
        """
        live = self.store.get(rtype.group_resource, namespace, name)
        if live is None:
            raise errors.not_found(rtype.resource, rtype.group, name)
        return self._update_from(rtype, live, {"status": status}, "status", options, apply=False)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        raw_body: bytes,
        subresource: str | None,
        options: WriteOptions,
    ) -> Result:
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type == APPLY_PATCH:
            return self._server_side_apply(rtype, namespace, name, raw_body, subresource, options)
        if options.force is not None:
            raise errors.invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                [
                    (
                        "force",
                        "FieldValueForbidden",
                        "Forbidden: may not be specified for non-apply patch",
                    )
                ],
            )
        live = self.store.get(rtype.group_resource, namespace, name)
        if live is None:
            raise errors.not_found(rtype.resource, rtype.group, name)
        current = self.presented(rtype, live)  # every kind of patch works on a copy
        patched = patch.apply_patch(
            media_type, current, raw_body, rtype.schema, is_custom_resource=rtype.is_custom
        )
        patched_meta = patched.get("metadata") or {}
        expected_rv = patched_meta.get("resourceVersion")
        if expected_rv and str(expected_rv) != live["metadata"]["resourceVersion"]:
            raise errors.conflict(rtype.resource, rtype.group, name)
        if patched_meta.get("name", name) != name:
            raise errors.bad_request("metadata.name cannot be changed by a patch")
        _normalize_managed_field_times(patched_meta)
        return self._update_from(
            rtype, live, patched, subresource, options, apply=False, patched=True
        )

    def _server_side_apply(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        raw_body: bytes,
        subresource: str | None,
        options: WriteOptions,
    ) -> Result:
        if not options.field_manager:
            raise errors.ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch",
                {
                    "group": "meta.k8s.io",
                    "kind": "PatchOptions",
                    "causes": [
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value: is required for apply patch",
                            "field": "fieldManager",
                        }
                    ],
                },
            )
        applied = _decode_yaml_or_json(raw_body)
        if applied.get("apiVersion") != rtype.group_version or applied.get("kind") != rtype.kind:
            # the field manager's versionCheckManager, with Go's GroupVersionKind.String()
            group, _, version = str(applied.get("apiVersion") or "").rpartition("/")
            raise errors.bad_request(
                f"invalid object type: {group}/{version}, Kind={applied.get('kind') or ''}"
            )
        meta = applied.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match "
                f"the name on the URL ({name})"
            )
        meta["name"] = name
        self._check_namespace(rtype, namespace, meta)
        live = self.store.get(rtype.group_resource, namespace, name)
        if (
            live is not None
            and meta.get("resourceVersion")
            and str(meta["resourceVersion"]) != live["metadata"]["resourceVersion"]
        ):
            raise errors.conflict(rtype.resource, rtype.group, name)
        checked: FieldSet | None = None
        if rtype.schema.known:
            # SSA converts the configuration to a typed object first: an undeclared field is the
            # apiserver's 500 "failed to create typed patch object", whatever fieldValidation says
            checked = managed_fields.check_apply_configuration(
                applied, rtype.schema, rtype.group_version
            )
        warnings = admission.Warnings()
        configuration = applied
        applied = admission.prune_unknown_fields(rtype, applied, options.field_validation, warnings)
        if applied is not configuration:
            checked = None  # pruned: the fields are no longer those checked
        now = self.clock()
        if live is None:
            if subresource:
                raise errors.not_found(rtype.resource, rtype.group, name)
            self.require_namespace(rtype, namespace, creating=True, name=name)
            if any(key in meta for key in _SERVER_MANAGED_META) or (
                rtype.has_status and "status" in applied
            ):
                checked = None  # what the apiserver sets is dropped from the configuration
            for key in _SERVER_MANAGED_META:
                meta.pop(key, None)
            if rtype.has_status:
                applied.pop("status", None)
            merged = managed_fields.server_side_apply(
                None,
                applied,
                manager=options.field_manager,
                force=bool(options.force),
                schema=rtype.schema,
                api_version=rtype.group_version,
                now=now,
                status_subresource=rtype.has_status,
                checked_fields=checked,
            )
            merged = admission.default_object(rtype, merged, copy=False)
            admission.validate_object(rtype, merged, None)
            return self._insert(rtype, merged, options, warnings, now, code=201)
        current = self.presented(rtype, live)  # server_side_apply only reads it
        merged = managed_fields.server_side_apply(
            current,
            applied,
            manager=options.field_manager,
            force=bool(options.force),
            schema=rtype.schema,
            api_version=rtype.group_version,
            now=now,
            status_subresource=rtype.has_status,
            subresource=subresource,
            checked_fields=checked,
        )
        result = self._update_from(rtype, live, merged, subresource, options, apply=True)
        result.warnings.messages[:0] = warnings.messages
        return result

    def _update_from(
        self,
        rtype: ResourceType,
        live: JsonDict,
        new: JsonDict,
        subresource: str | None,
        options: WriteOptions,
        *,
        apply: bool,
        patched: bool = False,
    ) -> Result:
        """Turn a proposed object into the stored one: isolation, admission, bookkeeping.

        ``old`` is only read (and answered as is when the write changes nothing).
        """
        old = self.presented(rtype, live)
        warnings = admission.Warnings()
        proposed = _isolate_subresource(rtype, old, new, subresource, apply=apply)
        _keep_server_metadata(rtype, old, proposed)
        proposed = admission.prune_unknown_fields(
            rtype, proposed, options.field_validation, warnings, patched=patched
        )
        proposed = admission.default_object(rtype, proposed, copy=False)
        admission.validate_object(rtype, proposed, old)
        now = self.clock()
        if not apply:
            proposed = managed_fields.record_update(
                old,
                proposed,
                manager=options.manager(),
                schema=rtype.schema,
                api_version=rtype.group_version,
                now=now,
                status_subresource=rtype.has_status,
                subresource=subresource,
                copy=False,
            )
        # admission and bookkeeping above return new dicts: take metadata from the final object
        meta = proposed["metadata"]
        if rtype.has_generation and _spec_changed(rtype, old, proposed):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        proposed = self._apply_kind_effects(rtype, proposed, old, dry_run=options.dry_run, now=now)
        meta = proposed["metadata"]
        if _same(old, proposed):
            return Result(200, old, warnings)
        if options.dry_run:
            return Result(200, proposed, warnings)
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            # a pod in its grace period stays until the kubelet's final delete (Store.Update)
            and not old["metadata"].get("deletionGracePeriodSeconds")
        ):
            final = self.store.remove(rtype.group_resource, self._ns(rtype, meta), meta["name"])
            self._after_remove(rtype, final or proposed)
            # the answer is the object as updated (finalizers gone), as kube-apiserver's
            if final is not None:
                meta["resourceVersion"] = final["metadata"]["resourceVersion"]
            return Result(200, self.present(rtype, proposed), warnings, changed=True)
        meta["resourceVersion"] = str(self.store.next_revision())
        stored = self.store.put(rtype.group_resource, self._storage_form(rtype, proposed))
        return Result(200, self._written(rtype, proposed, stored), warnings, changed=True)

    # --- delete ---------------------------------------------------------------------------------
    def delete(
        self, rtype: ResourceType, namespace: str, name: str, options: DeleteOptions
    ) -> Result:
        live = self.store.get(rtype.group_resource, namespace, name)
        if live is None:
            raise errors.not_found(rtype.resource, rtype.group, name)
        meta = live["metadata"]
        _check_delete_preconditions(rtype, name, meta, options)
        hold_seconds = self._pod_hold_seconds(rtype, live, options)
        if hold_seconds:
            return self._hold_pod(rtype, live, hold_seconds, options)
        finalizers = _deletion_finalizers(rtype, meta, options)
        graceful = rtype.resource == "namespaces" or bool(finalizers)
        if not graceful:
            if options.dry_run:
                return Result(200, self._deleted_body(rtype, live))
            final = self.store.remove(rtype.group_resource, namespace, name)
            assert final is not None
            self._after_remove(rtype, final)
            return Result(200, self._deleted_body(rtype, final), changed=True)
        updated = clone(live)
        umeta = updated["metadata"]
        if umeta.get("deletionTimestamp") and umeta.get("finalizers") == finalizers:
            return Result(200, self.present(rtype, live))
        if not umeta.get("deletionTimestamp"):
            umeta["deletionTimestamp"] = self.clock()
            umeta["deletionGracePeriodSeconds"] = 0
            if rtype.has_generation:
                umeta["generation"] = int(umeta.get("generation", 1)) + 1
        if finalizers:
            umeta["finalizers"] = finalizers
        _show_terminating(rtype, updated)
        if options.dry_run:
            return Result(200, self.present(rtype, updated))
        umeta["resourceVersion"] = str(self.store.next_revision())
        self.store.put(rtype.group_resource, updated)
        return Result(200, self.present(rtype, updated), changed=True)

    def _pod_hold_seconds(self, rtype: ResourceType, pod: JsonDict, options: DeleteOptions) -> int:
        """The grace period a deleted pod stays Terminating for, when deletions are held.

        0 means "remove now": the default (no kubelet runs), a finished pod, or an explicit
        ``gracePeriodSeconds=0`` (``kubectl delete --force --grace-period=0``).
        """
        if rtype.group_resource != PODS or not self.hold_pod_deletion():
            return 0
        if pod.get("status", {}).get("phase") in ("Failed", "Succeeded"):
            return 0
        if options.grace_period_seconds is not None:
            return max(options.grace_period_seconds, 0)
        return int(pod.get("spec", {}).get("terminationGracePeriodSeconds", 30))

    def _hold_pod(
        self, rtype: ResourceType, live: JsonDict, seconds: int, options: DeleteOptions
    ) -> Result:
        """Graceful pod deletion: deletionTimestamp = now + grace period; the pod stays."""
        if live["metadata"].get("deletionTimestamp"):
            return Result(200, self.present(rtype, live))
        updated = clone(live)
        meta = updated["metadata"]
        meta["deletionTimestamp"] = _seconds_after(self.clock(), seconds)
        meta["deletionGracePeriodSeconds"] = seconds
        if options.dry_run:
            return Result(200, self.present(rtype, updated))
        meta["resourceVersion"] = str(self.store.next_revision())
        self.store.put(rtype.group_resource, updated)
        return Result(200, self.present(rtype, updated), changed=True)

    def _crd_terminating(self, rtype: ResourceType) -> bool:
        crd = self.store.get(CRDS, "", str(rtype.crd_name))
        return bool(crd and crd["metadata"].get("deletionTimestamp"))

    def _deleted_body(self, rtype: ResourceType, obj: JsonDict) -> JsonDict:
        """A Status, unless the kind's storage sets ``ReturnDeletedObject`` (then the object).

        Custom resources answer a Status: their storage does not set it.
        """
        if not rtype.is_custom and rtype.resource in (
            "pods",
            "services",
            "serviceaccounts",
            "persistentvolumeclaims",
            "persistentvolumes",
            "storageclasses",
            "namespaces",
            "customresourcedefinitions",
        ):
            return self.present(rtype, obj)
        meta = obj["metadata"]
        details: JsonDict = {"name": meta["name"]}
        if rtype.group:
            details["group"] = rtype.group
        details["kind"] = rtype.resource
        details["uid"] = meta.get("uid")
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }

    # --- internal -------------------------------------------------------------------------------
    def _ns(self, rtype: ResourceType, meta: JsonDict) -> str:
        return str(meta.get("namespace") or "") if rtype.namespaced else ""

    def _check_type_meta(self, rtype: ResourceType, obj: Any) -> JsonDict:
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if api_version and api_version != rtype.group_version:
            # another served version of the same objects too (AcceptsGroupVersion: exactly one)
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({rtype.group_version})"
            )
        if kind and kind != rtype.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rtype.kind})"
            )
        obj["apiVersion"] = rtype.group_version
        obj["kind"] = rtype.kind
        return obj

    def _check_namespace(self, rtype: ResourceType, namespace: str, meta: JsonDict) -> None:
        if not rtype.namespaced:
            meta.pop("namespace", None)
            return
        body_namespace = meta.get("namespace")
        if body_namespace and body_namespace != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        meta["namespace"] = namespace

    def _storage_form(self, rtype: ResourceType, obj: JsonDict) -> JsonDict:
        return conversion.to_storage(rtype, obj)

    def _apply_kind_effects(
        self, rtype: ResourceType, obj: JsonDict, old: JsonDict | None, *, dry_run: bool, now: str
    ) -> JsonDict:
        if rtype.group_resource == ("", "services") and not dry_run:
            admission.allocate_service_addresses(obj, old, self.allocator)
        elif rtype.resource == "customresourcedefinitions":
            obj = admission.crd_with_status(rtype, obj, now)
        return obj

    def _after_remove(self, rtype: ResourceType, final: JsonDict) -> None:
        if rtype.group_resource == ("", "services"):
            admission.release_service_addresses(final, self.allocator)


def _isolate_subresource(
    rtype: ResourceType, old: JsonDict, new: JsonDict, subresource: str | None, *, apply: bool
) -> JsonDict:
    """The proposed object: ``/status`` changes only status, the main resource everything else."""
    if subresource == "status":
        if not rtype.has_status:
            raise errors.unknown_path()
        proposed = clone(old)
        if "status" in new:
            proposed["status"] = new["status"]
        else:
            proposed.pop("status", None)
        if apply:
            proposed["metadata"]["managedFields"] = new["metadata"].get("managedFields", [])
        return proposed
    if subresource:
        raise errors.unknown_path()
    proposed = new
    if rtype.has_status:
        if "status" in old:
            proposed["status"] = clone(old["status"])
        else:
            proposed.pop("status", None)
    return proposed


def _keep_server_metadata(rtype: ResourceType, old: JsonDict, proposed: JsonDict) -> None:
    """Server-managed metadata, the name and the namespace come from the stored object."""
    meta = proposed.setdefault("metadata", {})
    for key in _SERVER_MANAGED_META:
        if key in old["metadata"]:
            meta[key] = old["metadata"][key]
        else:
            meta.pop(key, None)
    meta["name"] = old["metadata"]["name"]
    if rtype.namespaced:
        meta["namespace"] = old["metadata"]["namespace"]


def _check_delete_preconditions(
    rtype: ResourceType, name: str, meta: JsonDict, options: DeleteOptions
) -> None:
    """409 when DeleteOptions' uid or resourceVersion precondition does not hold."""
    if options.precondition_uid and options.precondition_uid != meta.get("uid"):
        raise errors.conflict(
            rtype.resource,
            rtype.group,
            name,
            f"Precondition failed: UID in precondition: {options.precondition_uid}, "
            f"UID in object meta: {meta.get('uid')}",
        )
    if options.precondition_resource_version and options.precondition_resource_version != meta.get(
        "resourceVersion"
    ):
        raise errors.conflict(
            rtype.resource,
            rtype.group,
            name,
            f"Precondition failed: ResourceVersion in precondition: "
            f"{options.precondition_resource_version}, ResourceVersion in object meta: "
            f"{meta.get('resourceVersion')}",
        )


def _deletion_finalizers(rtype: ResourceType, meta: JsonDict, options: DeleteOptions) -> list[str]:
    """The finalizers a delete leaves: the object's, CRD cleanup, and the propagation policy's."""
    finalizers = list(meta.get("finalizers") or [])
    if (
        rtype.group_resource == CRDS
        and not meta.get("deletionTimestamp")
        and CRD_CLEANUP_FINALIZER not in finalizers
    ):
        finalizers.append(CRD_CLEANUP_FINALIZER)
    policy = options.propagation_policy or "Background"
    if policy == "Foreground" and "foregroundDeletion" not in finalizers:
        finalizers.append("foregroundDeletion")
    elif policy == "Orphan" and "orphan" not in finalizers:
        finalizers.append("orphan")
    return finalizers


def _show_terminating(rtype: ResourceType, updated: JsonDict) -> None:
    """A terminating namespace's phase, a terminating CRD's condition."""
    if rtype.resource == "namespaces":
        updated.setdefault("status", {})["phase"] = "Terminating"
    if rtype.group_resource == CRDS:
        conditions = updated.setdefault("status", {}).setdefault("conditions", [])
        if not any(c.get("type") == "Terminating" for c in conditions):
            conditions.append(
                {
                    "type": "Terminating",
                    "status": "True",
                    "lastTransitionTime": updated["metadata"]["deletionTimestamp"],
                    "reason": "InstanceDeletionPending",
                    "message": "CustomResourceDefinition marked for deletion; "
                    "CustomResource deletion will begin soon",
                }
            )


def _spec_changed(rtype: ResourceType, old: JsonDict, new: JsonDict) -> bool:
    ignored = {"metadata", "status"} if rtype.has_status else {"metadata"}
    ignored |= {"apiVersion", "kind"}
    return {k: v for k, v in old.items() if k not in ignored} != {
        k: v for k, v in new.items() if k not in ignored
    }


def _same(old: JsonDict, new: JsonDict) -> bool:
    """No-op detection: equal apart from the resourceVersion (which a no-op must not bump)."""
    old_meta = {k: v for k, v in old.get("metadata", {}).items() if k != "resourceVersion"}
    new_meta = {k: v for k, v in new.get("metadata", {}).items() if k != "resourceVersion"}
    if old_meta != new_meta:
        return False
    return {k: v for k, v in old.items() if k != "metadata"} == {
        k: v for k, v in new.items() if k != "metadata"
    }


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _decode_yaml_or_json(raw: bytes) -> JsonDict:
    try:
        # apply bodies are JSON from most clients (kubectl, the Python clients): parse that
        # first; libyaml's loader, when present, for real YAML
        decoded = jsonio.loads(raw)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        return decoded
    try:
        decoded = yaml.load(raw.decode("utf-8"), Loader=_YAML_LOADER) if raw.strip() else None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"error decoding YAML: {exc}") from None
    if not isinstance(decoded, dict):
        raise errors.bad_request("the apply patch must be a single object")
    return decoded
