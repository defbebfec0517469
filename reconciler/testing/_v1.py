"""The emulated legacy v1 dataset querier: ``POST /public`` with ``ResourceType: dataset`` (encord-api.md §6).

Every call is one POST whose body is ``{"query_type", "query_method", "values": {"uid", "payload"}}``; the
answer is HTTP 200 with the envelope ``{"status": 200, "response": ...}`` or, for a refusal,
``{"status": <code>, "response": ["<ERROR_CODE>"], "payload": "<message>"}`` (the code inside a one-element
list, as the SDK's ``check_error_response`` expects). A row with a backing item has no metadata of its own:
reading or writing it reads or writes that storage item's ``clientMetadata``.
"""

from __future__ import annotations

import json
import operator
import re
from datetime import datetime, timedelta
from typing import Any, Final

from reconciler.testing._state import DataRowRecord, DatasetRecord, State, dumps_metadata

__all__ = ["V1_PATH", "V1Error", "handle_v1", "v1_route_name"]

V1_PATH: Final = "/public"
_DATETIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"  # how the v1 API writes created_at / last_edited_at


class V1Error(Exception):
    """A refusal inside the v1 envelope: ``status`` and the SDK's error code (``AUTHORISATION_ERROR`` …)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def envelope(self) -> dict[str, Any]:
        return {"status": self.status, "response": [self.code], "payload": self.message}


def v1_route_name(body: bytes) -> str:
    """The request-count key of a v1 call: ``"POST public <query_type> <query_method>"`` when readable."""
    try:
        doc = json.loads(body)
    except ValueError:
        return "POST public"
    if isinstance(doc, dict) and isinstance(doc.get("query_type"), str):
        method = doc.get("query_method")
        return f"POST public {doc['query_type']} {method if isinstance(method, str) else '?'}"
    return "POST public"


def _stamp(state: State, seq: int, edited: str | None) -> tuple[str, str]:
    created = state.created_base + timedelta(milliseconds=seq)
    last = datetime.fromisoformat(edited) if edited else created
    return created.strftime(_DATETIME_FORMAT), last.strftime(_DATETIME_FORMAT)


def _row_json(state: State, row: DataRowRecord, *, with_metadata: bool) -> dict[str, Any]:
    created, edited = _stamp(state, row.seq, row.edited_at)
    return {
        "data_hash": row.data_hash,
        "data_title": row.title,
        "data_type": row.data_type,
        "created_at": created,
        "last_edited_at": edited,
        "width": None,
        "height": None,
        "file_link": None,
        "file_size": None,
        "file_type": None,
        "storage_location": 0,
        "frames_per_second": None,
        "duration": None,
        "client_metadata": json.loads(state.row_metadata_json(row)) if with_metadata else None,
        "signed_url": None,
        "is_optimised_image_group": None,
        "backing_item_uuid": row.backing_item,
        "images_data": None,
    }


def _settings(payload: dict[str, Any]) -> tuple[bool, bool]:
    """(fetch_client_metadata, fetch_rows) of a payload's ``dataset_access_settings``."""
    raw = payload.get("dataset_access_settings")
    if raw is None:
        return False, True
    if not isinstance(raw, dict):
        raise V1Error(400, "INVALID_ARGUMENTS_ERROR", "dataset_access_settings must be an object")
    md, rows = raw.get("fetch_client_metadata", False), raw.get("fetch_rows", True)
    if not isinstance(md, bool) or not isinstance(rows, bool):
        raise V1Error(400, "INVALID_ARGUMENTS_ERROR", "dataset_access_settings fields must be booleans")
    return md, rows


def _like(pattern: str) -> re.Pattern[str]:
    """SQL ``LIKE`` (``%`` any run, ``_`` one character), case-insensitive."""
    parts = ("." if ch == "_" else ".*" if ch == "%" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _filtered_rows(state: State, ds: DatasetRecord, payload: dict[str, Any]) -> list[DataRowRecord]:
    rows = list(ds.rows)
    title_eq = payload.get("title_eq")
    if title_eq is not None:
        rows = [r for r in rows if r.title == title_eq]
    title_like = payload.get("title_like")
    if isinstance(title_like, str):
        rx = _like(title_like)
        rows = [r for r in rows if rx.fullmatch(r.title)]
    types = payload.get("data_types")
    if isinstance(types, list):
        wanted = {str(t).upper() for t in types}
        rows = [r for r in rows if r.data_type in wanted]
    hashes = payload.get("data_hashes")
    if isinstance(hashes, list):
        wanted = {str(h) for h in hashes}
        rows = [r for r in rows if r.data_hash in wanted]
    for key, keep in (("created_before", operator.lt), ("created_after", operator.gt)):
        bound = payload.get(key)
        if isinstance(bound, str):
            try:
                when = datetime.fromisoformat(bound)
            except ValueError:
                raise V1Error(400, "INVALID_ARGUMENTS_ERROR", f"{key}: not an ISO 8601 datetime") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=state.created_base.tzinfo)
            rows = [r for r in rows if keep(state.created_base + timedelta(milliseconds=r.seq), when)]
    return rows


