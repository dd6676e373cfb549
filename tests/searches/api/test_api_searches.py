"""The search endpoints: creation with the form's checks and messages, controls, the
leaderboard's sorting and paging, candidate details, workers."""
from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from searches import services
from searches.api.serializers import make_search_form
from searches.models import Bundle, Search, Worker

pytestmark = pytest.mark.django_db

VALID = {"name": "from the api", "dataset": "digits", "space": "chain", "strategy": "random",
         "max_candidates": 6, "epochs": 3, "parallel": 2, "seed": 11, "batch_size": 32, "lr": 0.01}
FORM_VALID = {"name": "from form", "dataset": "digits", "space": "chain", "strategy": "random",
              "max_candidates": "6", "epochs": "3", "parallel": "2", "objective": "val_accuracy",
              "seed": "", "batch_size": "64", "lr": "0.003"}


def test_create_starts_a_search_for_the_tokens_owner(alice, alice_api):
    response = alice_api.post(reverse("api-search-list"), VALID, format="json")
    assert response.status_code == 201, response.content
    search = Search.objects.get()
    assert search.owner == alice and search.name == "from the api"
    assert (search.max_candidates, search.epochs, search.parallel, search.seed) == (6, 3, 2, 11)
    assert search.train_settings["batch_size"] == 32 and search.train_settings["lr"] == 0.01
    body = response.json()
    assert body["id"] == search.id and body["state"] == "queued" and body["url"].endswith(search.url)


def test_create_fills_omitted_fields_with_the_forms_defaults(alice_api):
    response = alice_api.post(reverse("api-search-list"), {"name": "defaults"}, format="json")
    assert response.status_code == 201, response.content
    search = Search.objects.get()
    form = make_search_form()
    assert (search.dataset, search.space, search.max_candidates, search.epochs) == (
        form.fields["dataset"].initial, form.fields["space"].initial, form.fields["max_candidates"].initial,
        form.fields["epochs"].initial)


@pytest.mark.parametrize("field,value", [
    ("max_candidates", "0"), ("epochs", "abc"), ("parallel", "7"), ("dataset", "cifar10"), ("space", "nope"),
    ("name", ""), ("lr", "-1"), ("seed", "-3"), ("batch_size", "1.5"),
])
def test_create_refuses_what_the_form_refuses_with_the_same_messages(alice, alice_api, field, value):
    # What the page posts: every field, its default unless the user changed it.
    posted = {name: f.initial for name, f in make_search_form().fields.items() if f.initial is not None}
    posted.update(FORM_VALID, **{field: value})
    form = make_search_form(posted, user=alice)
    assert not form.is_valid()
    response = alice_api.post(reverse("api-search-list"), posted, format="json")
    assert response.status_code == 400
    assert response.json()[field] == form.errors[field]
    assert not Search.objects.exists()


def test_service_level_refusals_come_back_as_400_with_the_field(alice_api):
    response = alice_api.post(reverse("api-search-list"), dict(VALID, space="text"), format="json")
    assert response.status_code == 400
    assert "needs a image-classification space" in response.json()["space"][0]
    assert not Search.objects.exists()


