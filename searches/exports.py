"""Streamed CSV and JSON exports of a search's candidates and epoch metrics.

Rows are read in keyset batches (``WHERE key > last ORDER BY key LIMIT n``,
each batch one indexed query), and each batch is written out before the next
is read, so a 50,000-candidate search exports in constant memory. Under ASGI
the response gets an asynchronous iterator (Django would otherwise read a
synchronous one to the end before sending a byte); under WSGI and in tests a
plain generator.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Callable, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse

from . import selectors
from .models import Search

BATCH = 2000
KINDS = ("candidates", "epochs")
FORMATS = ("csv", "json")

CANDIDATE_FIELDS = ["id", "index", "state", "kind", "genotype", "arch", "param_count", "flops", "latency_ms",
                    "on_pareto_front", "epochs_done", "best_val_accuracy", "final_val_accuracy",
                    "test_accuracy", "test_macro_recall", "test_macro_f1", "stop_reason", "error", "worker",
                    "device", "created_at", "started_at", "finished_at"]
EPOCH_FIELDS = ["candidate_id", "candidate__index", "epoch", "seq", "train_loss", "train_accuracy", "val_loss",
                "val_accuracy", "seconds", "created_at"]
EPOCH_HEADER = ["candidate_id", "candidate_index", "epoch", "seq", "train_loss", "train_accuracy", "val_loss",
                "val_accuracy", "seconds", "created_at"]
CANDIDATE_HEADER = CANDIDATE_FIELDS + ["duration_seconds"]


def _candidate_rows(search_id: int, size: int):
    fields = ["index"] + [f for f in CANDIDATE_FIELDS if f != "index"]
    for rows in selectors.candidate_rows_in_batches(search_id, fields, size):
        out = []
        for row in rows:
            record = dict(zip(fields, row))
            started, finished = record["started_at"], record["finished_at"]
            record["duration_seconds"] = (finished - started).total_seconds() if started and finished else None
            out.append(record)
        yield out


def _epoch_rows(search_id: int, size: int):
    fields = ["seq"] + [f for f in EPOCH_FIELDS if f != "seq"]
    for rows in selectors.epoch_rows_in_batches(search_id, fields, size):
        out = []
        for row in rows:
            record = dict(zip(fields, row))
            record["candidate_index"] = record.pop("candidate__index")
            out.append(record)
        yield out


def _csv_value(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is None:
        return ""
    return value


def _csv_chunks(header: list[str], record_batches, fix: Callable[[dict], dict] = lambda r: r):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield buffer.getvalue()
    for records in record_batches:
        buffer.seek(0)
        buffer.truncate()
        for record in records:
            record = fix(record)
            writer.writerow([_csv_value(record.get(name)) for name in header])
        yield buffer.getvalue()


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1] if text and text.strip() else ""


def _json_chunks(head: dict, list_key: str, header: list[str], record_batches):
    opening = json.dumps(head, cls=DjangoJSONEncoder)[:-1]
    yield opening + (", " if head else "") + json.dumps(list_key) + ": ["
    first = True
    for records in record_batches:
        parts = []
        for record in records:
            parts.append(("\n" if first else ",\n") + json.dumps({k: record.get(k) for k in header},
                                                                 cls=DjangoJSONEncoder))
            first = False
        yield "".join(parts)
    yield "\n]}\n"


def search_header(search: Search) -> dict:
    return {"search": {"id": search.id, "name": search.name, "state": search.state, "dataset": search.dataset,
                       "space": search.space, "strategy": search.strategy, "seed": search.seed,
                       "max_candidates": search.max_candidates, "epochs": search.epochs,
                       "created_at": search.created_at}}


def export_chunks(search: Search, kind: str, fmt: str, batch: int = BATCH) -> Iterator[str]:
    """The text of one export, in pieces of at most ``batch`` rows."""
    if kind == "candidates":
        header, rows = CANDIDATE_HEADER, _candidate_rows(search.id, batch)
        if fmt == "csv":  # a spreadsheet cell gets the traceback's last line, the JSON the whole text
            return _csv_chunks(header, rows, lambda r: dict(r, error=_last_line(r["error"])))
        return _json_chunks(search_header(search), "candidates", header, rows)
    header, rows = EPOCH_HEADER, _epoch_rows(search.id, batch)
    if fmt == "csv":
        return _csv_chunks(header, rows)
    return _json_chunks(search_header(search), "epochs", header, rows)


async def _async_chunks(chunks: Iterator[str]):
    # Each batch is read in the request's thread (thread_sensitive), one hop per batch.
    done = object()
    while True:
        chunk = await sync_to_async(next, thread_sensitive=True)(chunks, done)
        if chunk is done:
            return
        yield chunk


def export_response(request, search: Search, kind: str, fmt: str) -> StreamingHttpResponse:
    """A streamed download of one export of ``search`` (kind: candidates|epochs, fmt: csv|json)."""
    if kind not in KINDS or fmt not in FORMATS:
        raise ValueError(f"unknown export {kind}.{fmt}")
    chunks = export_chunks(search, kind, fmt)
    django_request = getattr(request, "_request", request)
    content = _async_chunks(chunks) if isinstance(django_request, ASGIRequest) else chunks
    content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    response = StreamingHttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="search-{search.id}-{kind}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
