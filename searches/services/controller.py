"""The controller: it reads a search's history and asks the strategy for the next candidates.

It owns the history as the strategy sees it (``search_history``) and the per-process
cache that keeps reading it cheap.
"""
from __future__ import annotations

import inspect
import threading
from collections import OrderedDict

from django.db import transaction
from django.utils import timezone

from .. import events
from ..models import Candidate, Search
from ..nas import STRATEGIES, InvalidArchitecture, StrategyError, Trial, get_space, get_strategy, pareto
from ..nas.strategy import strategy_rng
from .enqueue import _enqueue_train
from .searches import ONE_SHOT, _publish_search, search_fail


def _counts_of(history: list[Trial], queued_now: int) -> dict:
    """``state_counts`` from the history the controller read, plus the candidates it just
    queued: it has them at hand, and the GROUP BY grew with the search (5 ms a trial at
    10,000 candidates). Claims and ends don't take the search's lock, so, like the GROUP
    BY before, this can trail one of them by a moment; the next search event (every end
    advances the search) carries the counts again."""
    counts = {state: 0 for state in Candidate.State.values}
    for trial in history:
        counts[trial.state] += 1
    counts[Candidate.State.QUEUED] += queued_now
    return counts


class _SearchCache:
    """A per-process cache of one kind of value per search, most recently used kept.

    The control worker runs several threads: a lock guards the dict, and ``take`` hands a
    value to one caller at a time (it is put back when that caller is done), so no two
    threads ever extend the same list. Only a speed-up: a miss reads everything again.
    """

    def __init__(self, size: int):
        self._size = size
        self._values: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def take(self, search_id: int) -> list:
        with self._lock:
            return self._values.pop(search_id, [])

    def put(self, search_id: int, value: list) -> None:
        with self._lock:
            self._values[search_id] = value
            while len(self._values) > self._size:
                self._values.popitem(last=False)


# Per-process caches that keep a search's cost per trial from growing with its history.
# Both hold only what never changes once written: a candidate's architecture, and an
# ended candidate's trial (finished, failed, pruned and cancelled are final states).
_CACHED_SEARCHES = 32
_ARCH_CACHE = _SearchCache(_CACHED_SEARCHES)  # search id -> architectures by index
_ENDED_TRIALS = _SearchCache(_CACHED_SEARCHES)  # search id -> trials of its leading ended candidates


def search_history(search: Search) -> list[Trial]:
    """Every candidate so far, in index order, as the strategy sees it."""
    spec = score_spec(search)
    cached = _ENDED_TRIALS.take(search.id)  # the leading ended candidates, read before
    rows = list(search.candidates.filter(index__gte=len(cached)).order_by("index").values_list(
        "index", "arch_hash", "state", "best_val_accuracy", "final_val_accuracy", "param_count", "flops",
        "latency_ms"))
    archs = _archs_of(search.id, len(cached) + len(rows))[len(cached):]
    history = list(cached)
    for (index, arch_hash, state, best, final, params, flops, latency), arch in zip(rows, archs):
        metrics = {"val_accuracy": best, "final_val_accuracy": final, "params": params, "flops": flops,
                   "latency_ms": latency}
        score = None
        if state == Candidate.State.FINISHED:
            try:
                score = pareto.score(metrics, spec)
            except (KeyError, TypeError, ValueError):
                score = None  # a metric the objective needs was not measured
        history.append(Trial(arch=arch, state=state, score=score, metrics=metrics, arch_hash=arch_hash))
    ended = len(cached)
    while ended < len(history) and history[ended].state in Candidate.ENDED_STATES:
        ended += 1
    _ENDED_TRIALS.put(search.id, history[:ended])
    return history


def _archs_of(search_id: int, count: int) -> list[dict]:
    cached = _ARCH_CACHE.take(search_id)
    if len(cached) < count:
        cached.extend(Candidate.objects.filter(search_id=search_id, index__gte=len(cached))
                      .order_by("index").values_list("arch", flat=True))
    _ARCH_CACHE.put(search_id, cached)
    return cached[:count]


def score_spec(search: Search):
    """What ranks this search's candidates: its objectives, a reward, or the single objective."""
    if len(search.objectives) == 1 and "reward" in search.objectives[0]:
        return search.objectives[0]
    return search.objectives or search.objective


def _strategy_settings(search: Search) -> dict:
    settings_ = dict(search.strategy_settings)
    if search.warm_start_id:
        # Results of an earlier search seed the strategy's model (meta-learning across tasks).
        settings_["warm_start"] = [t for t in search_history(search.warm_start) if t.finished]
    if len(search.objectives) >= 2 and "objectives" in _init_params(search.strategy):
        settings_.setdefault("objectives", search.objectives)
    return settings_


