"""Claims with an identity (issue 14, items 1 and 4): a run taken back cannot write to the
candidate's next attempt, and a queued candidate of an ended search is cancelled."""
import pytest
from django.utils import timezone

from searches import services
from searches.models import Candidate, EpochMetric

pytestmark = pytest.mark.django_db

EPOCH = dict(train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5, seconds=0.1)


def _running(alice, worker="cpu0@host"):
    search = services.search_create(owner=alice, name="s", dataset="digits", space="chain", strategy="random",
                                    max_candidates=3, epochs=3, parallel=1, seed=1)
    (cid,) = services.search_advance(search.id)
    return search, services.candidate_claim(cid, worker=worker, device="cpu")


def _take_back(candidate):
    Candidate.objects.filter(id=candidate.id).update(heartbeat_at=timezone.now() - timezone.timedelta(hours=1))
    assert services.candidates_requeue_stale(timeout_seconds=60) == [candidate.id]


def test_a_run_taken_back_cannot_write_to_the_next_attempt_of_the_same_worker_name(alice):
    _, old = _running(alice)
    assert services.epoch_record(old, epoch=1, **EPOCH)
    _take_back(old)
    new = services.candidate_claim(old.id, worker="cpu0@host", device="cpu")  # same node name
    assert (old.attempt, new.attempt) == (1, 2)
    assert services.epoch_record(new, epoch=1, **EPOCH)
    assert not services.epoch_record(old, epoch=1, **EPOCH)  # the retry branch: not its epoch
    assert not services.epoch_record(old, epoch=2, **EPOCH)
    services.candidate_note(old, key="edge_weights", value=[1])
    assert not services.candidate_finish(old, test_accuracy=1, test_macro_recall=1, test_macro_f1=1,
                                         confusion_matrix=[[1]], checkpoint_path="/x-a1.pt", checkpoint_size=1,
                                         checkpoint_sha256="a")
    row = Candidate.objects.get(id=new.id)
    assert row.state == Candidate.State.RUNNING and row.attempt == 2 and row.extra == {} and row.epochs_done == 1
    assert list(EpochMetric.objects.filter(candidate=row).values_list("epoch", flat=True)) == [1]
    assert services.candidate_finish(new, test_accuracy=1, test_macro_recall=1, test_macro_f1=1,
                                     confusion_matrix=[[1]], checkpoint_path="/x-a2.pt", checkpoint_size=1,
                                     checkpoint_sha256="b")


def test_the_old_runs_heartbeat_does_not_keep_the_new_attempt_alive(alice):
    _, old = _running(alice)
    _take_back(old)
    new = services.candidate_claim(old.id, worker="cpu0@host", device="cpu")
    stale = timezone.now() - timezone.timedelta(hours=1)
    Candidate.objects.filter(id=new.id).update(heartbeat_at=stale)
    services.worker_heartbeat(name="cpu0@host", host="h", device="cpu", candidate_id=old.id, attempt=old.attempt)
    assert Candidate.objects.get(id=new.id).heartbeat_at == stale
    services.worker_heartbeat(name="cpu0@host", host="h", device="cpu", candidate_id=new.id, attempt=new.attempt)
    assert Candidate.objects.get(id=new.id).heartbeat_at > stale


def test_a_candidate_taken_back_in_a_cancelled_search_is_cancelled(alice):
    search, candidate = _running(alice)
    services.search_cancel(search)
    Candidate.objects.filter(id=candidate.id).update(heartbeat_at=timezone.now() - timezone.timedelta(hours=1))
    assert services.candidates_requeue_stale(timeout_seconds=60) == []
    assert Candidate.objects.get(id=candidate.id).state == Candidate.State.CANCELLED


def test_the_claim_and_the_repair_cancel_a_queued_candidate_of_an_ended_search(alice):
    search, candidate = _running(alice)
    services.search_cancel(search)
    # As an older reaper left it: queued in a cancelled search.
    Candidate.objects.filter(id=candidate.id).update(state=Candidate.State.QUEUED)
    assert services.candidate_claim(candidate.id, worker="w", device="cpu") is None
    assert Candidate.objects.get(id=candidate.id).state == Candidate.State.CANCELLED
    Candidate.objects.filter(id=candidate.id).update(state=Candidate.State.QUEUED)
    assert services.queue_repair(timeout_seconds=60)["cancelled"] == [candidate.id]
    assert Candidate.objects.get(id=candidate.id).state == Candidate.State.CANCELLED
