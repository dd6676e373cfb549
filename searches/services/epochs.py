"""One finished epoch: its row, its sequence number and its event, in order."""
from __future__ import annotations

from contextlib import contextmanager

from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from .. import events
from ..models import Candidate, EpochMetric, Search


def _next_seq(search_id: int) -> int:
    # One statement bumps and returns the counter under the search row's lock,
    # so sequence numbers are strictly increasing across concurrent workers.
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Search._meta.db_table} SET last_seq = last_seq + 1 "
                       "WHERE id = %s RETURNING last_seq, state", [search_id])
        return cursor.fetchone()


EPOCH_LOCK_NAMESPACE = 7405  # first key of pg_advisory_lock(int, int): "epoch order of a search"


@contextmanager
def _epoch_order_lock(search_id: int):
    """Hold the search's epoch lock from before the transaction until after its event is sent.

    The row lock alone orders commits; holding this one across the publish as
    well orders the events, so every page receives a search's epochs in
    sequence order whichever workers write them. Outside an outer transaction
    only: inside one, the event waits for that transaction anyway.
    """
    if connection.in_atomic_block:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [EPOCH_LOCK_NAMESPACE, search_id])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [EPOCH_LOCK_NAMESPACE, search_id])
        except (OperationalError, InterfaceError):
            pass  # the connection is gone, and a session's advisory locks go with it


def epoch_record(candidate: Candidate, *, epoch: int, train_loss: float, train_accuracy: float,
                 val_loss: float, val_accuracy: float, seconds: float) -> bool:
    """Commit one finished epoch, then tell the pages. Returns False when training should stop
    (the search was cancelled, or the candidate is no longer this attempt's: taken back
    from a worker presumed dead, perhaps claimed again by one of the same name)."""
    with _epoch_order_lock(candidate.search_id), transaction.atomic():
        still_mine = Candidate.objects.filter(
            id=candidate.id, state=Candidate.State.RUNNING, worker=candidate.worker, attempt=candidate.attempt)
        if EpochMetric.objects.filter(candidate_id=candidate.id, epoch=epoch).exists():
            # A retry after a commit whose answer was lost: the epoch is saved already.
            return still_mine.exists() and not Search.objects.filter(
                id=candidate.search_id, state=Search.State.CANCELLED).exists()
        best = val_accuracy if candidate.best_val_accuracy is None else max(candidate.best_val_accuracy, val_accuracy)
        if not still_mine.update(epochs_done=epoch, best_val_accuracy=best,
                                 final_val_accuracy=val_accuracy, heartbeat_at=timezone.now()):
            return False
        seq, search_state = _next_seq(candidate.search_id)
        metric = EpochMetric.objects.create(
            candidate=candidate, search_id=candidate.search_id, epoch=epoch, seq=seq,
            train_loss=train_loss, train_accuracy=train_accuracy,
            val_loss=val_loss, val_accuracy=val_accuracy, seconds=seconds)
        candidate.epochs_done, candidate.best_val_accuracy, candidate.final_val_accuracy = epoch, best, val_accuracy
        events.publish_on_commit(candidate.search_id, events.epoch_event(metric))
    return search_state != Search.State.CANCELLED
