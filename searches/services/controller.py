"""The controller: it reads a search's history and asks the strategy for the next candidates.

It owns the history as the strategy sees it (``search_history``) and the per-process
cache that keeps reading it cheap.
"""
from __future__ import annotations

import inspect

from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import events
from ..models import Candidate, Search
from ..nas import STRATEGIES, InvalidArchitecture, Trial, get_space, get_strategy, pareto
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


def search_history(search: Search) -> list[Trial]:
    """Every candidate so far, in index order, as the strategy sees it."""
    spec = score_spec(search)
    cached = _ENDED_TRIALS.pop(search.id, [])  # the leading ended candidates, read before
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
    _remember(_ENDED_TRIALS, search.id, history[:ended])
    return history


# Per-process caches that keep a search's cost per trial from growing with its history.
# Both hold only what never changes once written: a candidate's architecture, and an
# ended candidate's trial (finished, failed, pruned and cancelled are final states).
# Only a speed-up: a fresh process reads everything again.
_ARCH_CACHE: dict[int, list[dict]] = {}  # search id -> architectures by index
_ENDED_TRIALS: dict[int, list[Trial]] = {}  # search id -> trials of its leading ended candidates
_CACHED_SEARCHES = 32


def _remember(cache: dict, search_id: int, value) -> None:
    cache[search_id] = value  # most recently used last
    while len(cache) > _CACHED_SEARCHES:
        cache.pop(next(iter(cache)))


def _archs_of(search_id: int, count: int) -> list[dict]:
    cached = _ARCH_CACHE.pop(search_id, [])
    if len(cached) < count:
        cached.extend(Candidate.objects.filter(search_id=search_id, index__gte=len(cached))
                      .order_by("index").values_list("arch", flat=True))
    _remember(_ARCH_CACHE, search_id, cached)
    return cached[:count]


def score_spec(search: Search):
    """What ranks this search's candidates: its objectives, a reward, or the single objective."""
    if len(search.objectives) == 1 and "reward" in search.objectives[0]:
        return search.objectives[0]
    return search.objectives or search.objective


def _strategy_for(search: Search):
    settings_ = dict(search.strategy_settings)
    if search.warm_start_id:
        # Results of an earlier search seed the strategy's model (meta-learning across tasks).
        settings_["warm_start"] = [t for t in search_history(search.warm_start) if t.finished]
    if len(search.objectives) >= 2 and "objectives" in _init_params(search.strategy):
        settings_.setdefault("objectives", search.objectives)
    return get_strategy(search.strategy, settings_)


def _init_params(strategy_name: str) -> set:
    return set(inspect.signature(STRATEGIES[strategy_name].__init__).parameters)


def search_advance(search_id: int) -> list[int]:
    """Fill the search's free training slots with new candidates; finish it when spent.

    Runs under the search row's lock, so two controllers at once, or one
    restarted after a crash, never write a duplicate or exceed the budget.
    Returns the ids of the candidates it created.
    """
    try:
        return _search_advance_locked(search_id)
    except (InvalidArchitecture, IntegrityError, ValueError, TypeError) as exc:
        # A strategy that proposes what it must not is a bug to show, not to retry forever.
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
            if search.strategy in ONE_SHOT:
                archs = _oneshot_proposals(search, space, history, free)
            else:
                archs = _strategy_for(search).ask(space, history, free, strategy_rng(search.seed, len(history)))
            exhausted = len(archs) < free
            for offset, arch in enumerate(archs[:free]):
                arch = space.validate(arch)
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
