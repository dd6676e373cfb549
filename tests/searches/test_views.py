import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from bench.dashboard import fill_search
from searches import services
from searches.models import Candidate, EpochMetric, Search, Worker

pytestmark = pytest.mark.django_db

VALID = {"name": "from form", "dataset": "digits", "space": "chain", "strategy": "random",
         "max_candidates": "6", "epochs": "3", "parallel": "2", "objective": "val_accuracy",
         "seed": "", "batch_size": "64", "lr": "0.003", "early_stopping": "none", "train_fraction": "1.0",
         "resolution": "0"}


@pytest.fixture
def alice_search(alice):
    return services.search_create(owner=alice, name="alice's", dataset="digits", space="chain",
                                  strategy="random", max_candidates=2, epochs=1, seed=4)


@pytest.fixture
def finished_candidate(alice_search, tmp_path):
    cid = services.search_advance(alice_search.id)[0]
    cand = services.candidate_claim(cid, worker="w", device="cpu")
    path = tmp_path / "c.pt"
    path.write_bytes(b"weights")
    services.candidate_finish(cand, test_accuracy=0.9, test_macro_recall=0.9, test_macro_f1=0.9,
                              confusion_matrix=[[1]], checkpoint_path=str(path), checkpoint_size=7,
                              checkpoint_sha256="x")
    return cand


def owned_urls(search, candidate):
    """Every page, JSON endpoint and download that belongs to one search."""
    return [
        reverse("search_detail", args=[search.id]),
        reverse("best_checkpoint", args=[search.id]),
        reverse("candidate_checkpoint", args=[search.id, candidate.id]),
        reverse("candidate_detail", args=[search.id, candidate.id]),
        reverse("search_leaderboard", args=[search.id]),
        reverse("search_curves", args=[search.id]) + f"?ids={candidate.id}",
        reverse("search_scatter", args=[search.id]),
        reverse("search_architectures", args=[search.id]),
        reverse("search_diff", args=[search.id]) + f"?a={candidate.index}&b={candidate.index}",
        reverse("search_delete", args=[search.id]),
        reverse("search_new") + f"?clone={search.id}",
    ]


CONTROLS = ["search_pause", "search_resume", "search_cancel", "search_delete"]


def test_every_page_needs_a_login(client, alice_search, finished_candidate):
    for url in [reverse("search_list"), reverse("search_new"), reverse("worker_list")] + owned_urls(alice_search, finished_candidate):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login")), url


def test_it_hides_other_users_searches(client, bob, alice_search, finished_candidate):
    alice_search.refresh_from_db()
    before = alice_search.state
    client.force_login(bob)
    for url in owned_urls(alice_search, finished_candidate):
        assert client.get(url).status_code == 404, url
    for name in CONTROLS:
        assert client.post(reverse(name, args=[alice_search.id])).status_code == 404, name
    assert "alice&#x27;s" not in client.get(reverse("search_list")).content.decode()
    alice_search.refresh_from_db()
    assert alice_search.state == before
    assert Search.objects.filter(pk=alice_search.pk).exists()


def test_owner_downloads_the_best_and_each_checkpoint(client, alice, alice_search, finished_candidate):
    client.force_login(alice)
    for name in ("best_checkpoint", "candidate_checkpoint"):
        args = [alice_search.id] + ([finished_candidate.id] if name == "candidate_checkpoint" else [])
        response = client.get(reverse(name, args=args))
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == b"weights"
        assert "attachment" in response["Content-Disposition"]


def test_best_checkpoint_is_404_with_a_reason_before_any_candidate_finishes(client, alice, alice_search):
    client.force_login(alice)
    response = client.get(reverse("best_checkpoint", args=[alice_search.id]))
    assert response.status_code == 404


def test_search_list_shows_progress_and_an_empty_state(client, alice, alice_search, finished_candidate):
    client.force_login(alice)
    html = client.get(reverse("search_list")).content.decode()
    assert "alice&#x27;s" in html and "1 / 2" in html and "0.9" not in html  # best val acc is unset
    Search.objects.all().delete()
    assert "No searches yet" in client.get(reverse("search_list")).content.decode()


def test_the_form_creates_a_search_and_redirects_to_it(client, alice):
    client.force_login(alice)
    response = client.post(reverse("search_new"), VALID)
    search = Search.objects.get()
    assert response.status_code == 302 and response.url == search.url
    assert (search.owner, search.max_candidates, search.epochs, search.parallel) == (alice, 6, 3, 2)
    assert {k: search.train_settings[k] for k in ("batch_size", "lr")} == {"batch_size": 64, "lr": 0.003}


