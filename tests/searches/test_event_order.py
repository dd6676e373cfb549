"""Epoch events reach a page in sequence order, whichever workers write them."""
import asyncio
import threading

import pytest
from channels.layers import get_channel_layer
from django.db import connection

from searches import services
from searches.events import group_name

pytestmark = pytest.mark.django_db(transaction=True)

METRICS = dict(train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5, seconds=0.0)


def test_concurrent_writers_deliver_epochs_in_sequence_order(alice):
    writers, epochs = 8, 15
    search = services.search_create(owner=alice, name="order", dataset="digits", space="chain",
                                    strategy="random", max_candidates=writers, epochs=epochs,
                                    parallel=writers, seed=3)
    candidates = [services.candidate_claim(cid, worker=f"w{i}", device="cpu")
                  for i, cid in enumerate(services.search_advance(search.id))]
    layer = get_channel_layer()
    received = []

    async def listen(ready: threading.Event, total: int):
        channel = await layer.new_channel()
        await layer.group_add(group_name(search.id), channel)
        ready.set()
        while len(received) < total:
            message = await asyncio.wait_for(layer.receive(channel), timeout=20)
            if message["event"]["type"] == "epoch":
                received.append(message["event"]["seq"])

    ready = threading.Event()
    listener = threading.Thread(target=lambda: asyncio.run(listen(ready, writers * epochs)))
    listener.start()
    ready.wait(10)

    def write(candidate):
        try:
            for epoch in range(1, epochs + 1):
                services.epoch_record(candidate, epoch=epoch, **METRICS)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(c,)) for c in candidates]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    listener.join(30)
    assert received == list(range(1, writers * epochs + 1))
