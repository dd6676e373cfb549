"""Run by tests/setup/test_embedded_services.py under ``scripts/services.sh --``, which has
started the embedded Postgres and Redis and exported DATABASE_URL / REDIS_URL.

    embedded_scenario.py first    migrate; Daphne + a control and a training Celery worker;
                                  a one-candidate search trains while a websocket listens
    embedded_scenario.py second   after the servers were stopped and started again: what
                                  the first run wrote is still in Postgres and Redis

Prints one JSON line with what it saw; the test asserts on it.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ["DJANGO_SETTINGS_MODULE"] = "nasweb.settings"
MARK_KEY = "nasweb:embedded-test:mark"


def servers() -> dict:
    """Which binaries serve DATABASE_URL and REDIS_URL, as the servers themselves say."""
    import redis
    from django.db import connection
    with connection.cursor() as cur:
        cur.execute("SELECT setting FROM pg_config WHERE name = 'BINDIR'")
        pg_bindir = cur.fetchone()[0]
        cur.execute("SHOW data_directory")
        pg_data = cur.fetchone()[0]
    info = redis.Redis.from_url(os.environ["REDIS_URL"]).info("server")
    return {"pg_bindir": pg_bindir, "pg_data": pg_data, "redis_executable": info.get("executable", ""),
            "redis_version": info["redis_version"]}


def start(name: str, args: list[str], logs: Path):
    from processes import ServiceProcess
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    return ServiceProcess(args, env, logs / f"{name}.log")


def celery(queue: str, name: str, pool: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "nasweb", "worker", "-Q", queue, "-n", f"{name}@%h",
            f"--pool={pool}", "--concurrency=1", "--without-gossip", "--without-mingle", "--loglevel=INFO"]


def receive_epoch(ws, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = json.loads(ws.recv(timeout=1.0))
        except TimeoutError:
            continue
        if message.get("type") == "epoch":
            return message
    raise TimeoutError(f"no epoch event on the websocket in {timeout}s")


def wait_for_end(search_id: int, timeout: float):
    from searches.models import Search
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        search = Search.objects.get(id=search_id)
        if search.state in Search.ENDED_STATES:
            return search
        time.sleep(0.5)
    raise TimeoutError(f"search {search_id} did not end in {timeout}s")


def first(logs: Path) -> dict:
    import redis
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from websockets.sync.client import connect

    from processes import free_port
    from searches import services

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("embedded", password="correct horse battery")
    key = services.api_token_create(owner=user, name="embedded-test")[1]
    redis.Redis.from_url(os.environ["REDIS_URL"]).set(MARK_KEY, "written before the restart")
    port = free_port()
    started = [start("daphne", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                "nasweb.asgi:application"], logs)]
    try:
        started[0].wait_for_port(port, timeout=180)
        search = services.search_create(owner=user, name="embedded", dataset="digits", space="chain",
                                        strategy="random", max_candidates=1, epochs=1, parallel=1, seed=3)
        with connect(f"ws://127.0.0.1:{port}/ws/searches/{search.id}/", origin=f"http://127.0.0.1:{port}",
                     additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=30) as ws:
            snapshot = json.loads(ws.recv(timeout=30))
            for name, queue, pool in (("control", "control", "threads"), ("cpu0", "gpu", "solo")):
                started.append(start(name, celery(queue, name, pool), logs))
            for proc in started[1:]:
                proc.wait_for_output("ready.", timeout=240)
            epoch = receive_epoch(ws, timeout=300)
        search = wait_for_end(search.id, timeout=300)
    finally:
        for proc in started:
            proc.stop()
    return {"search_id": search.id, "state": search.state, "error": search.error, "snapshot": snapshot["type"],
            "epoch": {k: epoch.get(k) for k in ("type", "seq", "epoch", "candidate")},
            "candidates": list(search.candidates.values_list("id", "state")), **servers()}


def second() -> dict:
    import redis

    from searches.models import EpochMetric, Search
    search = Search.objects.get(name="embedded")
    return {"search_id": search.id, "state": search.state,
            "epochs": list(EpochMetric.objects.filter(search=search).values_list("seq", "epoch")),
            "mark": (redis.Redis.from_url(os.environ["REDIS_URL"]).get(MARK_KEY) or b"").decode(), **servers()}


if __name__ == "__main__":
    import django
    django.setup()
    phase, logs = sys.argv[1], Path(sys.argv[2])
    print(json.dumps(first(logs) if phase == "first" else second(), default=str))