@pytest.mark.parametrize("field,value,message", [
    ("max_candidates", "0", "greater than or equal to 1"),
    ("epochs", "abc", "Enter a whole number"),
    ("parallel", "7", "more candidates at once than the search has"),
    ("dataset", "cifar10", "unavailable"),
    ("space", "nope", "Select a valid choice"),
    ("name", "", "This field is required"),
    ("lr", "-1", "greater than or equal to"),
])
def test_the_form_refuses_bad_values_inline(client, alice, field, value, message):
    client.force_login(alice)
    response = client.post(reverse("search_new"), dict(VALID, **{field: value}))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Search.objects.exists()


def test_the_form_shows_unavailable_data_sets_with_the_reason(client, alice):
    client.force_login(alice)
    html = client.get(reverse("search_new")).content.decode()
    assert "CIFAR-10" in html and "unavailable: not found under" in html


def test_cancel_by_owner_ends_the_search(client, alice, alice_search):
    client.force_login(alice)
    response = client.post(reverse("search_cancel", args=[alice_search.id]))
    assert response.status_code == 302
    alice_search.refresh_from_db()
    assert alice_search.state == Search.State.CANCELLED


def test_forms_need_a_csrf_token(alice):
    from django.test import Client
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("search_new"), VALID).status_code == 403


# --- the dashboard -----------------------------------------------------------------

@pytest.fixture
def generated(alice):
    search = services.search_create(owner=alice, name="generated", dataset="digits", space="chain",
                                    strategy="random", max_candidates=130, epochs=3, parallel=4, seed=9)
    fill_search(search, 120, epochs=3, seed=5, running=2, queued=1)
    return search


def test_the_search_page_carries_its_endpoints_and_the_uses_filter(client, alice, generated):
    client.force_login(alice)
    html = client.get(generated.url).content.decode()
    assert 'id="leaderboard"' in html and 'id="pareto-card"' in html and 'id="lb-filters"' in html
    config = json.loads(html.split('<script id="search-config" type="application/json">')[1].split("</script>")[0])
    assert config["urls"]["leaderboard"] == reverse("search_leaderboard", args=[generated.id])
    assert config["page_size"] == 50 and not config["multi_objective"]
    assert 'value="kernel_1=5"' in html  # a choice of the chain space offered by the "uses" filter


def test_the_leaderboard_endpoint_sorts_filters_and_pages(client, alice, generated):
    client.force_login(alice)
    url = reverse("search_leaderboard", args=[generated.id])
    board = client.get(url, {"sort": "params", "state": "finished", "page": "2", "page_size": "20"}).json()
    finished = list(Candidate.objects.filter(search=generated, state="finished").order_by("param_count", "index"))
    assert board["total"] == len(finished) and board["page"] == 2 and board["offset"] == 20
    assert [r["id"] for r in board["rows"]] == [c.id for c in finished[20:40]]
    assert {"genotype", "arch", "param_count", "best_val_accuracy", "state"} <= set(board["rows"][0])


def test_the_curves_endpoint_gives_whole_curves_of_the_asked_candidates(client, alice, generated):
    client.force_login(alice)
    a, b = Candidate.objects.filter(search=generated, state="finished")[:2]
    data = client.get(reverse("search_curves", args=[generated.id]), {"ids": f"{a.id},{b.id},x"}).json()
    assert {c["id"] for c in data["candidates"]} == {a.id, b.id}
    assert len(data["epochs"]) == 6 and [e["seq"] for e in data["epochs"]] == sorted(e["seq"] for e in data["epochs"])


def test_the_scatter_endpoint_lists_finished_candidates_with_their_costs(client, alice, generated):
    client.force_login(alice)
    finished = Candidate.objects.filter(search=generated, state="finished").count()
    for x, column in (("params", "param_count"), ("flops", "flops"), ("latency", "latency_ms")):
        data = client.get(reverse("search_scatter", args=[generated.id]), {"x": x}).json()
        assert data["x"] == x and data["total"] == finished == len(data["points"])
        assert all(p[column] and p["best_val_accuracy"] for p in data["points"])


def test_pause_and_resume_change_the_state_and_resume_only_a_paused_search(client, alice, generated):
    client.force_login(alice)
    Search.objects.filter(pk=generated.pk).update(state=Search.State.RUNNING, started_at=timezone.now())
    assert client.post(reverse("search_pause", args=[generated.id])).status_code == 302
    generated.refresh_from_db()
    assert generated.state == Search.State.PAUSED
    assert services.search_advance(generated.id) == []  # a paused search proposes nothing
    client.post(reverse("search_resume", args=[generated.id]))
    generated.refresh_from_db()
    assert generated.state == Search.State.RUNNING
    client.post(reverse("search_resume", args=[generated.id]))  # not paused: nothing happens
    generated.refresh_from_db()
    assert generated.state == Search.State.RUNNING


