"""Celery tasks: thin wrappers around the services and the training loop."""
import logging

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import InterfaceError, OperationalError

from searches import services

from . import devices, heartbeat, training

logger = logging.getLogger(__name__)


# A lost advance would leave a search stuck, so a database outage is waited out, and any
# other error is logged with its traceback and retried: only the strategy's own errors
# fail a search (``search_advance`` does that). Should the retries run out, the beat's
# ``queue_repair`` sends the search another advance, since it is still active.
@shared_task(name="workers.tasks.advance_search", acks_late=True,
             autoretry_for=(Exception,), retry_backoff=1, retry_backoff_max=30, max_retries=20)
def advance_search(search_id: int) -> None:
    try:
        services.search_advance(search_id)
    except (OperationalError, InterfaceError):
        raise  # the database is away: waited out, nothing to report
    except Exception:
        logger.exception("Advancing search %s failed; it will be retried", search_id)
        raise


@shared_task(bind=True, name="workers.tasks.train_candidate", acks_late=True, reject_on_worker_lost=True)
def train_candidate(self, candidate_id: int) -> str:
    return training.run_candidate(candidate_id, worker=self.request.hostname)


@shared_task(name="workers.tasks.reap_stale")
def reap_stale() -> dict:
    """Periodic (beat): give the candidates of silent workers back to the queue, and
    send again what a broker restart may have lost."""
    requeued = services.candidates_requeue_stale(timeout_seconds=settings.HEARTBEAT_TIMEOUT_SECONDS)
    repaired = services.queue_repair(timeout_seconds=settings.HEARTBEAT_TIMEOUT_SECONDS)
    return {"requeued": requeued, **repaired}


def _consumes_gpu_queue(consumer) -> bool:
    queues = getattr(getattr(consumer, "task_consumer", None), "queues", None) or []
    return any(q.name == "gpu" for q in queues)


@worker_ready.connect
def _start_heartbeat(sender=None, **kwargs):
    # Only training workers beat: they are what the workers page and the reaper watch.
    if sender is not None and _consumes_gpu_queue(sender):
        heartbeat.start(sender.hostname, devices.describe(devices.pick_device()))


@worker_shutdown.connect
def _stop_heartbeat(**kwargs):
    beat = heartbeat.current()
    if beat is not None:
        beat.stop()


@shared_task(bind=True, name="workers.tasks.build_bundle", acks_late=True, reject_on_worker_lost=True)
def build_bundle(self, bundle_id: int, attempt: int) -> str:
    """Build a candidate's model bundle (routed to the control queue: see settings)."""
    from . import bundles

    return bundles.run_bundle(bundle_id, attempt, worker=self.request.hostname)
