"""Celery tasks: thin wrappers around the services and the training loop."""
from celery import shared_task

from searches import services

from . import training


@shared_task(name="workers.tasks.advance_search", acks_late=True)
def advance_search(search_id: int) -> None:
    services.search_advance(search_id)


@shared_task(bind=True, name="workers.tasks.train_candidate", acks_late=True, reject_on_worker_lost=True)
def train_candidate(self, candidate_id: int) -> str:
    return training.run_candidate(candidate_id, worker=self.request.hostname)
