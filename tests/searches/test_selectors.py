"""Selectors of the dashboard on a generated search with many candidates: sorting, filtering
and paging match a reference computed in Python, and what the websocket sends stays bounded."""
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from bench.dashboard import fill_search
from searches import selectors, services
from searches.models import Candidate, EpochMetric, Search, Worker
from searches.selectors import LeaderboardQuery

pytestmark = pytest.mark.django_db

N = 240
EPOCHS = 4


def make_search(owner, n=N, space="cell", running=3, queued=2, **extra):
    search = services.search_create(owner=owner, name="generated", dataset="digits", space=space, strategy="random",
                                    max_candidates=n + 10, epochs=EPOCHS, parallel=4, seed=3)
    if extra:
        Search.objects.filter(pk=search.pk).update(**extra)
        search.refresh_from_db()
    fill_search(search, n, epochs=EPOCHS, seed=11, running=running, queued=queued)
    return search


@pytest.fixture
def big(alice):
    return make_search(alice)


def rows(search):
    return list(Candidate.objects.filter(search=search).values(
        "id", "index", "state", "best_val_accuracy", "final_val_accuracy", "test_accuracy", "param_count",
        "flops", "latency_ms", "epochs_done", "genotype", "arch"))


def reference_order(all_rows, sort):
    field = selectors.SORTS[sort.lstrip("-")]
    desc = sort.startswith("-")
    if field == "index":
        return [r["id"] for r in sorted(all_rows, key=lambda r: r["index"], reverse=desc)]
    present = [r for r in all_rows if r[field] is not None]
    missing = [r for r in all_rows if r[field] is None]
    present.sort(key=lambda r: ((-r[field] if desc else r[field]), r["index"]))
    missing.sort(key=lambda r: r["index"])
    return [r["id"] for r in present + missing]


def all_pages(search, **params):
    ids, page = [], 1
    while True:
        board = selectors.leaderboard_page(search, LeaderboardQuery.from_params(dict(params, page=str(page))))
        ids += [r["id"] for r in board["rows"]]
        if page >= board["pages"]:
            return ids, board
        page += 1


@pytest.mark.parametrize("sort", ["-best", "best", "-final", "-test", "params", "-params", "flops", "latency",
                                  "-epochs", "index", "-index"])
def test_leaderboard_sorts_every_key_with_missing_values_last_and_ties_by_index(big, sort):
    ids, board = all_pages(big, sort=sort)
    assert ids == reference_order(rows(big), sort)
    assert board["total"] == N and board["query"]["sort"] == sort


def test_leaderboard_pages_cover_every_candidate_once_and_clamp_past_the_end(big):
    ids, board = all_pages(big, page_size="50")
    assert len(ids) == len(set(ids)) == N
    assert board["pages"] == 5 and board["page"] == 5 and len(board["rows"]) == N - 200
    far = selectors.leaderboard_page(big, LeaderboardQuery.from_params({"page": "99"}))
    assert far["page"] == 5 and far["offset"] == 200 and [r["id"] for r in far["rows"]] == ids[200:]
    first = selectors.leaderboard_page(big)
    assert len(first["rows"]) == selectors.LEADERBOARD_PAGE_SIZE and first["offset"] == 0


def test_leaderboard_filters_by_state_accuracy_parameters_and_text(big):
    everything = rows(big)
    ids, board = all_pages(big, state=["finished", "pruned"], acc_min="0.5", acc_max="0.9",
                           params_min="20000", q="conv3x3")
    expected = [r for r in everything if r["state"] in ("finished", "pruned") and r["best_val_accuracy"] is not None
                and 0.5 <= r["best_val_accuracy"] <= 0.9 and r["param_count"] is not None
                and r["param_count"] >= 20000 and "conv3x3" in r["genotype"]]
    assert 0 < len(expected) < N
    assert ids == [i for i in reference_order(everything, "-best") if i in {r["id"] for r in expected}]
    assert board["total"] == len(expected)


def test_the_uses_filter_matches_any_of_the_named_decisions(big):
    everything = rows(big)
    edges = ["e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2"]
    ids, _ = all_pages(big, uses=[",".join(edges) + '="avgpool3x3"', 'e1_0="skip"'])
    expected = {r["id"] for r in everything
                if any(r["arch"][e] == "avgpool3x3" for e in edges) and r["arch"]["e1_0"] == "skip"}
    assert expected and set(ids) == expected


def test_the_uses_filter_ignores_unknown_decisions_and_values(big):
    query = LeaderboardQuery.from_params({"uses": ['nope="skip"', 'e1_0="not-an-op"', "e1_0=not json"]})
    assert selectors.leaderboard_page(big, query)["total"] == N


def test_uses_options_offer_any_edge_for_cell_spaces(big):
    options = selectors.uses_options(selectors.space_of(big))
    values = [o["value"] for o in options]
    assert 'e1_0,e2_0,e2_1,e3_0,e3_1,e3_2="conv3x3"' in values and 'e3_2="skip"' in values


