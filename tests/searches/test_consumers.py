"""The websocket consumer against the real channels_redis layer."""
import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from searches import services
from searches.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from searches.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)

METRICS = {"train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5, "seconds": 0.1}
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


async def epoch_seqs(comm, count: int, timeout: float = 5) -> list[int]:
    """The sequence numbers of the next ``count`` epoch events on ``comm``, in arrival order."""
    seqs = []
    while len(seqs) < count:
        event = await comm.receive_json_from(timeout=timeout)
        if event["type"] == "epoch":
            seqs.append(event["seq"])
    return seqs


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



# --- the dashboard -----------------------------------------------------------------

async def next_of_type(comm, kind, timeout=5):
    while True:
        event = await comm.receive_json_from(timeout=timeout)
        if event["type"] == kind:
            return event


def test_a_reconnect_gets_held_curves_after_its_sequence_number_and_others_whole(alice, running_search):
    search, (c1, c2) = running_search
    for epoch in (1, 2, 3):
        record(c1, epoch)
    record(c2, 1)
    record(c2, 2)

    async def scenario():
        # The page held c1's curve up to seq 2 and nothing of c2.
        comm = communicator(alice, search.id)
        comm.scope["query_string"] = f"after=2&have={c1.id}".encode()
        await comm.connect()
        snapshot = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return sorted((e["candidate"], e["seq"]) for e in snapshot["epochs"])

    assert run(scenario()) == sorted([(c1.id, 3), (c2.id, 4), (c2.id, 5)])


def test_the_snapshot_follows_the_leaderboard_view_in_the_url(alice, running_search):
    search, (c1, c2) = running_search
    record(c1, 1, 0.9)
    record(c2, 1, 0.4)

    async def scenario():
        comm = communicator(alice, search.id)
        comm.scope["query_string"] = b"sort=best&page_size=1&top=1"
        await comm.connect()
        snapshot = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return snapshot

    snapshot = run(scenario())
    assert [r["id"] for r in snapshot["leaderboard"]["rows"]] == [c2.id]
    assert snapshot["leaderboard"]["total"] == 2 and snapshot["top"] == [c1.id]


def test_pause_resume_cancel_and_delete_reach_every_open_page(alice, running_search):
    search, _ = running_search

    async def scenario():
        pages = [communicator(alice, search.id), communicator(alice, search.id)]
        for comm in pages:
            await comm.connect()
            await comm.receive_json_from(timeout=5)
        seen = []
        for change in (services.search_pause, services.search_resume, services.search_cancel, services.search_delete):
            await database_sync_to_async(change)(search)
            states = [(await next_of_type(comm, "search"))["search"]["state"] for comm in pages]
            seen.append(states)
        for comm in pages:
            await comm.disconnect()
        return seen

    assert run(scenario()) == [["paused"] * 2, ["running"] * 2, ["cancelled"] * 2, ["deleted"] * 2]


def test_the_candidate_page_gets_only_its_candidates_events(alice, running_search):
    search, (c1, c2) = running_search
    record(c1, 1)
    record(c2, 1)

    async def scenario():
        comm = communicator(alice, search.id)
        comm.scope["query_string"] = f"candidate={c1.id}".encode()
        await comm.connect()
        snapshot = await comm.receive_json_from(timeout=5)
        await database_sync_to_async(record)(c2, 2)
        await database_sync_to_async(record)(c1, 2)
        event = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return snapshot, event

    snapshot, event = run(scenario())
    assert [c["id"] for c in snapshot["candidates"]] == [c1.id] and [e["seq"] for e in snapshot["epochs"]] == [1]
    assert event["type"] == "epoch" and event["candidate"] == c1.id and event["epoch"] == 2


def workers_communicator(user):
    from django.urls import path

    from searches.consumers import WorkersConsumer

    comm = WebsocketCommunicator(URLRouter([path("ws/workers/", WorkersConsumer.as_asgi())]), "/ws/workers/")
    comm.scope["user"] = user
    return comm


def test_the_workers_socket_sends_the_table_and_each_change(alice, settings):
    from django.utils import timezone

    from searches.consumers import WorkersConsumer
    from searches.models import Worker

    settings.HEARTBEAT_TIMEOUT_SECONDS = 30

    async def scenario():
        WorkersConsumer.interval = 0.1
        comm = workers_communicator(alice)
        connected, _ = await comm.connect()
        first = await comm.receive_json_from(timeout=5)
        await database_sync_to_async(Worker.objects.create)(
            name="gpu0@h", host="h", device="cuda:0", last_heartbeat=timezone.now())
        second = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return connected, first, second

    try:
        connected, first, second = run(scenario())
    finally:
        WorkersConsumer.interval = 2.0
    assert connected and first == {"type": "workers", "workers": []}
    assert [w["name"] for w in second["workers"]] == ["gpu0@h"] and not second["workers"][0]["lost"]


def test_the_workers_socket_refuses_anonymous_users():
    from django.contrib.auth.models import AnonymousUser

    async def scenario():
        comm = workers_communicator(AnonymousUser())
        result = await comm.connect()
        await comm.wait()
        return result

    assert run(scenario()) == (False, CLOSE_UNAUTHENTICATED)


def test_an_idle_page_stays_connected_and_still_gets_events(alice, running_search):
    # channels_redis waits 5 s per blocking read; a 5 s Redis socket timeout used to end the socket here.
    import asyncio
    search, (c1, _) = running_search

    async def scenario():
        comm = communicator(alice, search.id)
        connected, _ = await comm.connect()
        assert connected
        await comm.receive_json_from(timeout=5)
        await asyncio.sleep(7)
        await database_sync_to_async(record)(c1, 1, 0.9)
        while True:
            event = await comm.receive_json_from(timeout=5)
            if event["type"] == "epoch":
                break
        await comm.disconnect()
        return event["val_accuracy"]

    assert run(scenario()) == 0.9


def test_a_websocket_from_another_origin_is_refused(alice, running_search):
    # Through the real ASGI stack: origin check, then the session cookie's user.
    from django.conf import settings
    from django.test import Client

    from nasweb.asgi import application
    search, _ = running_search
    client = Client()
    client.force_login(alice)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()

    async def scenario(origin):
        comm = WebsocketCommunicator(application, f"/ws/searches/{search.id}/",
                                     headers=[(b"origin", origin), (b"host", b"localhost"), (b"cookie", cookie)])
        connected, _ = await comm.connect()
        if connected:
            await comm.disconnect()
        else:
            await comm.wait()
        return connected

    assert run(scenario(b"http://localhost")) is True  # the same cookie from the site itself works
    assert run(scenario(b"http://evil.example.com")) is False


def test_an_event_the_channel_layer_dropped_is_sent_from_postgres_before_the_next(alice, running_search, monkeypatch):
    from searches import events
    search, (c1, _) = running_search
    real_send = events._send

    def lossy_send(search_id, event):  # fault injection: the layer loses seq 2 on its way
        if event.get("seq") != 2:
            real_send(search_id, event)

    monkeypatch.setattr(events, "_send", lossy_send)

    async def scenario():
        comm = communicator(alice, search.id)
        await comm.connect()
        await comm.receive_json_from(timeout=5)
        for epoch in (1, 2, 3):
            await database_sync_to_async(record)(c1, epoch)
        seqs = await epoch_seqs(comm, 3)
        await comm.disconnect()
        return seqs

    assert run(scenario()) == [1, 2, 3]


def test_a_lost_last_event_still_reaches_the_page_from_postgres(alice, running_search, monkeypatch):
    from searches import events
    search, (c1, _) = running_search
    real_send = events._send
    monkeypatch.setattr(events, "_send", lambda sid, event: None if event.get("seq") == 2 else real_send(sid, event))

    async def scenario():
        comm = communicator(alice, search.id)
        await comm.connect()
        await comm.receive_json_from(timeout=5)
        for epoch in (1, 2):  # nothing follows the lost one: no gap to notice in the stream
            await database_sync_to_async(record)(c1, epoch)
        seqs = await epoch_seqs(comm, 2, timeout=10)
        await comm.disconnect()
        return seqs

    assert run(scenario()) == [1, 2]


def test_pages_watching_one_search_share_one_read_of_its_last_sequence_number(alice, running_search, monkeypatch):
    from searches import consumers, selectors
    search, (c1, _) = running_search
    record(c1, 1)
    reads = []
    real = selectors.search_last_seq
    monkeypatch.setattr(selectors, "search_last_seq", lambda sid: reads.append(sid) or real(sid))
    monkeypatch.setattr(consumers, "shared_reads", consumers.SharedReads(fresh_for=1.0))

    async def fifty_pages_check_at_once():
        import asyncio
        return await asyncio.gather(*(consumers.shared_reads.get(selectors.search_last_seq, search.id)
                                      for _ in range(50)))

    assert run(fifty_pages_check_at_once()) == [1] * 50
    assert reads == [search.id]  # one query for all fifty, not fifty on the one database thread


def test_a_failed_read_of_postgres_does_not_stop_the_reconciliation(alice, running_search, monkeypatch):
    from django.db import OperationalError

    from searches import consumers, events, selectors
    search, (c1, _) = running_search
    real_send, real_read = events._send, selectors.search_last_seq
    monkeypatch.setattr(events, "_send", lambda sid, event: None if event.get("seq") == 2 else real_send(sid, event))
    reads = []

    def read_failing_first(search_id):  # fault injection: Postgres away for the first check
        reads.append(search_id)
        if len(reads) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_read(search_id)

    monkeypatch.setattr(selectors, "search_last_seq", read_failing_first)
    monkeypatch.setattr(consumers, "shared_reads", consumers.SharedReads(fresh_for=1.0))

    async def scenario():
        comm = communicator(alice, search.id)
        await comm.connect()
        await comm.receive_json_from(timeout=5)
        for epoch in (1, 2):  # the second is lost on its way; only the reconciliation brings it
            await database_sync_to_async(record)(c1, epoch)
        seqs = await epoch_seqs(comm, 2, timeout=15)
        await comm.disconnect()
        return seqs

    assert run(scenario()) == [1, 2]
    assert len(reads) >= 3  # it failed once and went on checking


def test_pages_that_miss_the_same_event_fetch_it_with_one_read(alice, running_search, monkeypatch):
    import asyncio

    from searches import consumers, events, selectors
    search, (c1, _) = running_search
    real_send, real_between = events._send, selectors.epochs_between
    monkeypatch.setattr(events, "_send", lambda sid, event: None if event.get("seq") == 2 else real_send(sid, event))
    reads = []
    monkeypatch.setattr(selectors, "epochs_between", lambda *args: reads.append(args) or real_between(*args))
    monkeypatch.setattr(consumers, "shared_reads", consumers.SharedReads(fresh_for=1.0))

    async def twenty_pages():
        pages = [communicator(alice, search.id) for _ in range(20)]
        for page in pages:
            await page.connect()
            await page.receive_json_from(timeout=5)
        for epoch in (1, 2, 3):  # the layer loses the second: every page sees the gap at once
            await database_sync_to_async(record)(c1, epoch)

        async def seqs_of(page):
            seqs = await epoch_seqs(page, 3)
            await page.disconnect()
            return seqs

        return await asyncio.gather(*(seqs_of(page) for page in pages))

    assert run(twenty_pages()) == [[1, 2, 3]] * 20
    assert reads == [(search.id, 1, 3)]  # one read of the gap for all twenty pages


def test_an_epoch_the_resume_snapshot_sent_is_not_sent_again_when_its_event_arrives_late(
        alice, running_search, monkeypatch):
    from searches import events
    search, (c1, _) = running_search
    real_send = events._send
    held = []
    monkeypatch.setattr(events, "_send", lambda sid, event: held.append((sid, event)) if event.get("seq") == 2
                        else real_send(sid, event))  # fault injection: seq 2 waits in the layer

    async def scenario():
        comm = communicator(alice, search.id)
        await comm.connect()
        await comm.receive_json_from(timeout=5)
        await database_sync_to_async(record)(c1, 1)
        first = await epoch_seqs(comm, 1)
        await database_sync_to_async(record)(c1, 2)
        await comm.send_json_to({"type": "resume", "after": 1})
        snapshot = await next_of_type(comm, "snapshot")
        await database_sync_to_async(real_send)(*held[0])  # the held event arrives after all
        await database_sync_to_async(record)(c1, 3)
        rest = await epoch_seqs(comm, 1)
        await comm.disconnect()
        return first, [e["seq"] for e in snapshot["epochs"]], rest

    assert run(scenario()) == ([1], [2], [3])


def test_a_failed_read_does_not_freeze_the_workers_page(alice, settings, monkeypatch):
    from django.db import OperationalError
    from django.utils import timezone

    from searches import selectors
    from searches.consumers import WorkersConsumer
    from searches.models import Worker

    settings.HEARTBEAT_TIMEOUT_SECONDS = 30
    monkeypatch.setattr(WorkersConsumer, "interval", 0.1)
    real, reads = selectors.worker_rows_for, []

    def failing_first(user):  # fault injection: Postgres away for the first read
        reads.append(user)
        if len(reads) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(user)

    monkeypatch.setattr(selectors, "worker_rows_for", failing_first)
    Worker.objects.create(name="gpu0@h", host="h", device="cuda:0", last_heartbeat=timezone.now())

    async def scenario():
        comm = workers_communicator(alice)
        await comm.connect()
        table = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return table

    assert [w["name"] for w in run(scenario())["workers"]] == ["gpu0@h"]
    assert len(reads) >= 2
