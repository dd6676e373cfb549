import pytest
from django.core.exceptions import ValidationError

from searches import services
from searches.models import Candidate, EpochMetric, Search

pytestmark = pytest.mark.django_db


def create(owner, **overrides):
    kwargs = dict(owner=owner, name="s", dataset="digits", space="chain", strategy="random",
                  max_candidates=5, epochs=2, parallel=2, seed=7)
    kwargs.update(overrides)
    return services.search_create(**kwargs)


def test_search_create_stores_the_form_values(alice):
    search = create(alice, name="  first  ")
    assert search.name == "first"
    assert search.state == Search.State.QUEUED
    assert (search.max_candidates, search.epochs, search.parallel, search.seed) == (5, 2, 2, 7)


def test_search_create_picks_a_seed_when_none_is_given(alice):
    assert create(alice, seed=None).seed >= 0


@pytest.mark.parametrize("field,value", [
    ("max_candidates", 0), ("epochs", 0), ("parallel", 0), ("dataset", "imagenet"),
    ("space", "nope"), ("strategy", "nope"), ("name", " "), ("max_candidates", 10**9), ("seed", -1),
])
def test_search_create_refuses_bad_values_and_writes_nothing(alice, field, value):
    with pytest.raises(ValidationError) as info:
        create(alice, **{field: value})
    assert field in info.value.message_dict
    assert not Search.objects.exists()


def test_advance_fills_free_slots_and_respects_the_budget(alice):
    search = create(alice, max_candidates=3, parallel=2)
    first = services.search_advance(search.id)
    assert len(first) == 2
    assert services.search_advance(search.id) == []  # no free slot while two are queued
    search.refresh_from_db()
    assert search.state == Search.State.RUNNING
    cands = list(search.candidates.order_by("index"))
    assert [c.index for c in cands] == [0, 1]
    assert len({c.arch_hash for c in cands}) == 2


def test_advance_finishes_the_search_when_budget_is_spent(alice):
    search = create(alice, max_candidates=2, parallel=2)
    ids = services.search_advance(search.id)
    for cid in ids:
        cand = services.candidate_claim(cid, worker="w", device="cpu")
        services.candidate_fail(cand, error="boom")
    services.search_advance(search.id)
    search.refresh_from_db()
    assert search.state == Search.State.FINISHED
    assert search.candidates.count() == 2


def test_advance_replays_the_same_proposals_after_a_restart(alice):
    a = create(alice, seed=11, max_candidates=4, parallel=4)
    b = create(alice, seed=11, max_candidates=4, parallel=4)
    services.search_advance(a.id)
    services.search_advance(b.id)
    assert ([c.arch_hash for c in a.candidates.order_by("index")]
            == [c.arch_hash for c in b.candidates.order_by("index")])


def test_claim_is_granted_once(alice):
    search = create(alice)
    cid = services.search_advance(search.id)[0]
    assert services.candidate_claim(cid, worker="w1", device="cpu") is not None
    assert services.candidate_claim(cid, worker="w2", device="cpu") is None
    assert Candidate.objects.get(id=cid).worker == "w1"


def test_epoch_sequence_numbers_increase_across_candidates(alice):
    search = create(alice)
    c1, c2 = (services.candidate_claim(cid, worker="w", device="cpu") for cid in services.search_advance(search.id))
    metrics = dict(train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5, seconds=0.1)
    for epoch in (1, 2):
        assert services.epoch_record(c1, epoch=epoch, **metrics)
        assert services.epoch_record(c2, epoch=epoch, **dict(metrics, val_accuracy=0.2 * epoch))
    seqs = list(EpochMetric.objects.filter(search=search).order_by("id").values_list("seq", flat=True))
    assert seqs == [1, 2, 3, 4]
    c2.refresh_from_db()
    assert c2.best_val_accuracy == pytest.approx(0.4) and c2.epochs_done == 2


def test_cancel_stops_queued_candidates_and_tells_running_ones(alice):
    search = create(alice, max_candidates=4, parallel=2)
    running_id, queued_id = services.search_advance(search.id)
    running = services.candidate_claim(running_id, worker="w", device="cpu")
    services.search_cancel(search)
    assert Candidate.objects.get(id=queued_id).state == Candidate.State.CANCELLED
    keep_going = services.epoch_record(running, epoch=1, train_loss=1, train_accuracy=0, val_loss=1,
                                       val_accuracy=0, seconds=0)
    assert keep_going is False
    assert services.candidate_claim(queued_id, worker="w", device="cpu") is None


def test_a_worker_that_lost_its_candidate_cannot_write_to_it(alice):
    search = create(alice)
    cid = services.search_advance(search.id)[0]
    cand = services.candidate_claim(cid, worker="w1", device="cpu")
    Candidate.objects.filter(id=cid).update(worker="w2")  # handed to another worker meanwhile
    assert not services.epoch_record(cand, epoch=1, train_loss=1, train_accuracy=0, val_loss=1,
                                     val_accuracy=0, seconds=0)
    assert not services.candidate_fail(cand, error="x")
    assert not EpochMetric.objects.exists()


def test_recording_the_same_epoch_twice_keeps_one_row(alice):
    search = create(alice)
    cand = services.candidate_claim(services.search_advance(search.id)[0], worker="w", device="cpu")
    metrics = dict(train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5, seconds=0.1)
    assert services.epoch_record(cand, epoch=1, **metrics)
    assert services.epoch_record(cand, epoch=1, **metrics)  # a retry whose first answer was lost
    assert EpochMetric.objects.filter(candidate=cand).count() == 1


def test_the_controllers_search_event_counts_what_postgres_holds(alice, monkeypatch):
    search = create(alice, max_candidates=6, parallel=3)
    ids = services.search_advance(search.id)
    finished = services.candidate_claim(ids[0], worker="w", device="cpu")
    services.candidate_finish(finished, test_accuracy=0.5, test_macro_recall=0.5, test_macro_f1=0.5,
                              confusion_matrix=[[1]], checkpoint_path="", checkpoint_size=0, checkpoint_sha256="")
    services.candidate_claim(ids[1], worker="w", device="cpu")
    published = []
    monkeypatch.setattr(services.events, "publish_on_commit", lambda sid, event: published.append(event))
    group_by = services.state_counts
    monkeypatch.setattr(services, "state_counts", lambda search_id: pytest.fail("the controller ran a GROUP BY"))

    created = services.search_advance(search.id)  # counted from the history it read

    counts = [e["search"]["counts"] for e in published if e["type"] == "search"][-1]
    assert counts == group_by(search.id)
    assert (counts["finished"], counts["running"], counts["queued"]) == (1, 1, 1 + len(created))
