"""A training worker that hangs, is replaced, and wakes up (issue 14, item 1).

``make demo`` names the CPU worker ``cpu0@host``, so its replacement after a hang
has the same Celery node name. Ownership by worker name alone let the woken run
write epochs into the new run's curve and delete the winner's checkpoint; every
claim now has its own attempt number, checked by every write, and its own file.
"""
import hashlib
import os
import signal

import pytest
from django.urls import reverse

from searches import services
from searches.models import Candidate, EpochMetric, Search

from test_worker_faults import FAST_REAPER, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

EPOCHS = 16


def test_a_hung_worker_that_wakes_up_cannot_touch_the_replacement_run(alice, client, start_celery_worker):
    start_celery_worker("control", "control", pool="threads", concurrency=2, beat=True, env=FAST_REAPER)
    hung = start_celery_worker("gpu", "cpu0", env=FAST_REAPER)
    search = services.search_create(owner=alice, name="hang", dataset="synthetic", space="chain",
                                    strategy="random", max_candidates=1, epochs=EPOCHS, parallel=1, seed=3)
    wait_until(lambda: EpochMetric.objects.filter(search=search).count() >= 2, 180, "no epochs recorded")
    os.killpg(hung.proc.pid, signal.SIGSTOP)  # hangs mid-candidate: no epochs, no heartbeat
    try:
        first = Candidate.objects.get(search=search)
        assert first.state == Candidate.State.RUNNING
        replacement = start_celery_worker("gpu", "cpu0", env=FAST_REAPER)  # the same node name
        wait_until(lambda: "train_candidate[" in replacement.output() and Candidate.objects.filter(
            search=search, state=Candidate.State.RUNNING, epochs_done__gte=1).exists(), 180, "no second claim")
    finally:
        os.killpg(hung.proc.pid, signal.SIGCONT)  # wakes up while the replacement trains
    wait_until(lambda: Search.objects.get(id=search.id).state in Search.ENDED_STATES, 300, "search did not end")
    wait_until(lambda: "succeeded in" in hung.output(), 300, "the woken run did not end")

    candidate = Candidate.objects.get(search=search)
    assert candidate.state == Candidate.State.FINISHED
    path = candidate.checkpoint_path
    assert os.path.isfile(path), "the winner's checkpoint was deleted"
    with open(path, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == candidate.checkpoint_sha256
    # One curve, from the second run only: epochs 1..EPOCHS once each, in sequence order.
    rows = list(EpochMetric.objects.filter(candidate=candidate).order_by("seq").values_list("epoch", flat=True))
    assert rows == list(range(1, EPOCHS + 1))
    assert candidate.attempt == 2 and path.endswith(f"candidate-{candidate.index}-a2.pt")
    # The woken run stopped at its first write and left no file of its own behind.
    assert "'cancelled'" in hung.output() or "'skipped'" in hung.output(), hung.output()[-2000:]
    assert not os.path.exists(path.replace("-a2.pt", "-a1.pt"))
    client.force_login(alice)
    download = client.get(reverse("candidate_checkpoint", args=[search.id, candidate.id]))
    assert download.status_code == 200
    assert replacement.proc.poll() is None
