"""DARTS and weight-sharing searches run as jobs on the worker, then retrain what they propose."""
import pytest
from django.conf import settings

from searches import services
from searches.models import Candidate, EpochMetric, Search
from searches.nas.cell import CellSpace
from workers import datasets, training

pytestmark = pytest.mark.django_db

SMALL_CELL = {"ops": ["none", "skip", "conv3x3"], "channels": 4, "cells_per_stage": 1}


def run_search_inline(search):
    """Play the controller and the worker in this process until the search ends."""
    for _ in range(20):
        ids = services.search_advance(search.id)
        if not ids:
            break
        for cid in ids:
            training.run_candidate(cid, worker="w")
    services.search_advance(search.id)
    search.refresh_from_db()
    return search


@pytest.mark.parametrize("strategy", ["darts", "supernet"])
def test_a_one_shot_search_runs_its_job_then_retrains_its_proposals(alice, checkpoint_dir, strategy):
    search = services.search_create(owner=alice, name=strategy, dataset="digits", space="cell",
                                    space_settings=SMALL_CELL, strategy=strategy, max_candidates=3,
                                    strategy_settings={"pool": 12}, train_settings={"train_fraction": 0.3},
                                    epochs=2, parallel=1, seed=1)
    search = run_search_inline(search)

    assert search.state == Search.State.FINISHED, search.error
    job = Candidate.objects.get(search=search, index=0)
    assert job.kind == strategy and job.state == Candidate.State.FINISHED
    job_epochs = list(EpochMetric.objects.filter(candidate=job))
    assert len(job_epochs) == 2  # streamed like any candidate
    assert all(e.seconds > 0 and e.train_accuracy > 0 and e.val_loss > 0 for e in job_epochs)  # measured, not filler
    proposals = job.extra["proposals"]
    space = CellSpace(**SMALL_CELL)
    assert proposals and all(space.is_valid(a) for a in proposals)
    retrained = list(Candidate.objects.filter(search=search, kind="train").order_by("index"))
    assert retrained and [c.arch for c in retrained] == proposals[:len(retrained)]
    # The job trained on a 30% subset; the worker's kept copy of the set stays whole.
    full = datasets.load("digits", search.seed, str(settings.DATA_DIR))  # what the worker loaded
    assert len(datasets.on_device(full, "cpu").x_train) == len(full.x_train)
    assert all(c.state == Candidate.State.FINISHED and c.checkpoint_path for c in retrained)
    if strategy == "darts":
        history = job.extra["edge_weights"]
        assert len(history) == 2 and set(history[0]) == {"e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2"}
        assert abs(sum(history[-1]["e1_0"].values()) - 1) < 1e-6
        assert isinstance(job.extra["skip_collapse"], bool)
        assert len(retrained) == 1  # DARTS derives one cell
    else:
        assert len(retrained) == 2 and job.extra["ranking"]


def test_one_shot_strategies_need_the_cell_space(alice):
    from django.core.exceptions import ValidationError
    with pytest.raises(ValidationError) as info:
        services.search_create(owner=alice, name="x", dataset="digits", space="chain", strategy="darts",
                               max_candidates=2, epochs=1)
    assert "cell space" in info.value.message_dict["strategy"][0]
