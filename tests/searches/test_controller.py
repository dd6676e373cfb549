"""The controller: only the strategy's own errors fail a search; its cache is safe under threads."""
import logging
import sys
import threading

import pytest

from searches import services
from searches.models import Candidate, Search
from searches.services import controller
from workers import tasks

pytestmark = pytest.mark.django_db


def create(owner, **overrides):
    kwargs = dict(owner=owner, name="s", dataset="digits", space="chain", strategy="random",
                  max_candidates=6, epochs=3, parallel=2, seed=7)
    kwargs.update(overrides)
    return services.search_create(**kwargs)


def test_a_programming_error_in_the_controller_does_not_fail_the_search_for_good(alice, monkeypatch):
    search = create(alice)
    real = controller._counts_of

    def buggy(history, queued_now):
        raise AttributeError("'NoneType' object has no attribute 'state'")  # a bug of ours, not the strategy's

    monkeypatch.setattr(controller, "_counts_of", buggy)
    with pytest.raises(AttributeError):
        services.search_advance(search.id)

    search.refresh_from_db()
    assert search.state == Search.State.QUEUED and search.error == ""
    assert not Candidate.objects.filter(search=search).exists()  # rolled back, nothing half-written

    monkeypatch.setattr(controller, "_counts_of", real)  # the fix is deployed; the retry goes through
    assert len(services.search_advance(search.id)) == 2
    search.refresh_from_db()
    assert search.state == Search.State.RUNNING


def test_the_advance_task_logs_the_traceback_of_an_error_it_retries(alice, monkeypatch, caplog):
    search = create(alice)
    monkeypatch.setattr(controller, "_counts_of", lambda history, queued_now: 1 / 0)  # a bug of ours
    with caplog.at_level(logging.ERROR, logger="workers.tasks"), pytest.raises(ZeroDivisionError):
        tasks.advance_search(search.id)  # called directly, Celery's retry re-raises the error

    record = next(r for r in caplog.records if r.name == "workers.tasks")
    assert f"search {search.id}" in record.getMessage() and record.exc_info is not None
    search.refresh_from_db()
    assert search.state == Search.State.QUEUED


def test_a_strategy_that_raises_fails_the_search_with_its_reason(alice, monkeypatch):
    from searches.nas import registry
    from searches.nas.strategy import Strategy

    class Broken(Strategy):
        name = "broken"

        def ask(self, space, history, n, rng):
            return [None][n]  # the strategy's own bug

    monkeypatch.setitem(registry.STRATEGIES, "broken", Broken)
    search = create(alice, strategy="broken")

    assert services.search_advance(search.id) == []
    search.refresh_from_db()
    assert search.state == Search.State.FAILED
    assert "could not propose" in search.error and "IndexError" in search.error


def test_a_strategy_that_proposes_a_duplicate_fails_the_search(alice, monkeypatch):
    from searches.nas import registry
    from searches.nas.strategy import Strategy

    class Repeats(Strategy):
        name = "repeats"

        def ask(self, space, history, n, rng):
            arch = space.sample(rng) if not history else history[0].arch
            return [arch] * n

    monkeypatch.setitem(registry.STRATEGIES, "repeats", Repeats)
    search = create(alice, strategy="repeats")

    assert services.search_advance(search.id) == []
    search.refresh_from_db()
    assert search.state == Search.State.FAILED and "already" in search.error
    assert not Candidate.objects.filter(search=search).exists()


def test_the_controller_cache_hands_a_search_to_one_thread_at_a_time():
    cache = controller._SearchCache(2)
    cache.put(1, ["a"])
    assert cache.take(1) == ["a"] and cache.take(1) == []  # a second taker reads afresh
    cache.put(1, ["a"])
    cache.put(2, ["b"])
    cache.put(3, ["c"])  # the least recently used goes
    assert cache.take(1) == [] and cache.take(3) == ["c"]


def test_the_controller_cache_survives_many_threads_evicting_at_once():
    cache = controller._SearchCache(4)
    errors = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible

    def hammer(offset):
        try:
            for i in range(20000):
                key = (i * 7 + offset) % 50
                cache.put(key, cache.take(key) + [i])
        except Exception as exc:  # a KeyError from two threads evicting the same key, say
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    assert len(cache._values) <= 4