@pytest.mark.parametrize("body,field,message", [
    (["not", "an", "object"], "non_field_errors", "Send a JSON object"),
    (dict(VALID, epoch=3), "epoch", "Unknown field."),
    (dict(VALID, epochs={"a": 1}), "epochs", "Expected a single value"),
    (dict(VALID, epochs=True), "epochs", "Enter a whole number."),
    (dict(VALID, name="x" * 201), "name", "at most 200 characters"),
])
def test_malformed_bodies_are_refused_with_a_message(alice_api, body, field, message):
    response = alice_api.post(reverse("api-search-list"), body, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert not Search.objects.exists()


def test_broken_json_is_a_400(alice_api):
    response = alice_api.generic("POST", reverse("api-search-list"), "{not json", content_type="application/json")
    assert response.status_code == 400 and "JSON parse error" in response.json()["detail"]


def test_pause_resume_cancel_and_their_refusals(alice_api, alice_search):
    search, _ = alice_search
    def post(action):
        return alice_api.post(reverse(f"api-search-{action}", args=[search.id]), format="json")

    assert post("resume").status_code == 409
    paused = post("pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    assert "Only a queued or running search can be paused" in post("pause").json()["detail"]
    assert post("resume").json()["state"] == "running"
    assert post("cancel").json()["state"] == "cancelled"
    refused = post("cancel")
    assert refused.status_code == 409 and "already ended (cancelled)" in refused.json()["detail"]


def test_clone_copies_every_setting_and_the_seed(alice_api, alice_search):
    search, _ = alice_search
    response = alice_api.post(reverse("api-search-clone", args=[search.id]), {}, format="json")
    assert response.status_code == 201
    clone = Search.objects.get(pk=response.json()["id"])
    assert clone.name == "alice's (copy)" and clone.state == "queued"
    for field in ("owner", "dataset", "space", "space_settings", "strategy", "max_candidates", "epochs",
                  "parallel", "seed", "train_settings", "objectives", "early_stopping"):
        assert getattr(clone, field) == getattr(search, field), field
    named = alice_api.post(reverse("api-search-clone", args=[search.id]), {"name": "x" * 300}, format="json")
    assert named.status_code == 400 and "name" in named.json()


def test_candidates_sort_filter_and_page(alice_api, alice_search):
    search, candidates = alice_search
    url = reverse("api-candidate-list", args=[search.id])
    body = alice_api.get(url, {"sort": "-best"}).json()
    assert body["count"] == 3
    assert [c["best_val_accuracy"] for c in body["results"]] == [0.8, 0.6, 0.5]
    assert [c["best_val_accuracy"] for c in alice_api.get(url, {"sort": "best"}).json()["results"]] == [0.5, 0.6, 0.8]
    page = alice_api.get(url, {"sort": "index", "page_size": 2, "page": 2}).json()
    assert [c["index"] for c in page["results"]] == [2] and page["previous"] and page["next"] is None
    running = alice_api.get(url, {"state": "running"}).json()
    assert [c["id"] for c in running["results"]] == [candidates[2].id]
    assert alice_api.get(url, {"page": 9}).status_code == 404
    bad = alice_api.get(url, {"sort": "colour"})
    assert bad.status_code == 400 and "Sort by one of" in bad.json()["sort"][0]
    assert alice_api.get(url, {"state": "asleep"}).status_code == 400


def test_candidate_detail_has_its_curve_and_bundle(alice_api, alice_search):
    search, candidates = alice_search
    url = reverse("api-candidate-detail", args=[search.id, candidates[1].id])
    body = alice_api.get(url).json()
    assert [(e["epoch"], e["val_accuracy"]) for e in body["curve"]] == [(1, 0.4), (2, 0.8)]
    assert body["bundle"] is None and body["has_checkpoint"] is True
    services.bundle_request(candidates[1])
    assert alice_api.get(url).json()["bundle"]["state"] == "queued"
    best = alice_api.get(reverse("api-best", args=[search.id])).json()
    assert best["id"] == candidates[1].id


def test_bundle_requests_are_refused_for_unfinished_candidates(alice_api, alice_search):
    search, candidates = alice_search
    response = alice_api.post(reverse("api-bundle", args=[search.id, candidates[2].id]), {}, format="json")
    assert response.status_code == 409 and "is running" in response.json()["detail"]
    assert not Bundle.objects.exists()
    missing = alice_api.get(reverse("api-bundle", args=[search.id, candidates[0].id]))
    assert missing.status_code == 404 and "POST to build one" in missing.json()["detail"]
    not_ready = alice_api.get(reverse("api-bundle-download", args=[search.id, candidates[0].id]))
    assert not_ready.status_code == 404 and "request one first" in not_ready.json()["detail"]


def test_best_endpoints_say_when_nothing_finished(alice, alice_api, checkpoint_dir):
    from factories import make_search

    search, _ = make_search(alice, checkpoint_dir, name="young", finished=(), running=1)
    for name in ("api-best", "api-best-checkpoint", "api-best-bundle"):
        response = alice_api.get(reverse(name, args=[search.id]))
        assert response.status_code == 404 and "No candidate of this search has finished" in response.json()["detail"]


def test_workers_name_only_your_own_candidates(alice_api, bob_api, alice_search):
    _, candidates = alice_search
    Worker.objects.create(name="gpu0@host", host="host", device="CPU", candidate=candidates[2],
                          last_heartbeat=timezone.now())
    mine = alice_api.get(reverse("api-worker-list")).json()
    theirs = bob_api.get(reverse("api-worker-list")).json()
    assert mine[0]["candidate"]["id"] == candidates[2].id and mine[0]["busy"] is True
    assert theirs[0]["candidate"] is None and theirs[0]["name"] == "gpu0@host"
