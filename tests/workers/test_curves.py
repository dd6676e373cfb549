"""Early stopping reads the search's curves a little at a time, and sees what a full read sees."""
import pytest
from django.utils import timezone

from searches import services
from searches.models import Candidate, EpochMetric
from workers.curves import SearchCurves

pytestmark = pytest.mark.django_db

METRICS = dict(train_loss=1.0, train_accuracy=0.5, val_loss=1.0, seconds=0.1)


def full_read(search_id, candidate_id, up_to_epoch):
    """Every epoch of the search, as the worker read it before: the reference."""
    curves = {}
    for cid, value in (EpochMetric.objects.filter(search_id=search_id, epoch__lte=up_to_epoch)
                       .order_by("candidate_id", "epoch").values_list("candidate_id", "val_accuracy")):
        curves.setdefault(cid, []).append(value)
    return curves.pop(candidate_id, []), list(curves.values())


def test_the_curves_match_a_full_read_and_each_update_reads_only_the_new_epochs(alice):
    search = services.search_create(owner=alice, name="c", dataset="digits", space="chain", strategy="random",
                                    max_candidates=3, epochs=5, parallel=3, seed=1)
    a, b, c = (services.candidate_claim(i, worker="w", device="cpu") for i in services.search_advance(search.id))
    curves = SearchCurves(search.id)
    for epoch in (1, 2, 3):
        for cand, base in ((a, 0.1), (b, 0.2), (c, 0.3)):
            services.epoch_record(cand, epoch=epoch, val_accuracy=base + epoch / 10, **METRICS)
    assert curves.update() == 9
    assert curves.of(a.id, up_to_epoch=2) == full_read(search.id, a.id, 2)

    services.epoch_record(a, epoch=4, val_accuracy=0.9, **METRICS)
    assert curves.update() == 1  # only the new epoch, not the search's whole history again
    assert curves.of(a.id, up_to_epoch=4) == full_read(search.id, a.id, 4)
    assert curves.update() == 0

    # b's worker goes silent: b is taken back and trains again from epoch 1.
    Candidate.objects.filter(id=b.id).update(heartbeat_at=timezone.now() - timezone.timedelta(minutes=5))
    assert services.candidates_requeue_stale(timeout_seconds=60) == [b.id]
    b = services.candidate_claim(b.id, worker="w2", device="cpu")
    services.epoch_record(b, epoch=1, val_accuracy=0.05, **METRICS)
    curves.update()
    assert curves.of(a.id, up_to_epoch=4) == full_read(search.id, a.id, 4)
    own, peers = curves.of(b.id, up_to_epoch=4)
    assert (own, peers) == full_read(search.id, b.id, 4)
    assert own == [0.05] and [len(p) for p in peers] == [4, 3]  # b's first run is gone
