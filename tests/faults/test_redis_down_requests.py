"""Requests to a real Daphne while its Redis is away and right after it returns, and bad
input that used to answer 500 (issue 14, items 3 and 7). Redis here is a private
redis-server; the shared one is left alone."""
from __future__ import annotations

import json
import sys

import pytest
import requests
from factories import make_search
from processes import PrivateRedis, ServiceProcess, free_port, process_env
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from searches import services
from searches.api.views import search_form_data
from searches.models import Bundle, Search

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SEARCH = {"name": "while redis is away", "dataset": "synthetic", "max_candidates": 2, "epochs": 1}


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory):
    """Daphne against a private Redis: (base URL, the Redis server)."""
    tmp = tmp_path_factory.mktemp("redis-down")
    redis_server = PrivateRedis(tmp)
    env = dict(process_env(tmp / "checkpoints"), TEST_REDIS_URL=redis_server.url)
    port = free_port()
    server = ServiceProcess([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                             "nasweb.asgi:application"], env, tmp / "daphne.log")
    try:
        server.wait_for_port(port)
        yield f"127.0.0.1:{port}", redis_server, server
    finally:
        server.stop()
        redis_server.stop()


@pytest.fixture
def redis_up(stack):
    _, redis_server, _ = stack
    if redis_server.proc.poll() is not None:
        redis_server.start()
    yield
    if redis_server.proc.poll() is not None:
        redis_server.start()


@pytest.fixture
def user_key(alice):
    return services.api_token_create(owner=alice, name="fault test")[1]


def api(stack, key, method, path, **kwargs):
    host = stack[0]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **kwargs.pop("headers", {})}
    return requests.request(method, f"http://{host}{path}", headers=headers, timeout=60, **kwargs)


def handshake(stack, key, path):
    """Open a websocket: ("open", first message) or ("refused", HTTP status)."""
    host = stack[0]
    try:
        with ws_connect(f"ws://{host}{path}", origin=f"http://{host}", open_timeout=30,
                        additional_headers={"Authorization": f"Bearer {key}"}) as ws:
            try:
                return "open", json.loads(ws.recv(timeout=30))
            except Exception as exc:  # closed by the server after accepting
                return "closed", getattr(getattr(exc, "rcvd", None), "code", None)
    except InvalidStatus as exc:
        return "refused", exc.response.status_code


# --- item 7: bad input ----------------------------------------------------------------

def test_a_lone_surrogate_in_a_name_is_a_400_with_a_reason(stack, redis_up, user_key):
    body = '{"name": "\\ud800x", "dataset": "synthetic"}'  # JSON escapes for a lone surrogate
    response = api(stack, user_key, "POST", "/api/searches/", data=body.encode())
    assert response.status_code == 400, response.text[:500]
    assert "name holds a lone UTF-16 surrogate" in response.json()["detail"]
    assert not Search.objects.exists()


def test_a_20_mb_body_gets_a_json_refusal(stack, redis_up, user_key):
    body = json.dumps({"name": "x" * (20 * 1024 * 1024)}).encode()
    response = api(stack, user_key, "POST", "/api/searches/", data=body)
    assert response.status_code in (400, 413), response.text[:500]
    assert response.headers["Content-Type"].startswith("application/json")
    assert "too large" in response.json()["detail"].lower()


@pytest.mark.parametrize("path", ["/ws/searches/-1/", "/ws/searches/abc/", "/ws/nothing/"])
def test_unmatched_websocket_paths_are_not_found_not_500(stack, redis_up, user_key, path):
    outcome = handshake(stack, user_key, path)
    assert outcome in (("refused", 403), ("closed", 4404)), outcome


# --- items 3 and 7: Redis away --------------------------------------------------------

def test_websocket_handshakes_while_redis_is_away_and_right_after_it_returns(stack, redis_up, alice, user_key):
    search = services.search_create(owner=alice, name="watched", dataset="synthetic", space="chain",
                                    strategy="random", max_candidates=2, epochs=1)
    path = f"/ws/searches/{search.id}/"
    kind, first = handshake(stack, user_key, path)
    assert kind == "open" and first["type"] == "snapshot"  # the pool now holds a connection
    stack[1].stop()
    assert handshake(stack, user_key, path)[0] in ("refused", "closed")  # refused, never a 500
    assert "Internal server error" not in stack[2].output()
    stack[1].start()
    kind, first = handshake(stack, user_key, path)  # the stale pooled connection is replaced
    assert kind == "open" and first["type"] == "snapshot", (kind, first)