def _strategy_for(search: Search):
    return get_strategy(search.strategy, _strategy_settings(search))


def _init_params(strategy_name: str) -> set:
    return set(inspect.signature(STRATEGIES[strategy_name].__init__).parameters)


def search_advance(search_id: int) -> list[int]:
    """Fill the search's free training slots with new candidates; finish it when spent.

    Runs under the search row's lock, so two controllers at once, or one
    restarted after a crash, never write a duplicate or exceed the budget.
    Returns the ids of the candidates it created.

    A strategy that proposes what it must not fails the search: that is a bug to show,
    and asking again gives the same answer. Any other error (the database, a bug here)
    propagates, so the task retries it and logs its traceback; the search stays active.
    """
    try:
        return _search_advance_locked(search_id)
    except StrategyError as exc:
        search_fail(search_id, f"The strategy could not propose a candidate: {exc}")
        return []


def _search_advance_locked(search_id: int) -> list[int]:
    with transaction.atomic():
        search = Search.objects.select_for_update().filter(pk=search_id).first()
        if search is None or search.state not in Search.ACTIVE_STATES:
            return []
        if search.state == Search.State.QUEUED:
            search.state = Search.State.RUNNING
            search.started_at = timezone.now()
        history = search_history(search)
        busy = sum(t.state in Candidate.BUSY_STATES for t in history)
        free = min(search.parallel - busy, search.max_candidates - len(history))
        created: list[Candidate] = []
        exhausted = False
        if free > 0 and search.strategy in ONE_SHOT and not history:
            # A one-shot search starts with its job; the job's proposals come next.
            created.append(Candidate.objects.create(
                search=search, index=0, arch={}, arch_hash=f"{search.strategy}-job", kind=search.strategy,
                genotype=ONE_SHOT[search.strategy]))
        elif free > 0:
            space = get_space(search.space, search.space_settings)
            archs = _proposals(search, space, history, free)
            exhausted = len(archs) < free
            for offset, arch in enumerate(archs):
                created.append(Candidate.objects.create(
                    search=search, index=len(history) + offset, arch=arch,
                    arch_hash=space.arch_hash(arch), genotype=space.genotype(arch)[:500]))
        if busy == 0 and not created and (len(history) >= search.max_candidates or exhausted):
            search.state = Search.State.FINISHED
            search.finished_at = timezone.now()
        search.save()
        for candidate in created:
            _enqueue_train(candidate.id)
            events.publish_on_commit(search.id, events.candidate_event(candidate))
        _publish_search(search, _counts_of(history, len(created)))
        return [c.id for c in created]


def _proposals(search: Search, space, history: list[Trial], free: int) -> list[dict]:
    """Up to ``free`` new architectures, valid in ``space`` and not tried before; StrategyError
    for what the strategy (or a one-shot job) must not propose."""
    if search.strategy in ONE_SHOT:
        archs = _oneshot_proposals(search, space, history, free)
    else:
        settings_ = _strategy_settings(search)  # the controller's read: its errors are its own
        rng = strategy_rng(search.seed, len(history))
        try:
            archs = get_strategy(search.strategy, settings_).ask(space, history, free, rng)
        except Exception as exc:  # bad settings, or the strategy's own bug: pure code, so
            # asking again gives the same answer (the controller's own errors are outside this)
            raise StrategyError(str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}") from exc
    seen = {t.hash_in(space) for t in history}
    valid = []
    for arch in archs[:free]:
        try:
            arch = space.validate(arch)
        except InvalidArchitecture as exc:
            raise StrategyError(str(exc)) from exc
        arch_hash = space.arch_hash(arch)
        if arch_hash in seen:
            raise StrategyError(f"it proposed an architecture the search has already: {space.genotype(arch)}")
        seen.add(arch_hash)
        valid.append(arch)
    return valid


def _oneshot_proposals(search: Search, space, history: list[Trial], n: int) -> list[dict]:
    """The architectures the search's finished one-shot job proposed, not yet created."""
    job = search.candidates.filter(index=0).first()
    if job is None or job.state != Candidate.State.FINISHED:
        return []  # still training (busy) or failed: nothing more to propose
    seen = {space.arch_hash(t.arch) for t in history[1:]}
    out = []
    for arch in job.extra.get("proposals", []):
        if space.arch_hash(arch) not in seen:
            seen.add(space.arch_hash(arch))
            out.append(arch)
    return out[:n]
