"""How the leaderboard and the Pareto scatter read a large search: the last page is read
backwards from the end (not past every row before it), the rows are counted once, and the
scatter's sampled data is one query whose front is the whole search's front."""
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from searches import selectors
from searches.models import Candidate
from searches.nas import pareto
from searches.selectors import LeaderboardQuery

from test_selectors import make_search, reference_order, rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def board(alice):
    return make_search(alice, n=120, running=3, queued=7)


def _offsets(queries) -> list[int]:
    return [int(n) for q in queries for n in re.findall(r"OFFSET (\d+)", q["sql"])]


@pytest.mark.parametrize("sort", ["-best", "best", "params", "-latency", "index", "-epochs"])
def test_the_last_page_is_read_from_the_end_and_holds_the_last_rows(board, sort):
    expected = reference_order(rows(board), sort)
    with CaptureQueriesContext(connection) as captured:
        last = selectors.leaderboard_page(board, LeaderboardQuery.from_params({"sort": sort, "page": "999",
                                                                              "page_size": "7"}))
    assert last["page"] == last["pages"] == 18 and last["offset"] == 119
    assert [r["id"] for r in last["rows"]] == expected[119:]
    # Read backwards: no query skips the 119 rows before the last one.
    assert all(n < 7 for n in _offsets(captured.captured_queries))


@pytest.mark.parametrize("sort", ["-best", "params"])
def test_every_page_from_either_end_holds_the_reference_rows(board, sort):
    expected = reference_order(rows(board), sort)
    for page in range(1, 19):
        got = selectors.leaderboard_page(board, LeaderboardQuery.from_params(
            {"sort": sort, "page": str(page), "page_size": "7"}))
        assert [r["id"] for r in got["rows"]] == expected[(page - 1) * 7:page * 7]


@pytest.mark.parametrize("sort", ["-best", "best", "params"])
def test_the_board_counts_its_rows_once(board, sort):
    with CaptureQueriesContext(connection) as captured:
        got = selectors.leaderboard_page(board, LeaderboardQuery.from_params({"sort": sort, "page": "9"}))
    counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    assert len(counts) == 1 and got["total"] == 120


def _reference_front(search, column):
    finished = Candidate.objects.filter(search=search, state="finished", best_val_accuracy__isnull=False,
                                        **{f"{column}__isnull": False}).values_list("id", "best_val_accuracy", column)
    return [r[0] for r in pareto.front_2d(list(finished), value=lambda r: r[1], cost=lambda r: r[2])]


def test_the_sampled_scatter_is_one_query_and_keeps_the_whole_front_with_its_ties(alice):
    search = make_search(alice, n=300, running=0, queued=0)
    a, b, c = Candidate.objects.filter(search=search, state="finished").order_by("index")[:3]
    # Two cheapest points that tie (both on the front) and one as accurate but dearer (not on it).
    Candidate.objects.filter(id__in=[a.id, b.id]).update(param_count=1, best_val_accuracy=0.5)
    Candidate.objects.filter(id=c.id).update(param_count=2, best_val_accuracy=0.5)
    with CaptureQueriesContext(connection) as captured:
        sampled = selectors.scatter_points(search, "params", limit=60)
    assert len(captured.captured_queries) == 1
    full = selectors.scatter_points(search, "params", limit=10_000)
    front = _reference_front(search, "param_count")
    assert sampled["front"] == full["front"] == front and {a.id, b.id} <= set(front) and c.id not in front
    kept = {p["id"]: p for p in sampled["points"]}
    assert sampled["sampled"] and set(front) <= set(kept) and len(kept) < sampled["total"] == full["total"]
    assert len(kept) <= 60 + len(front)
    most_accurate = sorted(full["points"], key=lambda p: (-p["best_val_accuracy"], p["index"]))[:15]
    assert {p["id"] for p in most_accurate} <= set(kept)
    assert [p["index"] for p in sampled["points"]] == sorted(p["index"] for p in sampled["points"])


def test_the_scatter_of_a_search_without_finished_candidates_is_empty(alice):
    search = make_search(alice, n=5, running=5, queued=0)
    data = selectors.scatter_points(search, "latency")
    assert data == {"x": "latency", "total": 0, "sampled": False, "limit": 2000, "finished": 0, "points": [], "front": []}


@pytest.mark.parametrize("sort", ["-best", "params"])
def test_the_api_reads_its_last_candidate_page_from_the_end(board, alice, sort):
    from django.urls import reverse
    from factories import client_with

    from searches import services

    api = client_with(services.api_token_create(owner=alice, name="laptop")[1])
    url = reverse("api-candidate-list", args=[board.id])
    expected = reference_order(rows(board), sort)
    with CaptureQueriesContext(connection) as captured:
        body = api.get(url, {"sort": sort, "page_size": 7, "page": 18}).json()
    assert body["count"] == 120 and body["next"] is None
    assert [c["id"] for c in body["results"]] == expected[119:]
    assert all(n < 7 for n in _offsets(captured.captured_queries))
    middle = api.get(url, {"sort": sort, "page_size": 7, "page": 11}).json()
    assert [c["id"] for c in middle["results"]] == expected[70:77]
