"""Streamed CSV / JSON exports of candidates and epochs, through the API and the pages."""
from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from searches import exports

pytestmark = pytest.mark.django_db


def body(response) -> str:
    assert response.streaming, "exports are streamed"
    return b"".join(response.streaming_content).decode()


def test_candidates_csv_has_every_candidate_with_metrics_and_timings(alice_api, alice_search):
    search, candidates = alice_search
    response = alice_api.get(reverse("api-export-candidates-csv", args=[search.id]))
    assert response["Content-Type"].startswith("text/csv")
    assert f'filename="search-{search.id}-candidates.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert [int(r["index"]) for r in rows] == [0, 1, 2]
    assert [r["state"] for r in rows] == ["finished", "finished", "running"]
    assert json.loads(rows[1]["arch"]) == candidates[1].arch and rows[1]["genotype"] == candidates[1].genotype
    assert float(rows[1]["best_val_accuracy"]) == 0.8 and float(rows[1]["test_accuracy"]) == 0.8
    assert float(rows[0]["duration_seconds"]) >= 0 and rows[2]["duration_seconds"] == ""


def test_epochs_json_is_one_document_with_every_epoch(alice_api, alice_search):
    search, candidates = alice_search
    doc = json.loads(body(alice_api.get(reverse("api-export-epochs-json", args=[search.id]))))
    assert doc["search"]["id"] == search.id
    assert [(e["candidate_index"], e["epoch"]) for e in doc["epochs"]] == [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1)]
    assert [e["seq"] for e in doc["epochs"]] == [1, 2, 3, 4, 5]
    assert doc["epochs"][3]["val_accuracy"] == 0.8 and doc["epochs"][3]["candidate_id"] == candidates[1].id


def test_candidates_json_and_epochs_csv(alice_api, alice_search):
    search, _ = alice_search
    doc = json.loads(body(alice_api.get(reverse("api-export-candidates-json", args=[search.id]))))
    assert [c["index"] for c in doc["candidates"]] == [0, 1, 2] and doc["candidates"][2]["state"] == "running"
    rows = list(csv.DictReader(io.StringIO(body(alice_api.get(reverse("api-export-epochs-csv", args=[search.id]))))))
    assert len(rows) == 5 and set(rows[0]) >= {"candidate_index", "epoch", "val_accuracy", "seconds"}


def test_an_empty_search_exports_valid_empty_documents(alice, alice_api, checkpoint_dir):
    from factories import make_search

    search, _ = make_search(alice, checkpoint_dir, name="empty", finished=(), running=0)
    assert json.loads(body(alice_api.get(reverse("api-export-epochs-json", args=[search.id]))))["epochs"] == []
    assert body(alice_api.get(reverse("api-export-candidates-csv", args=[search.id]))).count("\n") == 1


def test_rows_are_read_in_batches_as_the_response_is_consumed(alice_search):
    """Constant memory: each batch is one query, run only when the stream gets that far."""
    search, _ = alice_search
    chunks = exports.export_chunks(search, "epochs", "csv", batch=2)
    with CaptureQueriesContext(connection) as queries:
        header = next(chunks)
        first = next(chunks)
        assert len(queries) == 1 and " LIMIT 2" in queries[0]["sql"]
        rest = list(chunks)
    assert header.startswith("candidate_id,") and first.count("\n") == 2
    assert len(queries) == 3  # 5 rows in batches of 2: three queries
    assert "".join(rest).count("\n") == 3


def test_the_pages_offer_the_same_exports_by_session(client, alice, bob, alice_search):
    search, _ = alice_search
    url = reverse("search_export", args=[search.id, "candidates", "csv"])
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(bob)
    assert client.get(url).status_code == 404
    client.force_login(alice)
    assert body(client.get(url)).startswith("id,index,state,")
    assert client.get(reverse("search_export", args=[search.id, "candidates", "xml"])).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_export_is_an_async_stream_not_a_list(alice, checkpoint_dir):
    """Django reads a synchronous iterator to the end before an ASGI server sends a byte;
    the export hands ASGI an asynchronous one instead."""
    import asyncio

    from django.test import AsyncClient

    from factories import make_search

    search, _ = make_search(alice, checkpoint_dir, finished=(0.7,), running=1)
    url = reverse("search_export", args=[search.id, "epochs", "csv"])

    async def fetch():
        client = AsyncClient()
        await client.aforce_login(alice)
        response = await client.get(url)
        assert response.status_code == 200 and response.is_async
        return b"".join([chunk async for chunk in response.streaming_content]).decode()

    rows = list(csv.DictReader(io.StringIO(asyncio.run(fetch()))))
    assert [(r["candidate_index"], r["epoch"]) for r in rows] == [("0", "1"), ("0", "2"), ("1", "1")]