def test_create_while_redis_is_away_commits_and_answers_success_or_nothing(stack, redis_up, alice, user_key):
    stack[1].stop()
    response = api(stack, user_key, "POST", "/api/searches/", json=SEARCH, headers={"Idempotency-Key": "k-1"})
    assert response.status_code in (201, 503), response.text[:500]
    created = Search.objects.filter(owner=alice)
    if response.status_code == 201:
        assert created.count() == 1 and created.get().id == response.json()["id"]
    else:
        assert not created.exists() and response.json()["detail"]
    # The client retries with the same key (Redis back or not): still one search.
    stack[1].start()
    again = api(stack, user_key, "POST", "/api/searches/", json=SEARCH, headers={"Idempotency-Key": "k-1"})
    assert again.status_code in (200, 201) and created.count() == 1
    assert again.json()["id"] == created.get().id


def test_log_in_while_redis_is_away_is_a_503_with_a_reason(stack, redis_up, alice):
    session = requests.Session()
    base = f"http://{stack[0]}"
    session.get(f"{base}/login/", timeout=30)
    stack[1].stop()
    response = session.post(f"{base}/login/", data={"username": "alice", "password": "correct horse battery",
                                                     "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                            headers={"Referer": f"{base}/login/"}, timeout=60, allow_redirects=False)
    assert response.status_code == 503 and "Redis" in response.text
    assert "Traceback" not in response.text
    stack[1].start()  # the cache's pooled connection is stale now: the first log-in still works
    response = session.post(f"{base}/login/", data={"username": "alice", "password": "correct horse battery",
                                                     "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                            headers={"Referer": f"{base}/login/"}, timeout=60, allow_redirects=False)
    assert response.status_code == 302


def test_a_bundle_request_while_redis_is_away_is_accepted_and_sent_later(stack, redis_up, alice, user_key,
                                                                        checkpoint_dir):
    _, (candidate,) = make_search(alice, checkpoint_dir, finished=(0.7,), running=0)
    stack[1].stop()
    response = api(stack, user_key, "POST", f"/api/searches/{candidate.search_id}/candidates/{candidate.id}/bundle/",
                   json={})
    assert response.status_code in (202, 503), response.text[:500]
    bundles = Bundle.objects.filter(candidate=candidate)
    if response.status_code == 202:  # committed: queue_repair sends it once Redis is back
        assert bundles.get().state == Bundle.State.QUEUED
        assert bundles.get().id in services.queue_repair(timeout_seconds=0)["bundles"]
    else:
        assert not bundles.exists()


def test_pages_that_need_redis_say_it_is_unavailable(stack, redis_up, alice, user_key):
    """Starting a search from the page needs the broker: 503 page or a committed search,
    never a traceback; pages that only read Postgres still work."""
    session = requests.Session()
    base = f"http://{stack[0]}"
    session.get(f"{base}/login/", timeout=30)
    session.post(f"{base}/login/", data={"username": "alice", "password": "correct horse battery",
                                         "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                 headers={"Referer": f"{base}/login/"}, timeout=60)
    stack[1].stop()
    assert session.get(f"{base}/", timeout=30).status_code == 200
    form = session.get(f"{base}/searches/new/", timeout=30)
    assert form.status_code == 200
    data = dict(search_form_data({"name": "from the page", "dataset": "synthetic", "max_candidates": 2,
                                  "epochs": 1}), csrfmiddlewaretoken=session.cookies["csrftoken"])
    response = session.post(f"{base}/searches/new/", data=data, headers={"Referer": f"{base}/searches/new/"},
                            timeout=60, allow_redirects=False)
    assert response.status_code in (302, 503, 200), response.text[:1000]
    assert "Traceback" not in response.text and response.status_code != 500
    if response.status_code == 503:
        assert "unavailable" in response.text.lower() and not Search.objects.filter(name="from the page").exists()
