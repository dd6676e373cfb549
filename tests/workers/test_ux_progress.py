"""In-epoch progress and the candidate log (issue 18, item 3): progress leaves over the channel
layer a few times a second with no database write per batch; the log is stored in chunks."""
import asyncio
import sys
import threading

import pytest
from channels.layers import get_channel_layer
from django.db import connection
from django.test.utils import CaptureQueriesContext

from searches import selectors, services
from searches.events import live_group
from searches.models import Candidate, CandidateLog
from workers import progress, training

pytestmark = pytest.mark.django_db(transaction=True)


class Listener:
    """Receives a search's live group on the real channel layer, in a thread of its own, until
    a closing message comes through the same group (a cancelled receive could lose messages)."""

    def __init__(self, search_id):
        self.events, self.group = [], live_group(search_id)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    async def _run(self):
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(self.group, channel)
        self.ready.set()
        while True:
            event = (await layer.receive(channel))["event"]
            if event.get("type") == "test-end":
                break
            self.events.append(event)
        await layer.group_discard(self.group, channel)

    def close(self):
        async def end():
            await get_channel_layer().group_send(self.group, {"type": "live.event", "event": {"type": "test-end"}})
        asyncio.run(end())
        self.thread.join(30)
        assert not self.thread.is_alive()


def make_candidate(owner, **overrides):
    kwargs = dict(owner=owner, name="t", dataset="digits", space="chain", strategy="random",
                  max_candidates=2, epochs=2, parallel=1, seed=3, train_settings={"batch_size": 16})
    kwargs.update(overrides)
    search = services.search_create(**kwargs)
    return search, services.search_advance(search.id)[0]


def test_ux_training_sends_in_epoch_progress_and_stores_its_log_without_a_write_per_batch(alice, checkpoint_dir):
    search, cid = make_candidate(alice)
    listener = Listener(search.id)
    try:
        with CaptureQueriesContext(connection) as queries:
            assert training.run_candidate(cid, worker="w") == "finished"
    finally:
        listener.close()
    batches = -(-int(len(training.datasets.load("digits", search.seed, "x").x_train)) // 16)
    training_events = [e for e in listener.events if e.get("phase") == "training"]
    assert training_events and all(e["batches"] == batches for e in training_events)
    assert {e["epoch"] for e in training_events} == {1, 2}
    assert any(e["batch"] == batches for e in training_events)  # the last batch of an epoch always goes
    assert len(training_events) < 2 * batches  # throttled, not one per batch
    assert listener.events[-1]["phase"] == "finished"
    # No database statement per batch: the whole run makes fewer statements than one epoch has batches.
    assert len(queries) < batches, [q["sql"][:80] for q in queries]
    lines = [text for _, text in selectors.candidate_log_lines(cid)]
    assert any("claimed by w" in line for line in lines)
    # Latency (item 8): the ranking's and the front's figure is the median of the timed runs.
    cand = Candidate.objects.get(id=cid)
    assert cand.latency_ms == cand.extra["latency"]["median_ms"] and cand.extra["latency"]["runs"] >= 5
    assert any(line.endswith("s)") and "epoch 2:" in line for line in lines)
    sent = [n for e in listener.events for n, _ in e.get("lines", [])]
    assert sent == list(range(1, len(lines) + 1))  # every stored line was also sent live, in order


def test_ux_progress_is_throttled_to_a_few_updates_a_second(alice):
    search, cid = make_candidate(alice)
    now = [0.0]
    report = progress.LiveReport(services.candidate_claim(cid, worker="w", device="cpu"), clock=lambda: now[0])
    listener = Listener(search.id)
    try:
        for batch in range(1, 101):  # 100 batches over one second
            now[0] += 0.01
            report.batch(1, batch, 100)
        report.close("finished")
    finally:
        listener.close()
    batches = [e["batch"] for e in listener.events if e.get("phase") == "training"]
    assert 3 <= len(batches) <= progress.PROGRESS_HZ + 1 and batches[-1] == 100


def test_ux_printed_output_and_log_records_reach_the_log_in_bounded_chunks(alice):
    search, cid = make_candidate(alice)
    report = progress.LiveReport(services.candidate_claim(cid, worker="w", device="cpu"))
    with progress.capture(report):
        for i in range(progress.CHUNK_LINES + 50):
            print(f"printed {i}")
        print("to stderr", file=sys.stderr)
        training.log.warning("a worker warning")
    report.close("finished")
    lines = [text for _, text in selectors.candidate_log_lines(cid)]
    assert lines[0] == "printed 0" and "to stderr" in lines and lines[-1].endswith("a worker warning")
    chunks = list(CandidateLog.objects.filter(candidate_id=cid).values_list("line_count", flat=True))
    assert max(chunks) <= progress.CHUNK_LINES and sum(chunks) == len(lines)
    assert [n for n, _ in selectors.candidate_log_lines(cid, after_line=240)] == list(range(241, len(lines) + 1))


def test_ux_a_log_stops_at_its_cap_and_says_so(alice):
    search, cid = make_candidate(alice)
    kept = services.candidate_log_append(cid, first_line=services.LOG_MAX_LINES - 1, lines=["a", "b", "c"])
    assert kept == 2
    assert selectors.candidate_log_lines(cid)[-1][1].startswith("… log cut")
    assert services.candidate_log_append(cid, first_line=services.LOG_MAX_LINES + 1, lines=["d"]) == 0


def test_ux_without_redis_progress_is_dropped_and_training_goes_on(alice, settings):
    """The channel layer points at a port nothing listens on: sends fail, live events pause,
    the log is still stored, and nothing raises into the training loop."""
    from channels.layers import channel_layers

    from searches import events
    from tests.conftest import free_port

    search, cid = make_candidate(alice)
    report = progress.LiveReport(services.candidate_claim(cid, worker="w", device="cpu"))
    saved = dict(channel_layers.backends)
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]}}}
    channel_layers.backends.clear()
    publisher = events._Publisher.get()
    try:
        report.step("loading the data set")
        assert publisher.live_paused_until > 0  # the failed send paused live events
        report.line("still logged")
        for batch in range(1, 51):
            report.batch(1, batch, 50)
        report.close("finished")
    finally:
        publisher.live_paused_until = 0.0
        channel_layers.backends.clear()
        channel_layers.backends.update(saved)
    assert [text for _, text in selectors.candidate_log_lines(cid)] == ["still logged"]
