"""Reads for the health and metrics endpoints (searches/health.py): counts by state, queue
lengths, epochs recorded and worker heartbeats. Each is one cheap query."""
from __future__ import annotations

from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from .models import Candidate, Search, Worker

QUEUES = ("gpu", "control")
# kombu's Redis transport keeps a queue's priorities 3, 6, 9 in lists of their own.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def searches_by_state() -> dict[str, int]:
    counts = dict(Search.objects.values_list("state").annotate(n=Count("id")).order_by())
    return {state: counts.get(state, 0) for state in Search.State.values}


def candidates_by_state() -> dict[str, int]:
    counts = dict(Candidate.objects.values_list("state").annotate(n=Count("id")).order_by())
    return {state: counts.get(state, 0) for state in Candidate.State.values}


def epochs_recorded() -> int:
    """Epochs recorded over all searches that still exist (each record bumps its search's seq)."""
    return int(Search.objects.aggregate(total=Sum("last_seq"))["total"] or 0)


def worker_heartbeats() -> list[tuple[str, float, bool]]:
    """(worker name, seconds since its last heartbeat, busy) for every known training worker."""
    now = timezone.now()
    return [(name, max(0.0, (now - beat).total_seconds()), candidate_id is not None)
            for name, beat, candidate_id in Worker.objects.values_list("name", "last_heartbeat", "candidate_id")]


def queue_lengths(redis_client) -> dict[str, int]:
    """Messages waiting in each Celery queue of the broker."""
    pipe = redis_client.pipeline()
    for queue in QUEUES:
        for suffix in _PRIORITY_SUFFIXES:
            pipe.llen(queue + suffix)
    values = pipe.execute()
    n = len(_PRIORITY_SUFFIXES)
    return {queue: int(sum(values[i * n:(i + 1) * n])) for i, queue in enumerate(QUEUES)}


def database_answers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
