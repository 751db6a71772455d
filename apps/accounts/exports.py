"""The audit trail as a CSV or JSON download, streamed row by row so a long trail never sits in memory."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from apps.accounts.models import AuditEvent

__all__ = ["audit_csv_response", "audit_json_response", "EXPORT_FIELDS"]

EXPORT_FIELDS = [
    "id",
    "occurred_at",
    "actor",
    "source",
    "via",
    "credential",
    "ip",
    "action",
    "target_type",
    "target_id",
    "data",
]
CHUNK = 500


def _row(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "occurred_at": event.occurred_at.isoformat(),
        "actor": event.actor_name,
        "source": event.source,
        "via": event.via,
        "credential": event.credential,
        "ip": event.ip,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "data": event.data,
    }


def _cell(value: Any) -> str:
    text = json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True) if isinstance(value, dict | list) else value
    text = "" if text is None else str(text)
    # A spreadsheet runs cells that start like a formula; a quote makes them text (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for event in events:
        row = _row(event)
        yield writer.writerow([_cell(row[field]) for field in EXPORT_FIELDS])


def _json_chunks(events: Iterable[AuditEvent]) -> Iterator[str]:
    yield "["
    first = True
    for event in events:
        yield ("\n" if first else ",\n") + json.dumps(_row(event), cls=DjangoJSONEncoder)
        first = False
    yield "\n]\n"


def _filename(extension: str) -> str:
    return f"modelplane-audit-{timezone.now():%Y%m%d-%H%M%S}.{extension}"


def _response(chunks: Iterator[str], content_type: str, extension: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{_filename(extension)}"'
    response["Cache-Control"] = "no-store"
    return response


def audit_csv_response(events: QuerySet[AuditEvent]) -> StreamingHttpResponse:
    return _response(_csv_lines(events.iterator(chunk_size=CHUNK)), "text/csv; charset=utf-8", "csv")


def audit_json_response(events: QuerySet[AuditEvent]) -> StreamingHttpResponse:
    return _response(_json_chunks(events.iterator(chunk_size=CHUNK)), "application/json", "json")
