"""Services behind the engine and reliability: heartbeats, the reaper, objectives, warm start."""
import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from searches import services
from searches.models import Candidate, EpochMetric, Search, Worker

pytestmark = pytest.mark.django_db

METRICS = dict(train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5, seconds=0.1)


def create(owner, **overrides):
    kwargs = dict(owner=owner, name="s", dataset="digits", space="chain", strategy="random",
                  max_candidates=6, epochs=3, parallel=2, seed=7)
    kwargs.update(overrides)
    return services.search_create(**kwargs)


def finish(candidate, acc, params, flops=1000, latency=1.0):
    services.candidate_set_measurements(candidate, param_count=params, flops=flops, latency_ms=latency)
    services.epoch_record(candidate, epoch=1, **dict(METRICS, val_accuracy=acc))
    services.candidate_finish(candidate, test_accuracy=acc, test_macro_recall=acc, test_macro_f1=acc,
                              confusion_matrix=[[1]], checkpoint_path="/x", checkpoint_size=1,
                              checkpoint_sha256="x")


def test_the_reaper_requeues_silent_candidates_and_drops_their_epochs(alice):
    search = create(alice)
    stale_id, fresh_id = services.search_advance(search.id)
    stale = services.candidate_claim(stale_id, worker="dead@host", device="cpu")
    fresh = services.candidate_claim(fresh_id, worker="alive@host", device="cpu")
    services.epoch_record(stale, epoch=1, **METRICS)
    services.epoch_record(fresh, epoch=1, **METRICS)
    Candidate.objects.filter(id=stale_id).update(heartbeat_at=timezone.now() - timezone.timedelta(minutes=5))

    assert services.candidates_requeue_stale(timeout_seconds=60) == [stale_id]

    stale.refresh_from_db()
    assert (stale.state, stale.worker, stale.epochs_done, stale.best_val_accuracy) == ("queued", "", 0, None)
    assert not EpochMetric.objects.filter(candidate_id=stale_id).exists()
    assert EpochMetric.objects.filter(candidate_id=fresh_id).count() == 1
    # The presumed-dead worker, if it was only slow, can no longer write.
    assert services.epoch_record(stale_dead := Candidate.objects.get(id=stale_id), epoch=2, **METRICS) is False
    assert stale_dead.state == "queued"
    # Another worker claims it again.
    assert services.candidate_claim(stale_id, worker="new@host", device="cpu") is not None


def test_heartbeats_keep_the_workers_table_and_the_candidate_fresh(alice):
    search = create(alice)
    cid = services.search_advance(search.id)[0]
    services.candidate_claim(cid, worker="gpu0@box", device="cpu")
    Candidate.objects.filter(id=cid).update(heartbeat_at=timezone.now() - timezone.timedelta(minutes=5))
    services.worker_heartbeat(name="gpu0@box", host="box", device="CPU", candidate_id=cid,
                              samples_per_second=1234.0, epochs_delta=2)
    services.worker_heartbeat(name="gpu0@box", host="box", device="CPU", candidate_id=cid, epochs_delta=1)
    worker = Worker.objects.get(name="gpu0@box")
    assert worker.candidate_id == cid and worker.epochs_done == 3 and worker.samples_per_second == 1234.0
    assert services.candidates_requeue_stale(timeout_seconds=60) == []


def test_the_pareto_front_of_a_multi_objective_search_is_stored(alice):
    objectives = [{"metric": "val_accuracy", "direction": "max"}, {"metric": "params", "direction": "min"}]
    search = create(alice, objectives=objectives, parallel=4)
    a, b, c, d = (services.candidate_claim(i, worker="w", device="cpu") for i in services.search_advance(search.id))
    finish(a, 0.9, 1000)   # front: best accuracy
    finish(b, 0.8, 100)    # front: smallest
    finish(c, 0.7, 500)    # dominated by b
    finish(d, 0.85, 400)   # front
    front = set(Candidate.objects.filter(search=search, on_pareto_front=True).values_list("id", flat=True))
    assert front == {a.id, b.id, d.id}


def test_strategies_see_the_objective_as_score(alice):
    search = create(alice, objectives=[{"reward": "mnasnet", "accuracy": "val_accuracy",
                                        "latency": "latency_ms", "target": 1.0}], parallel=2)
    a, b = (services.candidate_claim(i, worker="w", device="cpu") for i in services.search_advance(search.id))
    finish(a, 0.9, 10, latency=2.0)
    finish(b, 0.9, 10, latency=0.5)
    history = services.search_history(Search.objects.get(id=search.id))
    assert history[1].score > history[0].score  # same accuracy, faster wins under the reward


@pytest.mark.parametrize("overrides,field", [
    ({"objectives": [{"metric": "nonsense"}]}, "objectives"),
    ({"objectives": [{"metric": "params", "direction": "sideways"}]}, "objectives"),
    ({"early_stopping": "crystal-ball"}, "early_stopping"),
    ({"early_stopping": "median", "early_stopping_settings": {"grace_epochs": "x"}}, "early_stopping"),
    ({"space": "text"}, "space"),  # a text space cannot train on an image data set
])
def test_bad_engine_settings_are_refused_with_a_message(alice, overrides, field):
    with pytest.raises(ValidationError) as info:
        create(alice, **overrides)
    assert field in info.value.message_dict
    assert not Search.objects.exists()


def test_warm_start_must_be_own_search_over_the_same_space(alice, bob):
    bobs = create(bob)
    with pytest.raises(ValidationError):
        create(alice, warm_start=bobs)
    other_space = create(alice, space="cell")
    with pytest.raises(ValidationError):
        create(alice, warm_start=other_space)


def test_warm_start_history_reaches_the_strategy(alice):
    earlier = create(alice, strategy="evolution", parallel=2)
    for cand in [services.candidate_claim(i, worker="w", device="cpu") for i in services.search_advance(earlier.id)]:
        finish(cand, 0.9, 10)
    later = create(alice, strategy="evolution", warm_start=earlier)
    strategy = services._strategy_for(later)
    assert len(strategy.warm_start) == 2


def test_queue_repair_resends_old_queued_work_and_nudges_active_searches(alice):
    search = create(alice)
    old_id, new_id = services.search_advance(search.id)
    Candidate.objects.filter(id=old_id).update(enqueued_at=timezone.now() - timezone.timedelta(minutes=5))
    before = Candidate.objects.get(id=old_id).enqueued_at

    repaired = services.queue_repair(timeout_seconds=60)

    assert repaired["resent"] == [old_id] and repaired["advanced"] == [search.id]
    assert Candidate.objects.get(id=old_id).enqueued_at > before
    assert services.queue_repair(timeout_seconds=60)["resent"] == []  # not again until it is old again


def test_an_architecture_outside_the_space_is_refused_before_any_training(alice, monkeypatch):
    from searches.nas import registry
    from searches.nas.strategy import Strategy

    class Rogue(Strategy):
        name = "rogue"

        def ask(self, space, history, n, rng):
            return [{"blocks": 99, "not-a-decision": True}]

    monkeypatch.setitem(registry.STRATEGIES, "rogue", Rogue)
    search = create(alice, strategy="rogue")

    assert services.search_advance(search.id) == []

    search.refresh_from_db()
    assert search.state == Search.State.FAILED and "could not propose" in search.error
    assert not Candidate.objects.filter(search=search).exists()
