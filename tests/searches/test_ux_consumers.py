"""The websockets added for issue 18 (in-epoch progress and logs, the live search list), with
their access rules, against the real channels_redis layer."""
import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from searches import events, services
from searches.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from searches.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)
app = URLRouter(websocket_urlpatterns)


def socket(user, path):
    comm = WebsocketCommunicator(app, path)
    comm.scope["user"] = user
    return comm


@pytest.fixture
def two_running(alice):
    search = services.search_create(owner=alice, name="live", dataset="digits", space="chain", strategy="random",
                                    max_candidates=2, epochs=1, parallel=2, seed=1)
    ids = services.search_advance(search.id)
    return search, [services.candidate_claim(cid, worker="w", device="cpu") for cid in ids]


def test_ux_the_live_socket_is_for_the_owner_only(alice, bob, two_running):
    search, _ = two_running

    async def close_code(user):
        comm = socket(user, f"/ws/live/searches/{search.id}/")
        connected, code = await comm.connect()
        await comm.disconnect()
        return connected, code

    assert asyncio.run(close_code(AnonymousUser())) == (False, CLOSE_UNAUTHENTICATED)
    assert asyncio.run(close_code(bob)) == (False, CLOSE_NOT_FOUND)


def test_ux_a_candidate_socket_sends_the_stored_log_after_a_line_then_only_its_own_events(alice, two_running):
    search, (one, other) = two_running
    services.candidate_log_append(one.id, first_line=1, lines=["first", "second", "third"])

    async def scenario():
        comm = socket(alice, f"/ws/live/searches/{search.id}/?candidate={one.id}&after=1")
        assert (await comm.connect())[0]
        stored = await comm.receive_json_from(timeout=5)
        await database_sync_to_async(events.publish_live)(
            search.id, {"type": "progress", "candidate": other.id, "phase": "training", "batch": 1, "batches": 9})
        await database_sync_to_async(events.publish_live)(
            search.id, {"type": "progress", "candidate": one.id, "phase": "training", "batch": 2, "batches": 9,
                        "lines": [[4, "fourth"]]})
        mine = await comm.receive_json_from(timeout=5)
        nothing_else = await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()
        return stored, mine, nothing_else

    stored, mine, nothing_else = asyncio.run(scenario())
    assert stored == {"type": "log", "candidate": one.id, "lines": [[2, "second"], [3, "third"]]}
    assert mine["candidate"] == one.id and mine["batch"] == 2 and mine["lines"] == [[4, "fourth"]]
    assert nothing_else


def test_ux_a_candidate_page_that_saw_a_gap_gets_the_stored_lines_again_on_asking(alice, two_running):
    """Lines sent live before the page's socket opened, and stored only later, are asked for:
    ``{"type": "log", "after": n}`` answers with the stored lines after n."""
    search, (one, other) = two_running

    async def scenario():
        comm = socket(alice, f"/ws/live/searches/{search.id}/?candidate={one.id}&after=0")
        assert (await comm.connect())[0]
        first = await comm.receive_json_from(timeout=5)
        await database_sync_to_async(services.candidate_log_append)(one.id, first_line=1, lines=["one", "two"])
        await comm.send_json_to({"type": "log", "after": 1})
        again = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        foreign = socket(alice, f"/ws/live/searches/{search.id}/?candidate=999999")
        assert (await foreign.connect())[0]
        await foreign.send_json_to({"type": "log", "after": 0})
        foreign_quiet = await foreign.receive_nothing(timeout=0.3)
        await foreign.disconnect()
        return first, again, foreign_quiet

    first, again, foreign_quiet = asyncio.run(scenario())
    assert first == {"type": "log", "candidate": one.id, "lines": []}
    assert again == {"type": "log", "candidate": one.id, "lines": [[2, "two"]]}
    assert foreign_quiet  # a candidate outside the search has no log to ask for


def test_ux_the_search_socket_gets_every_candidates_progress_without_log_lines(alice, two_running):
    search, (one, other) = two_running

    async def scenario():
        comm = socket(alice, f"/ws/live/searches/{search.id}/")
        assert (await comm.connect())[0]
        await database_sync_to_async(events.publish_live)(
            search.id, {"type": "progress", "candidate": other.id, "phase": "training", "lines": [[1, "x"]]})
        got = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return got

    got = asyncio.run(scenario())
    assert got["candidate"] == other.id and "lines" not in got


def test_ux_the_search_list_socket_sends_the_users_own_rows(alice, bob, two_running):
    search, _ = two_running

    async def first_rows(user):
        comm = socket(user, "/ws/searches/")
        connected, _ = await comm.connect()
        message = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return connected, message

    connected, message = asyncio.run(first_rows(alice))
    assert connected and message["type"] == "searches"
    assert [(r["name"], r["dataset"], r["space"], r["strategy"], r["total"]) for r in message["searches"]] == [
        ("live", "digits", "chain", "random", 2)]
    assert asyncio.run(first_rows(bob))[1] == {"type": "searches", "searches": []}
    comm = socket(AnonymousUser(), "/ws/searches/")
    assert asyncio.run(comm.connect()) == (False, CLOSE_UNAUTHENTICATED)
