"""Work for the Celery workers, sent only once the transaction that made it commits,
so a worker never sees a row a rollback took back."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from nasweb.celery import app as celery_app

from ..models import Candidate


ADVANCE_TASK = "workers.tasks.advance_search"
TRAIN_TASK = "workers.tasks.train_candidate"


def _enqueue_advance(search_id: int) -> None:
    transaction.on_commit(lambda: celery_app.send_task(ADVANCE_TASK, args=[search_id], queue="control"))


def _enqueue_train(candidate_id: int) -> None:
    Candidate.objects.filter(id=candidate_id).update(enqueued_at=timezone.now())
    transaction.on_commit(lambda: celery_app.send_task(TRAIN_TASK, args=[candidate_id], queue="gpu"))
