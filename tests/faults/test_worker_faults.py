"""Kill processes mid-work and check that nothing is lost or counted twice."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from searches import services
from searches.models import Candidate, EpochMetric, Search

from processes import ROOT, process_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

EPOCHS = 30  # enough that the kill lands mid-candidate however fast an epoch is
FAST_REAPER = {"HEARTBEAT_SECONDS": "0.5", "HEARTBEAT_TIMEOUT_SECONDS": "4"}


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(what)


def assert_search_complete(search, budget, epochs):
    search.refresh_from_db()
    assert search.state == Search.State.FINISHED, search.error
    candidates = list(search.candidates.order_by("index"))
    assert [c.index for c in candidates] == list(range(budget))
    assert all(c.state == Candidate.State.FINISHED for c in candidates)
    for c in candidates:
        epochs_of_c = list(EpochMetric.objects.filter(candidate=c).order_by("epoch").values_list("epoch", flat=True))
        assert epochs_of_c == list(range(1, epochs + 1)), (c.index, epochs_of_c)
    seqs = list(EpochMetric.objects.filter(search=search).values_list("seq", flat=True))
    assert len(seqs) == len(set(seqs)) == budget * epochs


def test_a_killed_training_worker_loses_no_epoch_and_the_search_finishes(alice, start_celery_worker):
    start_celery_worker("control", "control", pool="threads", concurrency=2, beat=True, env=FAST_REAPER)
    victim = start_celery_worker("gpu", "victim", env=FAST_REAPER)
    search = services.search_create(owner=alice, name="kill", dataset="synthetic", space="chain",
                                    strategy="random", max_candidates=3, epochs=EPOCHS, parallel=1, seed=9)
    # Kill it in the middle of the first candidate: after its first epoch committed, before the last.
    wait_until(lambda: EpochMetric.objects.filter(search=search).exists(), 120, "no epoch recorded")
    os.killpg(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait()
    killed = Candidate.objects.get(search=search, index=0)
    assert killed.state == Candidate.State.RUNNING and killed.epochs_done < EPOCHS

    start_celery_worker("gpu", "rescuer", env=FAST_REAPER)
    wait_until(lambda: Search.objects.get(id=search.id).state in Search.ENDED_STATES, 240, "search did not end")

    assert_search_complete(search, budget=3, epochs=EPOCHS)
    assert Candidate.objects.get(id=killed.id).worker.startswith("rescuer@")


CONTROLLER_LOOP = """
import django, os, sys
django.setup()
from searches import services
from searches.models import Candidate
search_id = int(sys.argv[1])
while True:
    if len(sys.argv) > 2:
        # The last run also plays the reaper: a killed loop may have died between claim and finish.
        services.candidates_requeue_stale(timeout_seconds=0)
    services.search_advance(search_id)
    # Play the workers' part instantly, so the controller is what gets killed.
    for cid in Candidate.objects.filter(search_id=search_id, state="queued").values_list("id", flat=True):
        cand = services.candidate_claim(cid, worker="fake", device="cpu")
        if cand is not None:
            services.candidate_finish(cand, test_accuracy=0.5, test_macro_recall=0.5, test_macro_f1=0.5,
                                      confusion_matrix=[[1]], checkpoint_path="", checkpoint_size=0,
                                      checkpoint_sha256="")
"""


def test_a_controller_killed_twenty_times_never_duplicates_or_overspends(alice, tmp_path):
    budget = 60
    search = services.search_create(owner=alice, name="controller", dataset="digits", space="chain",
                                    strategy="evolution", max_candidates=budget, epochs=1, parallel=3, seed=4)
    env = process_env(tmp_path)
    rng = random.Random(0)
    for _ in range(20):
        proc = subprocess.Popen([sys.executable, "-c", CONTROLLER_LOOP, str(search.id)], cwd=ROOT, env=env)
        time.sleep(rng.uniform(1.2, 2.5))  # django + torch import take about a second; then it works
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        count = Candidate.objects.filter(search=search).count()
        assert count <= budget
    # A last, undisturbed controller finishes the search.
    proc = subprocess.run([sys.executable, "-c", CONTROLLER_LOOP.replace("while True:", "for _ in range(200):"),
                           str(search.id), "last"], cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0
    services.search_advance(search.id)
    search.refresh_from_db()
    assert search.state == Search.State.FINISHED
    candidates = list(Candidate.objects.filter(search=search).order_by("index"))
    assert [c.index for c in candidates] == list(range(budget))
    assert len({c.arch_hash for c in candidates}) == budget
    assert all(c.state == Candidate.State.FINISHED for c in candidates)