def test_a_query_from_nonsense_parameters_falls_back_to_defaults():
    query = LeaderboardQuery.from_params({"sort": "password", "state": ["finished", "bogus"], "acc_min": "nan",
                                          "page": "-3", "page_size": "100000", "params_max": "inf"})
    assert query.sort == selectors.DEFAULT_SORT and query.states == ("finished",)
    assert query.acc_min is None and query.params_max is None
    assert query.page == 1 and query.page_size == selectors.MAX_PAGE_SIZE


def test_a_leaderboard_page_is_two_bounded_queries(big, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        board = selectors.leaderboard_page(big, LeaderboardQuery.from_params({"sort": "params", "page": "3"}))
    assert len(board["rows"]) == 50
    assert "confusion_matrix" not in board["rows"][0]


def test_the_snapshot_is_bounded_whatever_the_number_of_candidates(big):
    snapshot = selectors.search_snapshot(big.id)
    running = set(Candidate.objects.filter(search=big, state="running").values_list("id", flat=True))
    top = selectors.top_candidate_ids(big.id, selectors.TOP_CURVES)
    assert len(snapshot["leaderboard"]["rows"]) == selectors.LEADERBOARD_PAGE_SIZE
    assert snapshot["top"] == top and set(snapshot["drawn"]) == set(top) | running
    assert {e["candidate"] for e in snapshot["epochs"]} == set(snapshot["drawn"])
    assert len(snapshot["epochs"]) == EpochMetric.objects.filter(candidate_id__in=snapshot["drawn"]).count()
    assert len(snapshot["candidates"]) <= selectors.LEADERBOARD_PAGE_SIZE + len(snapshot["drawn"])
    assert snapshot["search"]["counts"]["running"] == len(running) and sum(snapshot["search"]["counts"].values()) == N
    assert len(json.dumps(snapshot)) < 200_000


def test_the_snapshot_sends_held_curves_after_the_sequence_number_and_new_curves_whole(big):
    first = selectors.search_snapshot(big.id)
    held = first["drawn"][:3]
    after = max(e["seq"] for e in first["epochs"]) - 1
    again = selectors.search_snapshot(big.id, after, have=held)
    for e in again["epochs"]:
        if e["candidate"] in held:
            assert e["seq"] > after
    not_held = set(again["drawn"]) - set(held)
    got = {cid: sorted(e["epoch"] for e in again["epochs"] if e["candidate"] == cid) for cid in not_held}
    for cid, epochs in got.items():
        assert epochs == list(range(1, Candidate.objects.get(id=cid).epochs_done + 1))
    seqs = [e["seq"] for e in again["epochs"]]
    assert seqs == sorted(set(seqs))


def test_the_snapshot_draws_selected_candidates_of_this_search_only(big, alice):
    other = make_search(alice, n=5, space="chain", running=0, queued=0)
    low = Candidate.objects.filter(search=big, best_val_accuracy__isnull=False).order_by("best_val_accuracy").first()
    foreign = other.candidates.first()
    snapshot = selectors.search_snapshot(big.id, selected=[low.id, foreign.id, "junk"])
    assert low.id in snapshot["drawn"] and foreign.id not in snapshot["drawn"]
    assert any(e["candidate"] == low.id for e in snapshot["epochs"])
    assert not any(e["candidate"] == foreign.id for e in snapshot["epochs"])


def test_the_snapshot_shows_the_leaderboard_view_it_is_asked_for(big):
    snapshot = selectors.search_snapshot(big.id, query=LeaderboardQuery.from_params({"state": "failed", "sort": "index"}))
    board = snapshot["leaderboard"]
    failed = list(Candidate.objects.filter(search=big, state="failed").order_by("index").values_list("id", flat=True))
    assert [r["id"] for r in board["rows"]] == failed[:50] and board["total"] == len(failed)


def test_candidate_curves_ignore_other_searches_candidates(big, alice):
    other = make_search(alice, n=3, space="chain", running=0, queued=0)
    mine = Candidate.objects.filter(search=big, epochs_done__gt=0).first()
    data = selectors.candidate_curves(big.id, [mine.id, other.candidates.first().id])
    assert [c["id"] for c in data["candidates"]] == [mine.id]
    assert [e["epoch"] for e in data["epochs"]] == list(range(1, mine.epochs_done + 1))


def test_progress_adds_up_device_time_and_lists_each_improvement_once(big):
    stats = selectors.progress_stats(big.id)
    ended = [c for c in Candidate.objects.filter(search=big) if c.started_at and c.finished_at]
    assert stats["ended_seconds"] == pytest.approx(sum(c.duration_seconds for c in ended))
    finished = [c for c in ended if c.state == "finished"]
    assert stats["finished_count"] == len(finished)
    best = stats["best_so_far"]
    values = [b[1] for b in best]
    assert values == sorted(values) and len(set(values)) == len(values)
    top_ended = max((c for c in ended if c.best_val_accuracy is not None), key=lambda c: c.best_val_accuracy)
    assert values[-1] == top_ended.best_val_accuracy and best[-1][2] == top_ended.id


@pytest.mark.parametrize("x,column", [("params", "param_count"), ("flops", "flops"), ("latency", "latency_ms")])
def test_scatter_sampling_keeps_every_front_point_of_the_asked_cost(alice, x, column):
    search = make_search(alice, n=300, running=0, queued=0)
    full = selectors.scatter_points(search, x, limit=10_000)
    sampled = selectors.scatter_points(search, x, limit=60)
    assert not full["sampled"] and sampled["sampled"] and sampled["total"] == full["total"]
    assert full["finished"] == Candidate.objects.filter(search=search, state="finished").count() == full["total"]
    rows = [(p["id"], p["best_val_accuracy"], p[column]) for p in full["points"]]
    front = selectors.pareto_front_ids(rows, 2)
    kept = {p["id"] for p in sampled["points"]}
    assert front and front <= kept and len(kept) < full["total"]


def test_best_first_pages_cross_into_candidates_without_a_value(alice):
    search = make_search(alice, n=60, running=2, queued=9)
    for sort in ("-best", "best"):
        ids, board = all_pages(search, sort=sort, page_size="7")
        assert ids == reference_order(rows(search), sort) and board["pages"] == 9


def test_pareto_front_ids_keep_points_nothing_beats():
    points = [(1, 0.9, 100), (2, 0.8, 50), (3, 0.85, 120), (4, 0.95, 400), (5, 0.7, None)]
    assert selectors.pareto_front_ids(points, 2) == {1, 2, 4}


def test_choice_frequencies_count_each_choice_among_the_top_k(big):
    result = selectors.choice_frequencies(big, 20)
    top = list(Candidate.objects.filter(search=big, best_val_accuracy__isnull=False)
               .order_by("-best_val_accuracy", "index")[:20])
    assert result["k"] == 20
    edge = next(d for d in result["decisions"] if d["name"] == "e1_0")
    counts = {c["value"]: c["count"] for c in edge["choices"]}
    assert sum(counts.values()) == 20
    for op, n in counts.items():
        assert n == sum(c.arch["e1_0"] == op for c in top)


def test_arch_diff_marks_the_decisions_that_differ(big):
    a, b = Candidate.objects.filter(search=big)[:2]
    diff = selectors.arch_diff(big, a.arch, b.arch)
    assert [r["name"] for r in diff] == ["e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2"]
    assert [r["differs"] for r in diff] == [a.arch[r["name"]] != b.arch[r["name"]] for r in diff]


def test_confusion_rows_shade_by_the_share_of_the_true_class():
    rows_ = selectors.confusion_rows([[8, 2], [1, 3]])
    assert [c["share"] for c in rows_[0]["cells"]] == [0.8, 0.2]
    assert rows_[1]["recall"] == 0.75 and rows_[1]["cells"][1]["diagonal"]
    assert selectors.confusion_rows(None) == [] and selectors.confusion_rows("junk") == []


def test_workers_silent_past_the_timeout_are_lost_and_others_candidates_stay_hidden(big, alice, bob, settings):
    settings.HEARTBEAT_TIMEOUT_SECONDS = 30
    now = timezone.now()
    cand = Candidate.objects.filter(search=big, state="running").first()
    Worker.objects.create(name="gpu0@a", host="a", device="cuda:0", candidate=cand, last_heartbeat=now - timedelta(seconds=5))
    Worker.objects.create(name="gpu1@b", host="b", device="cpu", last_heartbeat=now - timedelta(seconds=90))
    for_alice = {w["name"]: w for w in selectors.worker_rows_for(alice, now=now)}
    assert not for_alice["gpu0@a"]["lost"] and for_alice["gpu1@b"]["lost"]
    assert for_alice["gpu0@a"]["candidate"]["id"] == cand.id
    for_bob = {w["name"]: w for w in selectors.worker_rows_for(bob, now=now)}
    assert for_bob["gpu0@a"]["candidate"] is None and for_bob["gpu0@a"]["busy"]


def test_the_scatter_sends_its_front_cheapest_first_for_the_page_to_draw(alice):
    search = make_search(alice, n=80, running=0, queued=0)
    data = selectors.scatter_points(search, "flops", limit=10_000)
    by_id = {p["id"]: p for p in data["points"]}
    rows = [(p["id"], p["best_val_accuracy"], p["flops"]) for p in data["points"]]
    assert data["front"] and set(data["front"]) == selectors.pareto_front_ids(rows, 2)
    costs = [by_id[i]["flops"] for i in data["front"]]
    accuracies = [by_id[i]["best_val_accuracy"] for i in data["front"]]
    assert costs == sorted(costs) and accuracies == sorted(accuracies)  # a step line up and to the right
