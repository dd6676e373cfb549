"""/healthz, /readyz and /metrics, scraped as a probe and Prometheus would, against the real
Postgres, Redis and channel layer."""
import socket
import time

import pytest
import redis
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from searches import services
from searches.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)
METRICS = {"train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5, "seconds": 0.1}


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(client=None, **extra) -> dict:
    response = (client or Client()).get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_healthz_answers_a_probe_whose_host_is_the_pod_address():
    response = Client().get("/healthz", HTTP_HOST="10.1.2.3:8000")  # not in ALLOWED_HOSTS
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_database_redis_and_storage():
    response = Client().get("/readyz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"database": "ok", "redis": "ok", "storage": "ok"}}


def test_readyz_is_503_naming_redis_when_the_broker_is_down(settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{dead_port()}/0"
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 503 and body["ready"] is False
    assert body["checks"]["database"] == "ok" and body["checks"]["storage"] == "ok"
    assert "ConnectionError" in body["checks"]["redis"]


def test_readyz_is_503_naming_the_storage_when_the_bucket_does_not_answer(settings):
    from nasweb.settings import storage_backend

    settings.STORAGE_URL = f"s3://nowhere?endpoint=http://127.0.0.1:{dead_port()}"
    settings.STORAGES = {**settings.STORAGES, "nasweb": storage_backend(settings.STORAGE_URL, "/tmp")}
    body = Client().get("/readyz").json()
    assert body["ready"] is False and body["checks"]["storage"] != "ok" and body["checks"]["redis"] == "ok"


def test_metrics_refuse_other_addresses_without_the_token(settings):
    settings.METRICS_TOKEN = "s3cret-token"
    settings.METRICS_ALLOWED_NETWORKS = "127.0.0.0/8"
    outside = {"REMOTE_ADDR": "10.9.8.7"}
    response = Client().get("/metrics", **outside)
    assert response.status_code == 403 and b"METRICS_TOKEN" in response.content
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **outside).status_code == 403
    assert scrape(HTTP_AUTHORIZATION="Bearer s3cret-token", **outside)
    settings.METRICS_ALLOWED_NETWORKS = "10.9.0.0/16"
    settings.METRICS_TOKEN = ""
    assert scrape(**outside)
    assert Client().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403  # loopback no longer listed


def test_metrics_report_states_queues_epochs_heartbeats_and_push_latency(alice, settings):
    search = services.search_create(owner=alice, name="m", dataset="digits", space="chain",
                                    strategy="random", max_candidates=3, epochs=3, parallel=2, seed=2)
    ids = services.search_advance(search.id)
    running = services.candidate_claim(ids[0], worker="gpu0@box-a", device="cpu")
    services.worker_heartbeat(name="gpu0@box-a", host="box-a", device="cpu", candidate_id=running.id)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("gpu", "control")
    broker.lpush("gpu", "m1", "m2", "m3")
    broker.lpush("control", "c1")
    before = scrape()
    try:
        pushed_before = before.get(("nasweb_push_latency_seconds_count", ()), 0)
        _receive_one_pushed_epoch(alice, search, running)
        after = scrape()
    finally:
        broker.delete("gpu", "control")

    assert after[("nasweb_searches", (("state", "running"),))] == 1
    assert after[("nasweb_candidates", (("state", "running"),))] == 1
    assert after[("nasweb_candidates", (("state", "queued"),))] == 1
    assert after[("nasweb_candidates", (("state", "finished"),))] == 0
    assert after[("nasweb_queue_length", (("queue", "gpu"),))] == 3
    assert after[("nasweb_queue_length", (("queue", "control"),))] == 1
    assert after[("nasweb_epochs_recorded", ())] == before[("nasweb_epochs_recorded", ())] + 1 == 1
    assert 0 <= after[("nasweb_worker_heartbeat_age_seconds", (("worker", "gpu0@box-a"),))] < 3600
    assert after[("nasweb_worker_busy", (("worker", "gpu0@box-a"),))] == 1
    assert after[("nasweb_push_latency_seconds_count", ())] == pushed_before + 1


def _receive_one_pushed_epoch(user, search, candidate):
    import asyncio

    async def scenario():
        comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/searches/{search.id}/")
        comm.scope["user"] = user
        connected, _ = await comm.connect()
        assert connected
        assert (await comm.receive_json_from(timeout=5))["type"] == "snapshot"
        await database_sync_to_async(services.epoch_record)(candidate, epoch=1, **METRICS)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            event = await comm.receive_json_from(timeout=5)
            if event["type"] == "epoch":
                break
        await comm.disconnect()
        return event

    assert asyncio.run(scenario())["seq"] == 1