def test_resuming_a_search_paused_before_it_started_queues_it_again(client, alice, alice_search):
    client.force_login(alice)
    client.post(reverse("search_pause", args=[alice_search.id]))
    client.post(reverse("search_resume", args=[alice_search.id]))
    alice_search.refresh_from_db()
    assert alice_search.state == Search.State.QUEUED


def test_controls_need_a_post(client, alice, alice_search):
    client.force_login(alice)
    for name in ("search_pause", "search_resume", "search_cancel"):
        assert client.get(reverse(name, args=[alice_search.id])).status_code == 405


def test_delete_asks_first_then_removes_rows_and_checkpoint_files(client, alice, generated, settings, tmp_path):
    settings.CHECKPOINT_DIR = tmp_path
    folder = tmp_path / f"search-{generated.id}"
    folder.mkdir()
    kept = tmp_path / "other.pt"
    kept.write_bytes(b"not ours")
    files = []
    for c in Candidate.objects.filter(search=generated, state="finished")[:3]:
        path = folder / f"candidate-{c.index}.pt"
        path.write_bytes(b"w")
        Candidate.objects.filter(pk=c.pk).update(checkpoint_path=str(path))
        files.append(path)
    Worker.objects.create(name="w@h", host="h", candidate=Candidate.objects.filter(search=generated).first(),
                          last_heartbeat=timezone.now())
    client.force_login(alice)
    page = client.get(reverse("search_delete", args=[generated.id])).content.decode()
    assert "120 candidates" in page and "3 checkpoint files" in page and "2 candidates are training" in page
    assert Search.objects.filter(pk=generated.pk).exists()  # GET only asks
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("django.db.transaction.on_commit", lambda fn, *a, **k: fn())  # this test runs in one transaction
        response = client.post(reverse("search_delete", args=[generated.id]))
    assert response.status_code == 302 and response.url == reverse("search_list")
    assert not Search.objects.filter(pk=generated.pk).exists()
    assert not Candidate.objects.filter(search_id=generated.id).exists()
    assert not EpochMetric.objects.filter(search_id=generated.id).exists()
    assert Worker.objects.get(name="w@h").candidate is None
    assert not any(p.exists() for p in files) and not folder.exists() and kept.exists()


def test_clone_prefills_the_form_from_the_search(client, alice, generated):
    Search.objects.filter(pk=generated.pk).update(train_settings={"batch_size": 32, "lr": 0.01})
    client.force_login(alice)
    html = client.get(reverse("search_new"), {"clone": generated.id}).content.decode()
    assert 'value="Copy of generated"' in html and 'value="130"' in html and 'value="32"' in html
    assert 'value="0.01"' in html and 'value="9"' in html  # learning rate and seed
    assert '<option value="chain" selected>' in html


def test_clone_of_a_missing_search_is_404(client, alice):
    client.force_login(alice)
    assert client.get(reverse("search_new"), {"clone": "999999"}).status_code == 404
    assert client.get(reverse("search_new"), {"clone": "abc"}).status_code == 404


def test_the_candidate_page_shows_metrics_heat_map_and_traceback(client, alice, generated):
    client.force_login(alice)
    finished = Candidate.objects.filter(search=generated, state="finished").first()
    html = client.get(reverse("candidate_detail", args=[generated.id, finished.id])).content.decode()
    assert 'id="confusion"' in html and "--share:" in html and 'id="traceback"' not in html
    assert f"{finished.best_val_accuracy:.4f}" in html and f"{finished.param_count}" in html
    assert finished.worker in html and 'data-arch-config="candidate-config"' in html
    failed = Candidate.objects.filter(search=generated, state="failed").first() or Candidate.objects.filter(
        search=generated).exclude(state="finished").first()
    Candidate.objects.filter(pk=failed.pk).update(state="failed", error="Traceback (most recent call last):\nValueError: boom")
    html = client.get(reverse("candidate_detail", args=[generated.id, failed.id])).content.decode()
    assert 'id="traceback"' in html and "ValueError: boom" in html and 'id="confusion-empty"' in html


def test_a_candidate_of_another_search_is_404_under_this_one(client, alice, generated, alice_search, finished_candidate):
    client.force_login(alice)
    assert client.get(reverse("candidate_detail", args=[generated.id, finished_candidate.id])).status_code == 404


def test_the_diff_page_puts_two_candidates_side_by_side(client, alice, generated):
    client.force_login(alice)
    a, b = Candidate.objects.filter(search=generated).order_by("index")[:2]
    html = client.get(reverse("search_diff", args=[generated.id]), {"a": a.index, "b": b.index}).content.decode()
    differing = [k for k in a.arch if a.arch[k] != b.arch[k]]
    assert html.count('class="differs"') == len(differing) > 0
    assert 'data-arch-key="a"' in html and 'data-arch-key="b"' in html
    assert client.get(reverse("search_diff", args=[generated.id]), {"a": a.index, "b": 9999}).status_code == 404


