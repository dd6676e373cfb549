"""Every route refuses anonymous users and other users' eyes.

The test walks the URL configuration: a new route without an entry in
ACCESS fails the suite until someone says who may reach it.
"""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from factories import make_ready_bundle, make_search

from searches import services
from searches.models import Search

pytestmark = pytest.mark.django_db

PUBLIC, LOGIN, OWNED = "public", "login", "owned"

# name -> (who may reach it, HTTP method, URL kwargs taken from the `world` fixture)
S = ("search_id",)
C = ("search_id", "candidate_id")
ACCESS = {
    "login": (PUBLIC, "get", ()),
    "logout": (PUBLIC, "post", ()),
    "favicon": (PUBLIC, "get", ()),
    "search_list": (LOGIN, "get", ()),
    "search_new": (LOGIN, "get", ()),
    "worker_list": (LOGIN, "get", ()),
    "search_compare": (LOGIN, "get", ()),
    "dataset_list": (LOGIN, "get", ()),
    "api_tokens": (LOGIN, "get", ()),
    "api-me": (LOGIN, "get", ()),
    "api-search-list": (LOGIN, "get", ()),
    "api-worker-list": (LOGIN, "get", ()),
    "api-schema": (LOGIN, "get", ()),
    "api-docs": (LOGIN, "get", ()),
    "dataset_detail": (OWNED, "get", ("dataset_id",)),
    "dataset_delete": (OWNED, "post", ("dataset_id",)),
    "api_token_revoke": (OWNED, "post", ("token_id",)),
    "search_detail": (OWNED, "get", S),
    "search_leaderboard": (OWNED, "get", S),
    "search_curves": (OWNED, "get", S),
    "search_scatter": (OWNED, "get", S),
    "search_pause": (OWNED, "post", S),
    "search_resume": (OWNED, "post", S),
    "search_cancel": (OWNED, "post", S),
    "search_delete": (OWNED, "post", S),
    "search_architectures": (OWNED, "get", S),
    "search_diff": (OWNED, "get", S),
    "search_export": (OWNED, "get", ("search_id", "kind", "fmt")),
    "best_checkpoint": (OWNED, "get", S),
    "best_bundle_request": (OWNED, "post", S),
    "candidate_detail": (OWNED, "get", C),
    "candidate_checkpoint": (OWNED, "get", C),
    "bundle_request": (OWNED, "post", C),
    "bundle_status": (OWNED, "get", C),
    "bundle_download": (OWNED, "get", C),
    "api-search-detail": (OWNED, "get", S),
    "api-search-pause": (OWNED, "post", S),
    "api-search-resume": (OWNED, "post", S),
    "api-search-cancel": (OWNED, "post", S),
    "api-search-clone": (OWNED, "post", S),
    "api-candidate-list": (OWNED, "get", S),
    "api-candidate-detail": (OWNED, "get", C),
    "api-checkpoint": (OWNED, "get", C),
    "api-bundle": (OWNED, "get", C),
    "api-bundle-download": (OWNED, "get", C),
    "api-best": (OWNED, "get", S),
    "api-best-checkpoint": (OWNED, "get", S),
    "api-best-bundle": (OWNED, "get", S),
    "api-best-bundle-download": (OWNED, "get", S),
    "api-export-candidates-csv": (OWNED, "get", S),
    "api-export-candidates-json": (OWNED, "get", S),
    "api-export-epochs-csv": (OWNED, "get", S),
    "api-export-epochs-json": (OWNED, "get", S),
}


def named_routes(patterns=None):
    for p in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(p, URLResolver):
            if str(p.pattern).startswith("admin/"):
                continue  # Django's admin guards itself (staff only)
            yield from named_routes(p.url_patterns)
        elif isinstance(p, URLPattern):
            yield p.name


def test_every_route_says_who_may_reach_it():
    routes = set(named_routes())
    assert None not in routes, "every route needs a name so this test can check it"
    assert routes - set(ACCESS) == set(), "new routes need an entry in ACCESS"
    assert set(ACCESS) - routes == set(), "ACCESS names routes that no longer exist"


@pytest.fixture
def world(alice, checkpoint_dir, tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    search, candidates = make_search(alice, checkpoint_dir)
    best = candidates[1]  # the 0.8 one: "best of search" routes use its bundle
    make_ready_bundle(best, tmp_path)
    dataset = services.dataset_upload(owner=alice, name="words", upload=SimpleUploadedFile(
        "words.csv", b"text,label\n" + b"".join(b"good day %d,pos\nbad day %d,neg\n" % (i, i) for i in range(10))))
    token, _ = services.api_token_create(owner=alice, name="laptop")
    return {"search_id": search.id, "candidate_id": best.id, "dataset_id": dataset.id,
            "token_id": token.id, "kind": "candidates", "fmt": "csv", "search": search}


def url_for(name, world):
    return reverse(name, kwargs={k: world[k] for k in ACCESS[name][2]})


def is_api(name):
    return name.startswith("api-")


@pytest.mark.parametrize("name", sorted(n for n, spec in ACCESS.items() if spec[0] != PUBLIC))
def test_anonymous_users_are_sent_to_log_in_or_refused(name, world):
    response = getattr(Client(), ACCESS[name][1])(url_for(name, world))
    if is_api(name):
        assert response.status_code in (401, 403), response.status_code
    else:
        assert response.status_code == 302 and response.url.startswith(reverse("login")), response.status_code


@pytest.mark.parametrize("name", sorted(n for n, spec in ACCESS.items() if spec[0] == OWNED))
def test_another_user_gets_not_found_and_changes_nothing(name, world, bob):
    client = Client()
    client.force_login(bob)
    response = getattr(client, ACCESS[name][1])(url_for(name, world))
    assert response.status_code in (403, 404), response.status_code
    assert Search.objects.get(id=world["search_id"]).state == world["search"].state


@pytest.mark.parametrize("name", sorted(n for n, spec in ACCESS.items() if spec[0] == OWNED and spec[1] == "get"))
def test_the_owner_reaches_what_another_user_cannot(name, world, alice):
    # Without this, a route that answers 404 to everyone would pass the test above.
    client = Client()
    client.force_login(alice)
    assert client.get(url_for(name, world)).status_code == 200


@pytest.mark.parametrize("name", sorted(n for n, spec in ACCESS.items() if spec[0] == LOGIN))
def test_lists_show_another_user_nothing_of_alices(name, world, bob):
    client = Client()
    client.force_login(bob)
    response = client.get(url_for(name, world))
    assert response.status_code == 200
    if not name.startswith("api-schema") and not name.startswith("api-docs"):
        assert "alice&#x27;s" not in response.content.decode() and "alice's" not in response.content.decode()


def test_the_comparison_page_shows_another_users_search_to_nobody(world, bob):
    client = Client()
    client.force_login(bob)
    sid = world["search_id"]
    page = client.get(reverse("search_compare"), {"s": [sid], "decisions": sid}).content.decode()
    assert world["search"].name not in page
    client.force_login(world["search"].owner)
    assert world["search"].name in client.get(reverse("search_compare"), {"s": [sid]}).content.decode()
