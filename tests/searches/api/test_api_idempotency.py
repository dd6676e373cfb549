"""Create with an Idempotency-Key (issue 14, item 3): a retried create gets the first one's
search, never a second."""
import pytest
from django.urls import reverse
from factories import client_with

from searches import services
from searches.models import Search

pytestmark = pytest.mark.django_db

VALID = {"name": "retried", "dataset": "digits", "space": "chain", "strategy": "random",
         "max_candidates": 4, "epochs": 2, "seed": 1}


def post(client, key=None, body=VALID):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(reverse("api-search-list"), body, format="json", **headers)


def test_a_retried_create_with_the_same_key_answers_the_same_search(alice_api, alice):
    first = post(alice_api, "3f1c-retry")
    again = post(alice_api, "3f1c-retry")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert Search.objects.filter(owner=alice).count() == 1
    assert post(alice_api, "another").json()["id"] != first.json()["id"]
    assert post(alice_api).status_code == 201  # no key: every create is new
    assert Search.objects.filter(owner=alice).count() == 3


def test_keys_are_per_user(alice_api, bob):
    first = post(alice_api, "shared-key")
    bobs = post(client_with(services.api_token_create(owner=bob, name="b")[1]), "shared-key")
    assert bobs.status_code == 201 and bobs.json()["id"] != first.json()["id"]


@pytest.mark.parametrize("key", ["x" * 201, "caf\u00e9", "tab\there"])
def test_a_bad_key_is_a_400_with_the_reason(alice_api, key):
    response = post(alice_api, key)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()
    assert not Search.objects.exists()


def test_the_service_returns_the_existing_search_for_a_used_key(alice):
    kwargs = dict(owner=alice, name="svc", dataset="digits", space="chain", strategy="random",
                  max_candidates=2, epochs=1, idempotency_key="k")
    assert services.search_create(**kwargs).id == services.search_create(**kwargs).id
