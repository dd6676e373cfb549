"""What the pages ask of the server (issue 13 items 4-5, issue 18 items 7 and 10): the
leaderboard order over the websocket, bundle progress events, the Pareto front per cost,
the comparison's aggregates."""
import hashlib

import pytest
from channels.db import database_sync_to_async

from bench.dashboard import fill_search
from searches import selectors, selectors_compare, services
from searches.models import Candidate
from searches.nas.pareto import pareto_front
from tests.searches.test_consumers import communicator, record, run, running_search  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_consumer_answers_a_leaderboard_view_in_the_servers_order(alice, running_search):
    search, (c1, c2) = running_search
    record(c1, 1, 0.3)
    record(c2, 1, 0.9)

    async def scenario():
        comm = communicator(alice, search.id)
        await comm.connect()
        await comm.receive_json_from(timeout=5)  # the snapshot
        await comm.send_json_to({"type": "leaderboard", "view": "sort=params",
                                 "leaderboard": {"sort": "-best", "state": ["running"], "page": 1}})
        while True:
            event = await comm.receive_json_from(timeout=5)
            if event["type"] == "leaderboard":
                break
        await comm.disconnect()
        return event

    event = run(scenario())
    assert event["view"] == "sort=params"  # echoed, so the page can drop a stale answer
    assert [r["id"] for r in event["board"]["rows"]] == [c2.id, c1.id]
    assert event["board"]["query"]["state"] == ["running"]


def test_bundle_progress_reaches_the_candidates_page(alice, running_search, tmp_path):
    search, (c1, c2) = running_search
    record(c1, 1)
    Candidate.objects.filter(pk=c1.pk).update(state="finished", checkpoint_path=str(tmp_path / "c.pt"),
                                              checkpoint_sha256=hashlib.sha256(b"x").hexdigest())
    c1.refresh_from_db()
    bundle = services.bundle_request(c1)

    async def scenario():
        mine = communicator(alice, search.id)
        mine.scope["query_string"] = f"candidate={c1.id}".encode()
        other = communicator(alice, search.id)
        other.scope["query_string"] = f"candidate={c2.id}".encode()
        for comm in (mine, other):
            await comm.connect()
            await comm.receive_json_from(timeout=5)
        claimed = await database_sync_to_async(services.bundle_start)(bundle.id, bundle.attempt, worker="w")
        await database_sync_to_async(services.bundle_progress)(claimed, 60, "Quantising")
        seen = []
        while len(seen) < 2:
            event = await mine.receive_json_from(timeout=5)
            if event["type"] == "bundle":
                seen.append(event["bundle"])
        assert await other.receive_nothing(timeout=0.5)  # another candidate's page hears nothing of it
        for comm in (mine, other):
            await comm.disconnect()
        return seen

    started, progress = run(scenario())
    assert started["state"] == "running" and started["candidate"] == c1.id
    assert (progress["progress"], progress["message"], progress["state"]) == (60, "Quantising", "running")


@pytest.fixture
def filled(alice):
    search = services.search_create(owner=alice, name="filled", dataset="digits", space="cell", strategy="random",
                                    max_candidates=300, epochs=2, parallel=2, seed=3)
    fill_search(search, 300, epochs=2, seed=7)
    return search


@pytest.mark.parametrize("cost,column", [("params", "param_count"), ("flops", "flops"), ("latency", "latency_ms")])
def test_the_scatter_carries_the_front_of_the_cost_asked_for(filled, cost, column):
    data = selectors.scatter_points(filled, cost, limit=100)
    rows = list(Candidate.objects.filter(search=filled, state="finished", best_val_accuracy__isnull=False)
                .exclude(**{column: None}).values_list("id", "best_val_accuracy", column))
    # The NAS core's own definition, over every finished candidate (not only the sample).
    on_front = {rows[i][0] for i in pareto_front([(acc, -c) for _, acc, c in rows])}
    assert set(data["front"]) == on_front
    assert data["sampled"] and data["total"] == len(rows) and len(data["points"]) <= 100 + len(on_front)
    assert on_front <= {p["id"] for p in data["points"]}


def test_comparison_aggregates_count_every_finished_candidate(filled):
    finished = Candidate.objects.filter(search=filled, state="finished", best_val_accuracy__isnull=False)
    decisions = selectors_compare.decision_stats(filled)
    space = selectors.space_of(filled)
    assert [d["name"] for d in decisions] == [d.name for d in space.decisions]
    for d in decisions:
        assert sum(c["count"] for c in d["choices"]) == finished.count()
        for c in d["choices"]:
            if c["count"]:
                assert c["min"] <= c["q1"] <= c["median"] <= c["q3"] <= c["max"]
    curve = selectors_compare.best_so_far_curve(filled)
    bests = [p[2] for p in curve["points"]]
    assert bests == sorted(bests) and bests[-1] == max(finished.values_list("best_val_accuracy", flat=True))
    sample = selectors_compare.parallel_sample(filled)
    assert len(sample["rows"]) == finished.count() and not sample["sampled"]
    top = finished.order_by("-best_val_accuracy").first()
    row = next(r for r in sample["rows"] if r["id"] == top.id)
    assert [space.decisions[i].choices[k] for i, k in enumerate(row["choices"])] == \
        [top.arch[d.name] for d in space.decisions]
