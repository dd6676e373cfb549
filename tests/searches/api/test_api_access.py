"""Every API endpoint for its owner (allowed), another user (404: as absent as a missing
search) and an anonymous client (401). A route of searches/api/urls.py without a case
here fails ``test_every_api_route_has_an_access_case``."""
from __future__ import annotations

import pytest
from django.urls import reverse

from searches import services
from searches.api import urls as api_urls
from searches.models import Search

from factories import make_ready_bundle  # noqa: E402  (tests/searches/api/conftest.py)

pytestmark = pytest.mark.django_db


def _search_case(name, method, owner_status, *, cand=None, prepare=None, body=None):
    return pytest.param(name, method, owner_status, cand, prepare, body, id=f"{method} {name}")


def _request_bundle(search, candidates, tmp_path):
    services.bundle_request(candidates[1])


def _ready_bundle(search, candidates, tmp_path):
    make_ready_bundle(candidates[1], tmp_path)  # candidates[1] (0.8) is the best


def _pause(search, candidates, tmp_path):
    services.search_pause(search)


# (url name, method, status for the owner, which candidate (None: search-level), prepare, body)
SEARCH_CASES = [
    _search_case("api-search-detail", "get", 200),
    _search_case("api-search-pause", "post", 200),
    _search_case("api-search-resume", "post", 200, prepare=_pause),
    _search_case("api-search-cancel", "post", 200),
    _search_case("api-search-clone", "post", 201, body={"name": "again"}),
    _search_case("api-candidate-list", "get", 200),
    _search_case("api-candidate-detail", "get", 200, cand=0),
    _search_case("api-checkpoint", "get", 200, cand=0),
    _search_case("api-bundle", "get", 200, cand=1, prepare=_request_bundle),
    _search_case("api-bundle", "post", 202, cand=1),
    _search_case("api-bundle-download", "get", 200, cand=1, prepare=_ready_bundle),
    _search_case("api-best", "get", 200),
    _search_case("api-best-checkpoint", "get", 200),
    _search_case("api-best-bundle", "get", 200, prepare=_request_bundle),
    _search_case("api-best-bundle", "post", 202),
    _search_case("api-best-bundle-download", "get", 200, prepare=_ready_bundle),
    _search_case("api-export-candidates-csv", "get", 200),
    _search_case("api-export-candidates-json", "get", 200),
    _search_case("api-export-epochs-csv", "get", 200),
    _search_case("api-export-epochs-json", "get", 200),
]
# Routes that are not about one search: anonymous is refused, any user is served (their own data).
GLOBAL_CASES = [("api-me", "get", 200), ("api-search-list", "get", 200), ("api-search-list", "post", 400),
                ("api-worker-list", "get", 200), ("api-schema", "get", 200), ("api-docs", "get", 200)]


def _url(name, search, candidates, cand):
    args = [search.id] + ([candidates[cand].id] if cand is not None else [])
    return reverse(name, args=args)


def _call(client, method, url, body):
    return getattr(client, method)(url, body or {}, format="json") if method == "post" else client.get(url)


@pytest.mark.parametrize("name,method,owner_status,cand,prepare,body", SEARCH_CASES)
def test_search_endpoints_serve_the_owner_only(name, method, owner_status, cand, prepare, body, alice_search,
                                               alice_api, bob_api, anon_api, tmp_path):
    search, candidates = alice_search
    if prepare:
        prepare(search, candidates, tmp_path)
    url = _url(name, search, candidates, cand)
    search.refresh_from_db()
    before = Search.objects.count(), search.state

    anonymous = _call(anon_api, method, url, body)
    assert anonymous.status_code == 401, anonymous.content
    assert "Authentication credentials were not provided" in anonymous.json()["detail"]
    other = _call(bob_api, method, url, body)
    assert other.status_code == 404, other.content
    search.refresh_from_db()
    assert (Search.objects.count(), search.state) == before  # refusals changed nothing

    owner = _call(alice_api, method, url, body)
    assert owner.status_code == owner_status, getattr(owner, "content", b"")[:500]


def test_a_missing_search_is_a_404_like_another_users(alice_api):
    assert alice_api.get(reverse("api-search-detail", args=[987654])).status_code == 404


@pytest.mark.parametrize("name,method,owner_status", GLOBAL_CASES)
def test_global_endpoints_refuse_anonymous_and_show_each_user_their_own(name, method, owner_status, alice_search,
                                                                        alice_api, bob_api, anon_api):
    url = reverse(name)
    assert _call(anon_api, method, url, None).status_code == 401
    response = _call(alice_api, method, url, None)
    assert response.status_code == owner_status
    if name == "api-search-list" and method == "get":
        assert [s["name"] for s in response.json()["results"]] == ["alice's"]
        assert bob_api.get(url).json()["results"] == []
    if name == "api-me":
        assert response.json() == {"username": "alice", "token": "laptop"}
        assert bob_api.get(url).json()["username"] == "bob"


def test_every_api_route_has_an_access_case():
    covered = {p.values[0] for p in SEARCH_CASES} | {name for name, _, _ in GLOBAL_CASES}
    routes = {p.name for p in api_urls.urlpatterns}
    assert routes - covered == set(), "add an owner / other user / anonymous case for these routes"