def handle_v1(
    state: State, resource_type: str, resource_id: str, body: bytes, now: str, *, merges: bool = False
) -> Any:
    """Answer one authenticated v1 call (the caller holds the state lock); returns the ``response`` value.

    ``merges`` (the ``patch_merges`` mode): a data-row write merges into the stored dict instead of replacing it.

    Raises:
        V1Error: an unknown resource, query or data row, or a malformed request.
    """
    try:
        doc = json.loads(body)
    except ValueError:
        raise V1Error(400, "INVALID_ARGUMENTS_ERROR", "malformed JSON body") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("values", {}), dict):
        raise V1Error(400, "INVALID_ARGUMENTS_ERROR", "body must be {query_type, query_method, values}")
    query_type, method = doc.get("query_type"), doc.get("query_method")
    values = doc.get("values") or {}
    uid = values.get("uid")
    payload = values.get("payload") or {}
    if not isinstance(payload, dict):
        raise V1Error(400, "INVALID_ARGUMENTS_ERROR", "values.payload must be an object")
    if resource_type != "dataset":
        raise V1Error(
            400, "INVALID_ARGUMENTS_ERROR", f"ResourceType {resource_type!r} is not emulated (only 'dataset')"
        )
    ds = state.datasets.get(resource_id)
    if ds is None:
        raise V1Error(
            403, "AUTHORISATION_ERROR", f"dataset {resource_id!r} does not exist or no access to it"
        )
    if query_type == "dataset" and method == "GET":
        fetch_md, fetch_rows = _settings(payload)
        rows = [_row_json(state, r, with_metadata=fetch_md) for r in ds.rows] if fetch_rows else []
        return {
            "dataset_hash": ds.hash,
            "title": ds.title,
            "description": "",
            "dataset_type": "CORD_STORAGE",
            "backing_folder_uuid": None,
            "data_rows": rows,
        }
    if query_type == "datarows" and method == "GET":
        fetch_md, _ = _settings(payload)
        return [_row_json(state, r, with_metadata=fetch_md) for r in _filtered_rows(state, ds, payload)]
    if query_type == "datarow" and method in ("GET", "POST"):
        found = state.rows.get(uid) if isinstance(uid, str) else None
        if found is None or found[0] != ds.hash:
            raise V1Error(404, "RESOURCE_NOT_FOUND_ERROR", f"no data row {uid!r} in dataset {ds.hash!r}")
        row = found[1]
        if method == "GET":
            extra = payload.get("additional_data")
            with_md = isinstance(extra, dict) and extra.get("client_metadata") is True
            return _row_json(state, row, with_metadata=with_md)
        unknown = sorted(set(payload) - {"client_metadata"})
        if unknown:
            raise V1Error(400, "INVALID_ARGUMENTS_ERROR", f"field {unknown[0]!r} cannot be updated here")
        updated: list[str] = []
        if "client_metadata" in payload:
            md = payload["client_metadata"]
            if not isinstance(md, dict):
                raise V1Error(400, "INVALID_ARGUMENTS_ERROR", "client_metadata must be an object")
            try:
                text = dumps_metadata(md)
            except ValueError as exc:
                raise V1Error(400, "INVALID_ARGUMENTS_ERROR", str(exc)) from None
            if merges:
                text = dumps_metadata({**json.loads(state.row_metadata_json(row)), **md})
            state.update_row_metadata(row, text, now)
            updated.append("client_metadata")
        return {"data_row": _row_json(state, row, with_metadata=True), "updated_fields": updated}
    raise V1Error(
        400, "INVALID_ARGUMENTS_ERROR", f"query {query_type!r} with method {method!r} is not emulated"
    )
