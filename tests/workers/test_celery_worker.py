"""A real Celery worker process, the real Redis broker and Postgres: a tiny search runs to the end."""
import time
from pathlib import Path

import pytest
import torch

from searches import services
from searches.models import Candidate, EpochMetric, Search

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def wait_for_search_end(search_id, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        search = Search.objects.get(id=search_id)
        if search.state in Search.ENDED_STATES:
            return search
        time.sleep(0.5)
    raise TimeoutError(f"search {search_id} still {search.state} after {timeout}s")


def test_workers_run_a_tiny_search_to_the_end(alice, start_celery_worker):
    start_celery_worker("control", "control", pool="threads", concurrency=2)
    gpu = start_celery_worker("gpu", "cpu0")
    search = services.search_create(owner=alice, name="tiny", dataset="digits", space="chain",
                                    strategy="random", max_candidates=3, epochs=2, parallel=2, seed=1)

    search = wait_for_search_end(search.id)

    assert search.state == Search.State.FINISHED, search.error
    candidates = list(search.candidates.order_by("index"))
    assert [c.state for c in candidates] == [Candidate.State.FINISHED] * 3
    assert len({c.arch_hash for c in candidates}) == 3
    assert all(c.worker.startswith("cpu0@") for c in candidates)
    seqs = list(EpochMetric.objects.filter(search=search).order_by("created_at", "id").values_list("seq", flat=True))
    assert sorted(seqs) == list(range(1, 7)) and seqs == sorted(seqs)
    for c in candidates:
        assert Path(c.checkpoint_path).is_file()
        assert torch.load(c.checkpoint_path, weights_only=True)["arch"] == c.arch
    assert "train_candidate" in gpu.output()
