"""The websocket consumer against the real channels_redis layer."""
import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from searches import services
from searches.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from searches.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)

METRICS = dict(train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5, seconds=0.1)
app = URLRouter(websocket_urlpatterns)


def communicator(user, search_id, after=None):
    path = f"/ws/searches/{search_id}/" + (f"?after={after}" if after is not None else "")
    comm = WebsocketCommunicator(app, path)
    comm.scope["user"] = user
    return comm


@pytest.fixture
def running_search(alice):
    search = services.search_create(owner=alice, name="ws", dataset="digits", space="chain",
                                    strategy="random", max_candidates=4, epochs=3, parallel=2, seed=2)
    ids = services.search_advance(search.id)
    cands = [services.candidate_claim(cid, worker="w", device="cpu") for cid in ids]
    return search, cands


def record(candidate, epoch, acc=0.5):
    return services.epoch_record(candidate, epoch=epoch, **dict(METRICS, val_accuracy=acc))


def run(coro):
    import asyncio
    return asyncio.run(coro)


def test_snapshot_then_live_events_in_order(alice, running_search):
    search, (c1, c2) = running_search
    record(c1, 1)

    async def scenario():
        comm = communicator(alice, search.id)
        connected, _ = await comm.connect()
        assert connected
        snapshot = await comm.receive_json_from(timeout=5)
        assert snapshot["type"] == "snapshot"
        assert {c["id"] for c in snapshot["candidates"]} == {c1.id, c2.id}
        assert [e["seq"] for e in snapshot["epochs"]] == [1]
        await database_sync_to_async(record)(c2, 1, 0.7)
        await database_sync_to_async(record)(c1, 2, 0.8)
        seen = []
        while len(seen) < 2:
            event = await comm.receive_json_from(timeout=5)
            if event["type"] == "epoch":
                seen.append((event["seq"], event["candidate"], event["val_accuracy"]))
        await comm.disconnect()
        return seen

    assert run(scenario()) == [(2, c2.id, 0.7), (3, c1.id, 0.8)]


def test_resume_after_a_sequence_number_sends_only_what_was_missed(alice, running_search):
    search, (c1, c2) = running_search
    for epoch in (1, 2, 3):
        record(c1, epoch)
    record(c2, 1)

    async def scenario():
        comm = communicator(alice, search.id, after=2)
        connected, _ = await comm.connect()
        assert connected
        snapshot = await comm.receive_json_from(timeout=5)
        await comm.send_json_to({"type": "resume", "after": 3})
        again = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return [e["seq"] for e in snapshot["epochs"]], [e["seq"] for e in again["epochs"]]

    assert run(scenario()) == ([3, 4], [4])


def test_candidate_and_search_events_reach_the_page(alice, running_search):
    search, (c1, _) = running_search

    async def scenario():
        comm = communicator(alice, search.id)
        await comm.connect()
        await comm.receive_json_from(timeout=5)
        await database_sync_to_async(services.candidate_fail)(c1, error="Traceback...\nRuntimeError: out of memory")
        types = {}
        while "candidate" not in types:
            event = await comm.receive_json_from(timeout=5)
            types[event["type"]] = event
        await comm.disconnect()
        return types["candidate"]["candidate"]

    candidate = run(scenario())
    assert candidate["state"] == "failed" and candidate["error"] == "RuntimeError: out of memory"


def test_another_user_is_refused(bob, running_search):
    search, _ = running_search

    async def scenario():
        comm = communicator(bob, search.id)
        connected, code = await comm.connect()
        await comm.wait()  # let the consumer finish so its database connection closes
        return connected, code

    assert run(scenario()) == (False, CLOSE_NOT_FOUND)


def test_anonymous_is_refused(running_search):
    from django.contrib.auth.models import AnonymousUser
    search, _ = running_search

    async def scenario():
        comm = communicator(AnonymousUser(), search.id)
        result = await comm.connect()
        await comm.wait()
        return result

    assert run(scenario()) == (False, CLOSE_UNAUTHENTICATED)

