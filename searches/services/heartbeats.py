"""Workers' heartbeats, and taking back the work of those that went silent or was lost."""
from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import events
from ..models import Candidate, EpochMetric, Search, Worker
from .bundles import bundles_resend_lost
from .candidates import candidates_cancel_orphans
from .enqueue import _enqueue_advance, _enqueue_train


# --- workers and their heartbeats ---------------------------------------------

def worker_heartbeat(*, name: str, host: str, device: str, candidate_id: int | None, attempt: int | None = None,
                     samples_per_second: float | None = None, epochs_delta: int = 0) -> None:
    """Record that a worker is alive, and keep its running candidate's heartbeat fresh
    (only its own attempt's, when it names one)."""
    now = timezone.now()
    with transaction.atomic():
        Worker.objects.update_or_create(name=name, defaults={
            "host": host, "device": device, "candidate_id": candidate_id, "last_heartbeat": now,
            **({"samples_per_second": samples_per_second} if samples_per_second is not None else {}),
        })
        if epochs_delta:
            Worker.objects.filter(name=name).update(epochs_done=F("epochs_done") + epochs_delta)
        if candidate_id is not None:
            mine = Candidate.objects.filter(id=candidate_id, state=Candidate.State.RUNNING, worker=name)
            (mine if attempt is None else mine.filter(attempt=attempt)).update(heartbeat_at=now)


def candidates_requeue_stale(*, timeout_seconds: float) -> list[int]:
    """Hand back to the queue every running candidate whose worker went silent.

    Its epochs so far are dropped (it trains again from the start), so no
    epoch is doubled; the conditional update means a worker that was only
    slow, not dead, loses the candidate and stops at its next epoch.
    """
    cutoff = timezone.now() - timezone.timedelta(seconds=timeout_seconds)
    requeued = []
    for candidate_id in Candidate.objects.filter(
            state=Candidate.State.RUNNING, heartbeat_at__lt=cutoff).values_list("id", flat=True):
        with transaction.atomic():
            taken_back = Candidate.objects.filter(
                id=candidate_id, state=Candidate.State.RUNNING, heartbeat_at__lt=cutoff,
            ).update(state=Candidate.State.QUEUED, worker="", device="", epochs_done=0,
                     best_val_accuracy=None, final_val_accuracy=None, started_at=None)
            if not taken_back:
                continue
            EpochMetric.objects.filter(candidate_id=candidate_id).delete()
            candidate = Candidate.objects.get(id=candidate_id)
            event = events.candidate_event(candidate)
            event["reset"] = True  # pages drop the curve they drew for it
            events.publish_on_commit(candidate.search_id, event)
            if candidates_cancel_orphans(Candidate.objects.filter(id=candidate_id)):
                continue  # its search ended meanwhile: cancelled, not queued for nobody
            _enqueue_train(candidate_id)
            requeued.append(candidate_id)
    return requeued


def queue_repair(*, timeout_seconds: float) -> dict:
    """Send again the work whose message may be lost (Redis keeps nothing across a restart).

    Postgres says what should be happening: every active search gets another
    advance (harmless: it only fills free slots), every candidate queued
    for longer than the timeout gets its training task again (harmless: the
    claim lets only one delivery train it), and so does every bundle build
    (``bundles_resend_lost``). A queued candidate of an ended search is cancelled.
    """
    cutoff = timezone.now() - timezone.timedelta(seconds=timeout_seconds)
    resent = []
    cancelled = candidates_cancel_orphans(Candidate.objects.filter(state=Candidate.State.QUEUED))
    bundles = bundles_resend_lost(older_than=cutoff)
    with transaction.atomic():
        stale = list(Candidate.objects.select_for_update(skip_locked=True).filter(
            state=Candidate.State.QUEUED, enqueued_at__lt=cutoff,
            search__state__in=Search.ACTIVE_STATES + (Search.State.PAUSED,)).values_list("id", flat=True))
        for candidate_id in stale:
            _enqueue_train(candidate_id)
            resent.append(candidate_id)
        searches = list(Search.objects.filter(state__in=Search.ACTIVE_STATES).values_list("id", flat=True))
        for search_id in searches:
            _enqueue_advance(search_id)
    return {"resent": resent, "advanced": searches, "cancelled": cancelled, "bundles": bundles}
