"""A search with real candidates and checkpoints, personal tokens, and API clients."""
from __future__ import annotations


import pytest

from searches import services

from factories import client_with, make_ready_bundle, make_search  # noqa: F401


@pytest.fixture
def alice_search(alice, checkpoint_dir):
    return make_search(alice, checkpoint_dir)


@pytest.fixture
def alice_key(alice):
    return services.api_token_create(owner=alice, name="laptop")[1]


@pytest.fixture
def bob_key(bob):
    return services.api_token_create(owner=bob, name="bob's")[1]


@pytest.fixture
def alice_api(alice_key):
    return client_with(alice_key)


@pytest.fixture
def bob_api(bob_key):
    return client_with(bob_key)


@pytest.fixture
def anon_api():
    return client_with()
