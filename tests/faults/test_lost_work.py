"""Work that nobody would ever pick up (issue 14, items 4 and 5): the candidate of a
cancelled search whose worker was killed, and a bundle whose message was lost."""
import os
import signal

import pytest
import redis
from django.conf import settings
from django.urls import reverse
from factories import client_with, make_search

from searches import services
from searches.models import Bundle, Candidate, EpochMetric

from test_worker_faults import FAST_REAPER, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_killed_workers_candidate_in_a_cancelled_search_ends_cancelled(alice, start_celery_worker):
    start_celery_worker("control", "control", pool="threads", concurrency=2, beat=True, env=FAST_REAPER)
    victim = start_celery_worker("gpu", "victim", env=FAST_REAPER)
    search = services.search_create(owner=alice, name="cancel a dead one", dataset="synthetic", space="chain",
                                    strategy="random", max_candidates=2, epochs=30, parallel=1, seed=2)
    wait_until(lambda: EpochMetric.objects.filter(search=search).exists(), 120, "no epoch recorded")
    os.killpg(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait()
    services.search_cancel(search)
    running = Candidate.objects.get(search=search, state=Candidate.State.RUNNING)
    # The reaper takes it back from the dead worker; nothing would ever claim it again.
    ended = wait_until(lambda: Candidate.objects.filter(id=running.id, state=Candidate.State.CANCELLED).first(),
                       60, "the dead worker's candidate did not end")
    assert "cancelled" in ended.stop_reason
    assert not Candidate.objects.filter(search=search, state__in=Candidate.BUSY_STATES).exists()


def _finished_candidate(owner, root):
    _, (candidate,) = make_search(owner, root, finished=(0.7,), running=0)  # with a real checkpoint
    return candidate


def _lose_messages():
    """What a Redis restart does to the broker's queues."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


def test_the_repair_task_sends_a_lost_bundle_message_again(alice, start_celery_worker, checkpoint_dir):
    candidate = _finished_candidate(alice, checkpoint_dir)
    bundle = services.bundle_request(candidate)
    _lose_messages()
    start_celery_worker("control", "control", pool="threads", concurrency=2, beat=True, env=FAST_REAPER)
    built = wait_until(lambda: Bundle.objects.filter(id=bundle.id, state__in=("ready", "failed")).first(), 240,
                       "the bundle still waits for a worker")
    assert built.state == "ready", built.error
    assert built.attempt == 1  # sent again, not rebuilt


@pytest.mark.parametrize("rebuild", [False, True])
def test_asking_again_sends_a_lost_bundle_message_again(alice, start_celery_worker, checkpoint_dir, rebuild):
    candidate = _finished_candidate(alice, checkpoint_dir)
    key = services.api_token_create(owner=alice, name="cli")[1]
    url = reverse("api-bundle", args=[candidate.search_id, candidate.id])
    assert client_with(key).post(url, {}, format="json").status_code == 202
    _lose_messages()
    start_celery_worker("control", "control", pool="threads", concurrency=2)  # no beat: only the request helps
    again = client_with(key).post(url, {"rebuild": rebuild}, format="json")
    assert again.status_code == 202, again.content
    built = wait_until(lambda: Bundle.objects.filter(candidate=candidate, state__in=("ready", "failed")).first(),
                       240, "asking again did nothing")
    assert built.state == "ready", built.error
