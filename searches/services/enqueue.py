"""Work for the Celery workers, sent only once the transaction that made it commits,
so a worker never sees a row a rollback took back.

A send that fails (the broker is away) is logged, never raised: the rows are
committed, and ``queue_repair`` (beat, every few seconds) sends again whatever
Postgres says should be queued. So a request that made work answers success
whether Redis is up or not, and no client retries it into a duplicate.
"""
from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from nasweb.celery import app as celery_app

from ..models import Candidate

log = logging.getLogger(__name__)

ADVANCE_TASK = "workers.tasks.advance_search"
TRAIN_TASK = "workers.tasks.train_candidate"


def send_after_commit(task: str, args: list, queue: str) -> None:
    def send():
        try:
            celery_app.send_task(task, args=args, queue=queue)
        except Exception as exc:  # the broker is away: the repair task sends it again
            log.warning("could not send %s%s (the repair task will): %r", task, tuple(args), exc)

    transaction.on_commit(send)


def _enqueue_advance(search_id: int) -> None:
    send_after_commit(ADVANCE_TASK, [search_id], "control")


def _enqueue_train(candidate_id: int) -> None:
    Candidate.objects.filter(id=candidate_id).update(enqueued_at=timezone.now())
    send_after_commit(TRAIN_TASK, [candidate_id], "gpu")
