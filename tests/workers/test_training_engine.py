"""What the worker adds around the loop: measurements, early stopping, proxies, limits, failures."""
import pytest

from searches import services
from searches.models import Candidate, EpochMetric
from workers import datasets, training

pytestmark = pytest.mark.django_db

METRICS = dict(train_loss=0.1, train_accuracy=0.99, val_loss=0.1, seconds=0.1)


def make_search(owner, **overrides):
    kwargs = dict(owner=owner, name="t", dataset="digits", space="chain", strategy="random",
                  max_candidates=6, epochs=2, parallel=1, seed=3)
    kwargs.update(overrides)
    return services.search_create(**kwargs)


def add_finished_peers(search, count, accuracy, epochs):
    """Peers that already trained well, written as a worker would."""
    ids = []
    while len(ids) < count:
        search.parallel = count
        search.save(update_fields=["parallel"])
        ids += services.search_advance(search.id)
    for cid in ids[:count]:
        cand = services.candidate_claim(cid, worker="peer", device="cpu")
        for epoch in range(1, epochs + 1):
            services.epoch_record(cand, epoch=epoch, val_accuracy=accuracy, **METRICS)
    search.parallel = count + 1
    search.save(update_fields=["parallel"])
    return services.search_advance(search.id)[0]


def test_parameters_flops_and_latency_are_measured(alice, checkpoint_dir):
    search = make_search(alice, epochs=1)
    cid = services.search_advance(search.id)[0]
    training.run_candidate(cid, worker="w")
    cand = Candidate.objects.get(id=cid)
    assert cand.param_count > 0 and cand.flops > 0 and cand.latency_ms > 0


def test_median_rule_prunes_a_candidate_far_below_its_peers(alice, checkpoint_dir):
    search = make_search(alice, epochs=4, early_stopping="median",
                         early_stopping_settings={"grace_epochs": 1, "min_peers": 3},
                         train_settings={"lr": 1e-7})  # this candidate cannot learn
    cid = add_finished_peers(search, 3, accuracy=0.99, epochs=4)

    assert training.run_candidate(cid, worker="w") == "pruned"

    cand = Candidate.objects.get(id=cid)
    assert cand.state == Candidate.State.PRUNED
    assert "median" in cand.stop_reason.lower()
    assert cand.epochs_done < 4 and EpochMetric.objects.filter(candidate=cand).count() == cand.epochs_done
    assert not cand.checkpoint_path


def test_without_a_rule_the_same_candidate_trains_its_full_budget(alice, checkpoint_dir):
    search = make_search(alice, epochs=3, train_settings={"lr": 1e-7})
    cid = add_finished_peers(search, 3, accuracy=0.99, epochs=3)
    assert training.run_candidate(cid, worker="w") == "finished"
    assert Candidate.objects.get(id=cid).epochs_done == 3


def test_proxies_train_on_part_of_the_data_at_lower_resolution(alice, checkpoint_dir):
    search = make_search(alice, dataset="synthetic", epochs=1,
                         train_settings={"train_fraction": 0.25, "resolution": 8})
    cid = services.search_advance(search.id)[0]
    assert training.run_candidate(cid, worker="w") == "finished"
    import torch
    ckpt = torch.load(Candidate.objects.get(id=cid).checkpoint_path, weights_only=True)
    assert ckpt["input_shape"] == [1, 8, 8]
    full = datasets.load("synthetic", search.seed, "unused")
    assert datasets.load("synthetic", search.seed, "unused", resolution=8).x_train.shape[-1] == 8
    assert full.x_train.shape[-1] == 16


def test_a_candidate_past_its_time_limit_is_stopped_and_failed(alice, checkpoint_dir, settings):
    settings.CELERY_TASK_TIME_LIMIT = 6  # the loop's own limit is 5 s less: 1 s
    search = make_search(alice, epochs=1000)
    cid = services.search_advance(search.id)[0]

    assert training.run_candidate(cid, worker="w") == "failed"

    cand = Candidate.objects.get(id=cid)
    assert cand.state == Candidate.State.FAILED and "time limit" in cand.error
    assert cand.epochs_done < 1000


def test_an_unwritable_checkpoint_directory_fails_the_candidate_with_a_clear_message(alice, settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    settings.CHECKPOINT_DIR = blocker / "checkpoints"
    search = make_search(alice, epochs=1)
    cid = services.search_advance(search.id)[0]

    assert training.run_candidate(cid, worker="w") == "failed"

    cand = Candidate.objects.get(id=cid)
    assert "Could not write the checkpoint" in cand.error
    assert not cand.checkpoint_path and cand.state == Candidate.State.FAILED


def test_database_errors_are_retried_with_back_off(monkeypatch):
    from django.db import OperationalError
    monkeypatch.setattr(training, "DB_RETRY_DELAYS", (0, 0))
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("server closed the connection unexpectedly")
        return "saved"

    assert training.with_db_retry(flaky) == "saved" and len(calls) == 3
    calls.clear()

    def down():
        calls.append(1)
        raise OperationalError("could not connect to server")

    with pytest.raises(OperationalError):
        training.with_db_retry(down)
    assert len(calls) == 3  # two retries, then the error: never a silent success
