"""Personal API tokens: the settings page, what is stored, and what a token may see."""
from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.urls import reverse

from searches import services
from searches.models import ApiToken

from factories import client_with

pytestmark = pytest.mark.django_db


def test_the_settings_page_creates_a_token_and_shows_the_key_once(client, alice):
    client.force_login(alice)
    response = client.post(reverse("api_tokens"), {"name": "laptop"})
    html = response.content.decode()
    token = ApiToken.objects.get(owner=alice)
    key = html.split('id="new-token-key">')[1].split("<")[0]
    assert key.startswith("nas_") and len(key) > 40 and token.prefix == key[:10]
    assert token.key_hash != key and key not in str(ApiToken.objects.values_list().get())  # only a hash is kept
    assert client_with(key).get(reverse("api-me")).json()["username"] == "alice"
    again = client.get(reverse("api_tokens")).content.decode()
    assert key not in again and "laptop" in again and token.prefix in again


def test_a_token_needs_a_name(client, alice):
    client.force_login(alice)
    response = client.post(reverse("api_tokens"), {"name": "  "})
    assert response.status_code == 400 and "Give the token a name" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_revoking_refuses_the_token_at_once(client, alice, alice_key):
    api = client_with(alice_key)
    assert api.get(reverse("api-search-list")).status_code == 200
    client.force_login(alice)
    token = ApiToken.objects.get(owner=alice)
    response = client.post(reverse("api_token_revoke", args=[token.id]))
    assert response.status_code == 302
    refused = api.get(reverse("api-search-list"))
    assert refused.status_code == 401 and refused.json()["detail"] == "Invalid or revoked token."
    assert "revoked" in client.get(reverse("api_tokens")).content.decode()


def test_nobody_else_can_revoke_or_see_your_tokens(client, alice, bob, alice_key):
    token = ApiToken.objects.get(owner=alice)
    assert client.get(reverse("api_tokens")).status_code == 302  # anonymous: to the login page
    assert client.post(reverse("api_token_revoke", args=[token.id])).status_code == 302
    client.force_login(bob)
    assert client.post(reverse("api_token_revoke", args=[token.id])).status_code == 404
    assert token.prefix not in client.get(reverse("api_tokens")).content.decode()
    token.refresh_from_db()
    assert token.revoked_at is None


@pytest.mark.parametrize("header,message", [
    ("Bearer nas_not-a-real-token", "Invalid or revoked token."),
    ("Bearer", "Send the token as 'Authorization: Bearer <token>'."),
    ("Bearer a b", "Send the token as 'Authorization: Bearer <token>'."),
])
def test_bad_tokens_are_401_with_a_reason(header, message):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(reverse("api-search-list"))
    assert response.status_code == 401 and response.json()["detail"] == message
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_use_is_recorded_at_most_once_a_minute(alice_key, django_assert_num_queries):
    api = client_with(alice_key)
    api.get(reverse("api-me"))
    token = ApiToken.objects.get()
    first = token.last_used_at
    assert first is not None
    api.get(reverse("api-me"))
    token.refresh_from_db()
    assert token.last_used_at == first


def test_the_session_works_too_but_needs_csrf_for_writes(alice, alice_search):
    from rest_framework.test import APIClient

    search, _ = alice_search
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get(reverse("api-search-detail", args=[search.id])).status_code == 200
    response = client.post(reverse("api-search-pause", args=[search.id]), {}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]


def test_active_tokens_are_limited(alice):
    for i in range(services.MAX_ACTIVE_API_TOKENS):
        services.api_token_create(owner=alice, name=f"t{i}")
    with pytest.raises(services.ValidationError, match="revoke one first"):
        services.api_token_create(owner=alice, name="one more")


# --- the websocket, for the CLI ------------------------------------------------------

def _ws(path, headers):
    from nasweb.asgi import application

    return WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1")] + headers)


@pytest.mark.django_db(transaction=True)
def test_a_token_opens_its_owners_websocket_and_no_one_elses(alice, bob, checkpoint_dir):
    from factories import make_search

    search, _ = make_search(alice, checkpoint_dir, finished=(0.7,), running=0)
    alice_key = services.api_token_create(owner=alice, name="cli")[1]
    bob_key = services.api_token_create(owner=bob, name="cli")[1]
    path = f"/ws/searches/{search.id}/"

    async def scenario():
        comm = _ws(path, [(b"authorization", f"Bearer {alice_key}".encode())])
        connected, _ = await comm.connect()
        assert connected
        snapshot = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        outcomes = []
        for headers in ([(b"authorization", f"Bearer {bob_key}".encode())],
                        [(b"authorization", b"Bearer nas_wrong")], []):
            connected, code = await _ws(path, headers).connect()
            outcomes.append((connected, code))  # refused: nothing left to close
        return snapshot, outcomes

    snapshot, outcomes = asyncio.run(scenario())
    assert snapshot["type"] == "snapshot" and snapshot["search"]["id"] == search.id
    assert outcomes == [(False, 4404), (False, 4401), (False, 4401)]