def test_the_architectures_page_counts_choices_among_the_top_k(client, alice, generated):
    client.force_login(alice)
    html = client.get(reverse("search_architectures", args=[generated.id]), {"k": "10"}).content.decode()
    assert "Choices among the top 10" in html and 'data-decision="activation"' in html
    empty = services.search_create(owner=alice, name="empty", dataset="digits", space="chain",
                                   strategy="random", max_candidates=2, epochs=1, seed=1)
    assert 'id="frequencies-empty"' in client.get(reverse("search_architectures", args=[empty.id])).content.decode()


def test_the_workers_page_shows_live_and_lost_workers_and_an_empty_state(client, alice, bob, generated, settings):
    settings.HEARTBEAT_TIMEOUT_SECONDS = 30
    client.force_login(alice)
    assert 'id="workers-empty"' in client.get(reverse("worker_list")).content.decode().split("<script")[0].replace(" hidden", "")
    running = Candidate.objects.filter(search=generated, state="running").first()
    Worker.objects.create(name="gpu0@fresh", host="fresh", device="cuda:0 (H100, 80 GB)", candidate=running,
                          last_heartbeat=timezone.now(), samples_per_second=1234.0, epochs_done=7)
    Worker.objects.create(name="gpu1@silent", host="silent", device="cpu",
                          last_heartbeat=timezone.now() - timedelta(minutes=5))
    html = client.get(reverse("worker_list")).content.decode()
    fresh = html.split('data-worker="gpu0@fresh"')[1].split("</tr>")[0]
    silent = html.split('data-worker="gpu1@silent"')[1].split("</tr>")[0]
    assert ">live<" in fresh and "1234 samples/s" in fresh and f"#{running.index} of generated" in fresh
    assert ">lost<" in silent and "idle" in silent
    client.force_login(bob)
    html = client.get(reverse("worker_list")).content.decode()
    assert "another user's search" in html and "of generated" not in html


def test_a_darts_search_page_shows_edge_weights_and_flags_a_skip_collapse(client, alice):
    search = services.search_create(owner=alice, name="darts", dataset="digits", space="cell", strategy="darts",
                                    max_candidates=2, epochs=1, seed=1)
    job = services.candidate_claim(services.search_advance(search.id)[0], worker="w", device="cpu")
    weights = {"e1_0": {"none": 0.1, "skip": 0.8, "conv3x3": 0.1}}
    services.candidate_note(job, key="edge_weights", value=[weights])
    skip_only = {e: "skip" for e in ("e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2")}
    services.oneshot_finish(job, proposals=[skip_only], extra={"skip_collapse": True})
    client.force_login(alice)
    html = client.get(reverse("search_detail", args=[search.id])).content.decode()
    assert 'id="darts-card"' in html and "skip 0.800" in html
    assert "the known DARTS collapse" in html and 'id="darts-collapse" hidden' not in html


def test_deterministic_mode_is_chosen_in_the_form_and_shown_on_the_search_page(client, alice):
    client.force_login(alice)
    client.post(reverse("search_new"), {**VALID, "deterministic": "on"})
    search = Search.objects.get()
    assert search.train_settings["deterministic"] is True
    assert "deterministic training" in client.get(search.url).content.decode()
    Search.objects.filter(pk=search.pk).update(train_settings={**search.train_settings, "deterministic": False})
    assert "deterministic training" not in client.get(search.url).content.decode()


def test_a_one_shot_search_reports_the_retrained_cells_accuracy_not_the_supernets(client, alice):
    from searches import selectors
    from searches.api.serializers import SearchSerializer

    search = services.search_create(owner=alice, name="darts", dataset="digits", space="cell", strategy="darts",
                                    max_candidates=2, epochs=1, seed=1)
    job = services.candidate_claim(services.search_advance(search.id)[0], worker="w", device="cpu")
    services.oneshot_finish(job, proposals=[{e: "conv3x3" for e in ("e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2")}],
                            extra={"skip_collapse": False})
    Candidate.objects.filter(pk=job.pk).update(best_val_accuracy=0.974)  # the supernet's own accuracy
    assert SearchSerializer(search).data["best_accuracy"] is None
    services.search_advance(search.id)  # queues the derived cell for retraining
    retrained = Candidate.objects.filter(search=search, kind="train").order_by("index")
    assert retrained.exists()
    retrained.update(best_val_accuracy=0.922)
    assert SearchSerializer(search).data["best_accuracy"] == 0.922
    assert selectors.search_list_for(alice).get(pk=search.pk).best_accuracy == 0.922
