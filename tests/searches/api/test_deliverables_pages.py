"""The bundle panel, its progress endpoint and download, by session; owner only."""
from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from searches import services
from searches.models import Bundle
from searches.urls_deliverables import urlpatterns

from factories import make_ready_bundle

pytestmark = pytest.mark.django_db


def page_urls(search, candidate):
    return {
        "bundle_request": ("post", reverse("bundle_request", args=[search.id, candidate.id])),
        "bundle_status": ("get", reverse("bundle_status", args=[search.id, candidate.id])),
        "bundle_download": ("get", reverse("bundle_download", args=[search.id, candidate.id])),
        "best_bundle_request": ("post", reverse("best_bundle_request", args=[search.id])),
        "search_export": ("get", reverse("search_export", args=[search.id, "epochs", "json"])),
        "api_tokens": ("get", reverse("api_tokens")),
        "api_token_revoke": ("post", reverse("api_token_revoke", args=[1])),
    }


def test_every_page_needs_a_login_and_hides_other_users_objects(client, alice, bob, alice_search, tmp_path):
    search, candidates = alice_search
    make_ready_bundle(candidates[1], tmp_path)
    urls = page_urls(search, candidates[1])
    assert set(urls) == {p.name for p in urlpatterns}, "a new page needs a case here"
    for name, (method, url) in urls.items():
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login")), name
    client.force_login(bob)
    for name, (method, url) in urls.items():
        if name != "api_tokens":  # bob's own (empty) token page
            assert getattr(client, method)(url).status_code == 404, name
    assert Bundle.objects.get().attempt == 1  # bob's requests built nothing


def test_the_panel_builds_then_polls_then_offers_the_download(client, alice, alice_search, tmp_path):
    search, candidates = alice_search
    client.force_login(alice)
    best = candidates[1]
    status_url = reverse("bundle_status", args=[search.id, best.id])
    assert client.get(status_url).json()["state"] is None

    response = client.post(reverse("best_bundle_request", args=[search.id]), {"next": "/somewhere/"})
    assert response.status_code == 302 and response.url == "/somewhere/"
    status = client.get(status_url).json()
    assert status["state"] == "queued" and 'data-busy="true"' in status["html"]

    bundle = services.bundle_start(Bundle.objects.get().id, 1, worker="w")
    services.bundle_progress(bundle, 42, "Exporting ONNX")
    status = client.get(status_url).json()
    assert (status["state"], status["progress"], status["message"]) == ("running", 42, "Exporting ONNX")
    assert "42% · Exporting ONNX" in status["html"]

    Bundle.objects.all().delete()
    make_ready_bundle(best, tmp_path, content=b"hello")
    status = client.get(status_url).json()
    html = status["html"]
    assert status["state"] == "ready" and 'data-busy="false"' in html
    assert "Download bundle" in html and "✗ not included: export failed: x" in html and "25% of the parameters" in html
    download = client.get(reverse("bundle_download", args=[search.id, best.id]))
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    assert b"".join(download.streaming_content) == open(Bundle.objects.get().path, "rb").read()


def test_the_panel_explains_unfinished_and_missing_candidates(alice_search, alice):
    search, candidates = alice_search
    request = RequestFactory().get("/")
    request.user = alice
    assert "No candidate has finished yet" in render_to_string("deliverables/bundle_panel.html",
                                                               {"candidate": None}, request=request)
    html = render_to_string("deliverables/bundle_panel.html", {"candidate": candidates[2]}, request=request)
    assert "this one is running" in html and "Build model bundle" not in html


def test_a_stale_bundle_asks_for_a_rebuild(client, alice, alice_search, tmp_path):
    search, candidates = alice_search
    make_ready_bundle(candidates[1], tmp_path)
    type(candidates[1]).objects.filter(pk=candidates[1].pk).update(checkpoint_sha256="f" * 64)
    client.force_login(alice)
    html = client.get(reverse("bundle_status", args=[search.id, candidates[1].id])).json()["html"]
    assert "checkpoint changed since its bundle was built" in html and "Download bundle" not in html
    assert client.get(reverse("bundle_download", args=[search.id, candidates[1].id])).status_code == 404


def test_requesting_a_bundle_of_a_running_candidate_says_why_not(client, alice, alice_search):
    search, candidates = alice_search
    client.force_login(alice)
    response = client.post(reverse("bundle_request", args=[search.id, candidates[2].id]), follow=True)
    assert "Only a finished candidate with a checkpoint has a model bundle" in response.content.decode()
    assert not Bundle.objects.exists()
