"""Every state change of the domain goes through one function here.

Views, consumers and Celery tasks call these and nothing else that writes.
Work for the workers is enqueued only after the transaction that made it
commits, so a worker never sees a row a rollback took back.
"""
from __future__ import annotations

import secrets
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from nasweb.celery import app as celery_app

from . import events
from .datasets_catalog import dataset_info
from .models import Candidate, EpochMetric, Search
from .nas import STRATEGIES, InvalidArchitecture, Trial, get_space, get_strategy, pareto
from .nas.early_stopping import get_early_stopping
from .nas.strategy import strategy_rng

ADVANCE_TASK = "workers.tasks.advance_search"
TRAIN_TASK = "workers.tasks.train_candidate"

LIMITS = {
    "max_candidates": (1, 100_000),
    "epochs": (1, 1_000),
    "parallel": (1, 256),
}


def _enqueue_advance(search_id: int) -> None:
    transaction.on_commit(lambda: celery_app.send_task(ADVANCE_TASK, args=[search_id], queue="control"))


def _enqueue_train(candidate_id: int) -> None:
    Candidate.objects.filter(id=candidate_id).update(enqueued_at=timezone.now())
    transaction.on_commit(lambda: celery_app.send_task(TRAIN_TASK, args=[candidate_id], queue="gpu"))


def _task_of(space) -> str:
    return {"image": "image-classification", "text": "text-classification"}[getattr(space, "modality", "image")]


def state_counts(search_id: int) -> dict:
    rows = Candidate.objects.filter(search_id=search_id).values("state").annotate(n=Count("id"))
    counts = {state: 0 for state in Candidate.State.values}
    counts.update({r["state"]: r["n"] for r in rows})
    return counts


def _publish_search(search: Search, counts: dict | None = None) -> None:
    events.publish_on_commit(search.id, events.search_event(
        search, counts if counts is not None else state_counts(search.id)))


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


# --- searches -------------------------------------------------------------

def search_create(*, owner, name, dataset, space, strategy, max_candidates, epochs, parallel=1,
                  seed=None, space_settings=None, strategy_settings=None, train_settings=None,
                  objective="val_accuracy", objectives=None, early_stopping="none",
                  early_stopping_settings=None, warm_start=None) -> Search:
    """Create a search and ask the controller to start it once committed."""
    errors = {}
    try:
        get_early_stopping(early_stopping, early_stopping_settings)
    except (ValueError, TypeError) as exc:
        errors["early_stopping"] = str(exc)
    try:
        parsed = pareto.parse_objectives([o for o in objectives or [] if "reward" not in o])
        known = set(candidate_metrics({}))
        unknown = [o.metric for o in parsed if o.metric not in known]
        if unknown:
            errors["objectives"] = f"Unknown metric {unknown[0]!r}; choose from {sorted(known)}."
    except (ValueError, TypeError) as exc:
        errors["objectives"] = str(exc)
    if warm_start is not None and (warm_start.owner_id != owner.id or warm_start.space != space):
        errors["warm_start"] = "Warm start from one of your own searches over the same search space."
    if not str(name or "").strip():
        errors["name"] = "Give the search a name."
    info = dataset_info(dataset, owner=owner)  # an upload is known only to its owner
    if info is None:
        errors["dataset"] = f"Unknown data set {dataset!r}."
    for field, value in (("max_candidates", max_candidates), ("epochs", epochs), ("parallel", parallel)):
        low, high = LIMITS[field]
        if not isinstance(value, int) or not low <= value <= high:
            errors[field] = f"Must be a whole number from {low} to {high}."
    try:
        space_obj = get_space(space, space_settings)
    except (ValueError, TypeError) as exc:
        errors["space"] = str(exc)
    if strategy in ONE_SHOT:
        if space != "cell":
            errors["strategy"] = f"{ONE_SHOT[strategy]} searches the cell space; choose the cell space."
    else:
        try:
            get_strategy(strategy, strategy_settings)
        except (ValueError, TypeError) as exc:
            errors["strategy"] = str(exc)
    if "space" not in errors and info is not None and info.task != _task_of(space_obj):
        errors["space"] = (f"The {space} space builds {getattr(space_obj, 'modality', 'image')} models; "
                           f"{info.label} needs a {info.task} space.")
    if "space" not in errors and isinstance(max_candidates, int) and max_candidates > space_obj.size():
        errors["max_candidates"] = (f"The {space} space has at most {space_obj.size()} architectures; "
                                    f"ask for fewer candidates.")
    if seed is not None and (not isinstance(seed, int) or not 0 <= seed < 2**63):
        errors["seed"] = "The seed is a whole number from 0."
    if errors:
        raise ValidationError(errors)

    with transaction.atomic():
        search = Search.objects.create(
            owner=owner, name=name.strip(), dataset=dataset, space=space,
            space_settings=space_settings or {}, strategy=strategy,
            strategy_settings=strategy_settings or {}, max_candidates=max_candidates,
            epochs=epochs, parallel=parallel, objective=objective,
            train_settings=train_settings or {}, objectives=list(objectives or []),
            early_stopping=early_stopping, early_stopping_settings=early_stopping_settings or {},
            warm_start=warm_start,
            seed=secrets.randbelow(2**31) if seed is None else seed,
            task=info.task,
        )
        _enqueue_advance(search.id)
    return search


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
    import inspect
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


ONE_SHOT = {"darts": "DARTS (one-shot, then retrain the derived cell)",
            "supernet": "Weight sharing (ENAS-style supernet, retrain the top cells)"}


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


def search_fail(search_id: int, message: str) -> None:
    """End a search that cannot go on, with a message a person can act on."""
    with transaction.atomic():
        search = Search.objects.select_for_update().filter(pk=search_id).first()
        if search is None or search.state in Search.ENDED_STATES:
            return
        search.state = Search.State.FAILED
        search.error = message
        search.finished_at = timezone.now()
        search.save(update_fields=["state", "error", "finished_at"])
        _publish_search(search)


def search_cancel(search: Search) -> Search:
    """Stop a search: queued candidates are cancelled, running ones stop at their next epoch."""
    with transaction.atomic():
        search = Search.objects.select_for_update().get(pk=search.pk)
        if search.state in Search.ENDED_STATES:
            return search
        search.state = Search.State.CANCELLED
        search.finished_at = timezone.now()
        search.save(update_fields=["state", "finished_at"])
        queued = list(search.candidates.filter(state=Candidate.State.QUEUED))
        search.candidates.filter(state=Candidate.State.QUEUED).update(
            state=Candidate.State.CANCELLED, finished_at=timezone.now())
        for candidate in queued:
            candidate.state = Candidate.State.CANCELLED
            events.publish_on_commit(search.id, events.candidate_event(candidate))
        _publish_search(search)
    return search


# --- candidates -------------------------------------------------------------

def candidate_claim(candidate_id: int, *, worker: str, device: str) -> Candidate | None:
    """Take a queued candidate for training; None if another worker has it or it was cancelled."""
    now = timezone.now()
    with transaction.atomic():
        claimed = Candidate.objects.filter(
            id=candidate_id, state=Candidate.State.QUEUED,
            search__state__in=Search.ACTIVE_STATES + (Search.State.PAUSED,),
        ).update(state=Candidate.State.RUNNING, worker=worker, device=device,
                 heartbeat_at=now, started_at=now)
        if not claimed:
            return None
        candidate = Candidate.objects.select_related("search").get(id=candidate_id)
        events.publish_on_commit(candidate.search_id, events.candidate_event(candidate))
    return candidate


def candidate_set_measurements(candidate: Candidate, *, param_count: int, flops: int | None = None,
                               latency_ms: float | None = None) -> None:
    """Size and speed of the built network, measured on the worker's own device."""
    Candidate.objects.filter(id=candidate.id).update(param_count=param_count, flops=flops, latency_ms=latency_ms)
    candidate.param_count, candidate.flops, candidate.latency_ms = param_count, flops, latency_ms


def _next_seq(search_id: int) -> int:
    # One statement bumps and returns the counter under the search row's lock,
    # so sequence numbers are strictly increasing across concurrent workers.
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Search._meta.db_table} SET last_seq = last_seq + 1 "
                       "WHERE id = %s RETURNING last_seq, state", [search_id])
        return cursor.fetchone()


EPOCH_LOCK_NAMESPACE = 7405  # first key of pg_advisory_lock(int, int): "epoch order of a search"


@contextmanager
def _epoch_order_lock(search_id: int):
    """Hold the search's epoch lock from before the transaction until after its event is sent.

    The row lock alone orders commits; holding this one across the publish as
    well orders the events, so every page receives a search's epochs in
    sequence order whichever workers write them. Outside an outer transaction
    only: inside one, the event waits for that transaction anyway.
    """
    if connection.in_atomic_block:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [EPOCH_LOCK_NAMESPACE, search_id])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [EPOCH_LOCK_NAMESPACE, search_id])
        except (OperationalError, InterfaceError):
            pass  # the connection is gone, and a session's advisory locks go with it


def epoch_record(candidate: Candidate, *, epoch: int, train_loss: float, train_accuracy: float,
                 val_loss: float, val_accuracy: float, seconds: float) -> bool:
    """Commit one finished epoch, then tell the pages. Returns False when training should stop
    (the search was cancelled, or the candidate is no longer this worker's)."""
    with _epoch_order_lock(candidate.search_id), transaction.atomic():
        if EpochMetric.objects.filter(candidate_id=candidate.id, epoch=epoch).exists():
            # A retry after a commit whose answer was lost: the epoch is saved already.
            return not Search.objects.filter(id=candidate.search_id, state=Search.State.CANCELLED).exists()
        still_mine = Candidate.objects.filter(
            id=candidate.id, state=Candidate.State.RUNNING, worker=candidate.worker)
        best = val_accuracy if candidate.best_val_accuracy is None else max(candidate.best_val_accuracy, val_accuracy)
        if not still_mine.update(epochs_done=epoch, best_val_accuracy=best,
                                 final_val_accuracy=val_accuracy, heartbeat_at=timezone.now()):
            return False
        seq, search_state = _next_seq(candidate.search_id)
        metric = EpochMetric.objects.create(
            candidate=candidate, search_id=candidate.search_id, epoch=epoch, seq=seq,
            train_loss=train_loss, train_accuracy=train_accuracy,
            val_loss=val_loss, val_accuracy=val_accuracy, seconds=seconds)
        candidate.epochs_done, candidate.best_val_accuracy, candidate.final_val_accuracy = epoch, best, val_accuracy
        events.publish_on_commit(candidate.search_id, events.epoch_event(metric))
    return search_state != Search.State.CANCELLED


def _candidate_end(candidate: Candidate, state: str, **fields) -> bool:
    with transaction.atomic():
        ended = Candidate.objects.filter(
            id=candidate.id, state=Candidate.State.RUNNING, worker=candidate.worker,
        ).update(state=state, finished_at=timezone.now(), **fields)
        if ended:
            candidate.refresh_from_db()
            events.publish_on_commit(candidate.search_id, events.candidate_event(candidate))
            if state == Candidate.State.FINISHED:
                _update_pareto_front(candidate.search)
            _enqueue_advance(candidate.search_id)
    return bool(ended)


def candidate_metrics(c) -> dict:
    """The metrics objectives and strategies may name, from a candidate row or values() dict."""
    get = c.get if isinstance(c, dict) else lambda k: getattr(c, k)
    return {"val_accuracy": get("best_val_accuracy"), "final_val_accuracy": get("final_val_accuracy"),
            "params": get("param_count"), "flops": get("flops"), "latency_ms": get("latency_ms")}


def _update_pareto_front(search: Search) -> None:
    """Mark the finished candidates on the front of a multi-objective search."""
    if len(search.objectives) < 2:
        return
    objectives = pareto.parse_objectives(search.objectives)
    rows = list(search.candidates.filter(state=Candidate.State.FINISHED).values(
        "id", "best_val_accuracy", "final_val_accuracy", "param_count", "flops", "latency_ms", "on_pareto_front"))
    usable = [r for r in rows if pareto.has_objectives(candidate_metrics(r), objectives)]
    points = [pareto.utilities(candidate_metrics(r), objectives) for r in usable]
    front = {usable[i]["id"] for i in pareto.pareto_front(points)}
    changed = [r["id"] for r in rows if (r["id"] in front) != r["on_pareto_front"]]
    if changed:
        Candidate.objects.filter(id__in=[i for i in changed if i in front]).update(on_pareto_front=True)
        Candidate.objects.filter(id__in=[i for i in changed if i not in front]).update(on_pareto_front=False)
        events.publish_on_commit(search.id, {"type": "pareto", "front": sorted(front)})


def candidate_finish(candidate: Candidate, *, test_accuracy: float, test_macro_recall: float,
                     test_macro_f1: float, confusion_matrix: list, checkpoint_path: str,
                     checkpoint_size: int, checkpoint_sha256: str) -> bool:
    """Record the test metrics and checkpoint of a trained candidate and free its slot."""
    return _candidate_end(
        candidate, Candidate.State.FINISHED, test_accuracy=test_accuracy,
        test_macro_recall=test_macro_recall, test_macro_f1=test_macro_f1,
        confusion_matrix=confusion_matrix, checkpoint_path=checkpoint_path,
        checkpoint_size=checkpoint_size, checkpoint_sha256=checkpoint_sha256)


def candidate_fail(candidate: Candidate, *, error: str) -> bool:
    """Mark a candidate failed with its traceback; the search goes on without it."""
    return _candidate_end(candidate, Candidate.State.FAILED, error=error)


def candidate_stop(candidate: Candidate, *, reason: str = "") -> bool:
    """End a running candidate that was told to stop (its search was cancelled)."""
    return _candidate_end(candidate, Candidate.State.CANCELLED, stop_reason=reason)


def candidate_note(candidate: Candidate, *, key: str, value, event: dict | None = None) -> None:
    """Keep a piece of a running candidate's progress (e.g. DARTS edge weights) and stream it."""
    with transaction.atomic():
        row = Candidate.objects.select_for_update().get(id=candidate.id)
        row.extra = {**row.extra, key: value}
        row.save(update_fields=["extra"])
        candidate.extra = row.extra
        if event is not None:
            events.publish_on_commit(candidate.search_id, event)


def oneshot_finish(candidate: Candidate, *, proposals: list[dict], extra: dict) -> bool:
    """End a one-shot job with the architectures it proposes for retraining."""
    space = get_space(candidate.search.space, candidate.search.space_settings)
    proposals = [space.validate(arch) for arch in proposals]
    return _candidate_end(candidate, Candidate.State.FINISHED,
                          extra={**candidate.extra, **extra, "proposals": proposals})


def candidate_prune(candidate: Candidate, *, reason: str) -> bool:
    """End a candidate an early-stopping rule judged hopeless; the reason says why."""
    return _candidate_end(candidate, Candidate.State.PRUNED, stop_reason=reason[:500])


def candidate_curves(candidate: Candidate, *, up_to_epoch: int) -> tuple[list[float], list[list[float]]]:
    """The candidate's validation curve and its peers' curves up to ``up_to_epoch``
    (what an early-stopping rule decides on)."""
    rows = (EpochMetric.objects.filter(search_id=candidate.search_id, epoch__lte=up_to_epoch)
            .order_by("candidate_id", "epoch").values_list("candidate_id", "val_accuracy"))
    curves: dict[int, list[float]] = {}
    for cid, value in rows:
        curves.setdefault(cid, []).append(value)
    own = curves.pop(candidate.id, [])
    return own, list(curves.values())


# --- workers and their heartbeats ---------------------------------------------

def worker_heartbeat(*, name: str, host: str, device: str, candidate_id: int | None,
                     samples_per_second: float | None = None, epochs_delta: int = 0) -> None:
    """Record that a worker is alive, and keep its running candidate's heartbeat fresh."""
    from .models import Worker

    now = timezone.now()
    with transaction.atomic():
        Worker.objects.update_or_create(name=name, defaults={
            "host": host, "device": device, "candidate_id": candidate_id, "last_heartbeat": now,
            **({"samples_per_second": samples_per_second} if samples_per_second is not None else {}),
        })
        if epochs_delta:
            Worker.objects.filter(name=name).update(epochs_done=F("epochs_done") + epochs_delta)
        if candidate_id is not None:
            Candidate.objects.filter(id=candidate_id, state=Candidate.State.RUNNING,
                                     worker=name).update(heartbeat_at=now)


def candidates_requeue_stale(*, timeout_seconds: float) -> list[int]:
    """Hand back to the queue every running candidate whose worker went silent.

    Its epochs so far are dropped (it trains again from the start), so no
    epoch is doubled; the conditional update means a worker that was only
    slow, not dead, loses the candidate and stops at its next epoch.
    """
    cutoff = timezone.now() - timezone.timedelta(seconds=timeout_seconds)
    requeued = []
    for candidate_id in Candidate.objects.filter(
            state=Candidate.State.RUNNING, heartbeat_at__lt=cutoff).values_list("id", flat=True):
        with transaction.atomic():
            taken_back = Candidate.objects.filter(
                id=candidate_id, state=Candidate.State.RUNNING, heartbeat_at__lt=cutoff,
            ).update(state=Candidate.State.QUEUED, worker="", device="", epochs_done=0,
                     best_val_accuracy=None, final_val_accuracy=None, started_at=None)
            if not taken_back:
                continue
            EpochMetric.objects.filter(candidate_id=candidate_id).delete()
            candidate = Candidate.objects.get(id=candidate_id)
            event = events.candidate_event(candidate)
            event["reset"] = True  # pages drop the curve they drew for it
            events.publish_on_commit(candidate.search_id, event)
            _enqueue_train(candidate_id)
            requeued.append(candidate_id)
    return requeued


def queue_repair(*, timeout_seconds: float) -> dict:
    """Send again the work whose message may be lost (Redis keeps nothing across a restart).

    Postgres says what should be happening: every active search gets another
    advance (harmless: it only fills free slots), and every candidate queued
    for longer than the timeout gets its training task again (harmless: the
    claim lets only one delivery train it).
    """
    cutoff = timezone.now() - timezone.timedelta(seconds=timeout_seconds)
    resent = []
    with transaction.atomic():
        stale = list(Candidate.objects.select_for_update(skip_locked=True).filter(
            state=Candidate.State.QUEUED, enqueued_at__lt=cutoff,
            search__state__in=Search.ACTIVE_STATES + (Search.State.PAUSED,)).values_list("id", flat=True))
        for candidate_id in stale:
            _enqueue_train(candidate_id)
            resent.append(candidate_id)
        searches = list(Search.objects.filter(state__in=Search.ACTIVE_STATES).values_list("id", flat=True))
        for search_id in searches:
            _enqueue_advance(search_id)
    return {"resent": resent, "advanced": searches}


# --- dashboard controls: pause, resume, delete ----------------------------------

def search_pause(search: Search) -> Search:
    """Stop proposing new candidates; those already queued or running train to the end.

    ``search_advance`` does nothing unless the search is queued or running, so a paused
    search only drains. Other states are left as they are.
    """
    with transaction.atomic():
        search = Search.objects.select_for_update().get(pk=search.pk)
        if search.state not in Search.ACTIVE_STATES:
            return search
        search.state = Search.State.PAUSED
        search.save(update_fields=["state"])
        _publish_search(search)
    return search


def search_resume(search: Search) -> Search:
    """Carry on with a paused search: back to running (queued if it never started), and the
    controller fills the free slots once this commits."""
    with transaction.atomic():
        search = Search.objects.select_for_update().get(pk=search.pk)
        if search.state != Search.State.PAUSED:
            return search
        search.state = Search.State.RUNNING if search.started_at else Search.State.QUEUED
        search.save(update_fields=["state"])
        _enqueue_advance(search.id)
        _publish_search(search)
    return search


def _remove_checkpoints(paths: list[str], folder) -> None:
    import shutil
    from pathlib import Path

    for path in paths:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError:
            pass
    if folder is not None and Path(folder).is_dir():
        shutil.rmtree(folder, ignore_errors=True)


def search_delete(search: Search) -> int:
    """Delete a search with its candidates, epochs and checkpoint files; returns the number
    of checkpoint files it removes. Open pages get a ``deleted`` search event. The files go
    only after the rows are gone for good (on commit); a running candidate finds itself
    gone at its next epoch and stops."""
    from pathlib import Path

    from django.conf import settings

    with transaction.atomic():
        search = Search.objects.select_for_update().get(pk=search.pk)
        search_id = search.id
        paths = list(search.candidates.exclude(checkpoint_path="").values_list("checkpoint_path", flat=True))
        folder = Path(settings.CHECKPOINT_DIR) / f"search-{search_id}"
        search.state = "deleted"  # only in the event: the row is about to go
        _publish_search(search)
        # Epochs and candidates are most of the rows: one statement each, not Django's
        # row-by-row collector (seconds at 50,000 candidates). Whatever else points at a
        # candidate (few rows) goes through the ORM first, with its own on_delete rule.
        from django.db import models

        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {EpochMetric._meta.db_table} WHERE search_id = %s", [search_id])
            raw = True
            relations = [f for f in Candidate._meta.get_fields(include_hidden=True) if f.auto_created and not f.concrete]
            for rel in relations:  # hidden ones too (related_name="+", e.g. Worker.candidate)
                if rel.related_model is EpochMetric:
                    continue
                related = rel.related_model._base_manager.filter(**{f"{rel.field.name}__search_id": search_id})
                if rel.on_delete is models.CASCADE:
                    related.delete()
                elif rel.on_delete is models.SET_NULL:
                    related.update(**{rel.field.name: None})
                elif related.exists():
                    raw = False  # PROTECT, SET_DEFAULT...: let Django apply the rule
            if raw:
                cursor.execute(f"DELETE FROM {Candidate._meta.db_table} WHERE search_id = %s", [search_id])
        Candidate.objects.filter(search_id=search_id).only("id").delete()
        Search.objects.filter(pk=search_id).delete()
        transaction.on_commit(lambda: _remove_checkpoints(paths, folder))
    return len(paths)


# --- deliverables: model bundles, search clones and API tokens ------------------

BUNDLE_TASK = "workers.tasks.build_bundle"
# A bundle build that has not reported for this long is presumed lost (its worker died,
# or its message was): a new request starts it again.
BUNDLE_STALE_SECONDS = 15 * 60
API_TOKEN_PREFIX = "nas_"
MAX_ACTIVE_API_TOKENS = 50
_BUNDLE_RESULT_FIELDS = ("path", "size", "sha256", "standalone_ok", "standalone_error", "onnx_ok",
                         "onnx_error", "onnx_max_diff", "float_size", "float_accuracy", "int8_size",
                         "int8_accuracy", "int8_error", "details")


def _enqueue_bundle(bundle_id: int, attempt: int) -> None:
    transaction.on_commit(lambda: celery_app.send_task(BUNDLE_TASK, args=[bundle_id, attempt], queue="control"))


def _bundle_cleared() -> dict:
    """Result fields reset for a new build. ``path`` keeps the previous file (never served
    unless ready and current) so that ``bundle_ready`` can remove it once replaced."""
    cleared = {name: None for name in _BUNDLE_RESULT_FIELDS if name != "path"}
    cleared.update(sha256="", standalone_error="", onnx_error="", int8_error="", details={})
    return cleared


def bundle_request(candidate: Candidate, *, rebuild: bool = False):
    """The model bundle of a finished candidate: the cached one while it is current and its
    file is there, the build in progress, or a new build (queued once this commits).

    ``rebuild`` builds again even a current, ready bundle (never a second build at once).
    """
    from datetime import timedelta
    from pathlib import Path

    from .models import Bundle

    now = timezone.now()
    with transaction.atomic():
        candidate = Candidate.objects.select_related("search").select_for_update(of=("self",)).get(pk=candidate.pk)
        if candidate.state != Candidate.State.FINISHED or not candidate.checkpoint_path \
                or not candidate.checkpoint_sha256:
            raise ValidationError(f"Only a finished candidate with a checkpoint has a model bundle; "
                                  f"candidate {candidate.index} is {candidate.state}.")
        bundle, created = Bundle.objects.get_or_create(
            candidate=candidate, defaults={"checkpoint_sha256": candidate.checkpoint_sha256,
                                           "message": "Waiting for a worker"})
        if not created:
            current = bundle.checkpoint_sha256 == candidate.checkpoint_sha256
            alive = bundle.updated_at >= now - timedelta(seconds=BUNDLE_STALE_SECONDS)
            if current and bundle.state in Bundle.BUSY_STATES and alive:
                return bundle
            if current and bundle.state == Bundle.State.READY and not rebuild and Path(bundle.path).is_file():
                return bundle
            Bundle.objects.filter(pk=bundle.pk).update(
                state=Bundle.State.QUEUED, attempt=F("attempt") + 1, progress=0,
                message="Waiting for a worker", error="", worker="", checkpoint_sha256=candidate.checkpoint_sha256,
                started_at=None, finished_at=None, updated_at=now, **_bundle_cleared())
            bundle.refresh_from_db()
        _enqueue_bundle(bundle.id, bundle.attempt)
    return bundle


def bundle_start(bundle_id: int, attempt: int, *, worker: str):
    """Claim a queued build (or one presumed lost) for this worker; None if it is not this
    attempt's to run: delivered twice, superseded by a newer request, or deleted."""
    from datetime import timedelta

    from django.db.models import Q

    from .models import Bundle

    now = timezone.now()
    claimable = Q(state=Bundle.State.QUEUED) | Q(
        state=Bundle.State.RUNNING, updated_at__lt=now - timedelta(seconds=BUNDLE_STALE_SECONDS))
    claimed = Bundle.objects.filter(claimable, pk=bundle_id, attempt=attempt).update(
        state=Bundle.State.RUNNING, worker=worker[:200], started_at=now, updated_at=now, progress=1,
        message=f"Started on {worker}"[:300])
    if not claimed:
        return None
    return Bundle.objects.select_related("candidate__search").get(pk=bundle_id)


def _bundle_running(bundle):
    from .models import Bundle

    return Bundle.objects.filter(pk=bundle.pk, attempt=bundle.attempt, state=Bundle.State.RUNNING)


def bundle_progress(bundle, progress: int, message: str) -> bool:
    """Record how far a build got (0..100) and what it is doing; False once it was superseded."""
    progress = max(0, min(99, int(progress)))
    updated = _bundle_running(bundle).update(progress=progress, message=message[:300], updated_at=timezone.now())
    bundle.progress, bundle.message = progress, message[:300]
    return bool(updated)


def bundle_ready(bundle, *, result) -> bool:
    """Record a finished build (a ``workers.bundles.BundleResult``). A superseded attempt's
    file is removed and False returned; a replaced older file is removed after commit."""
    from pathlib import Path

    from .models import Bundle

    fields = {name: getattr(result, name) for name in _BUNDLE_RESULT_FIELDS}
    fields["path"] = str(result.path)
    with transaction.atomic():
        previous = Bundle.objects.filter(pk=bundle.pk).values_list("path", flat=True).first()
        updated = _bundle_running(bundle).update(
            state=Bundle.State.READY, progress=100, message="Ready", error="", finished_at=timezone.now(),
            updated_at=timezone.now(), **fields)
        if updated and previous and previous != fields["path"]:
            transaction.on_commit(lambda: Path(previous).unlink(missing_ok=True))
    if not updated:
        Path(fields["path"]).unlink(missing_ok=True)
    return bool(updated)


def bundle_fail(bundle, *, error: str) -> bool:
    """End a build that could not finish, with the reason."""
    from .models import Bundle

    return bool(_bundle_running(bundle).update(
        state=Bundle.State.FAILED, message="Failed", error=error, finished_at=timezone.now(),
        updated_at=timezone.now()))


def search_clone(search: Search, *, name: str | None = None) -> Search:
    """A new search of the same owner with every setting of ``search`` (seed included),
    checked again by ``search_create``."""
    import inspect

    params = inspect.signature(search_create).parameters
    kwargs = {p: getattr(search, p) for p in params if p not in ("owner", "name") and hasattr(search, p)}
    name = (name if name is not None else f"{search.name} (copy)")
    return search_create(owner=search.owner, name=str(name)[:200], **kwargs)


def api_token_digest(key: str) -> str:
    """What is stored of a token key: its SHA-256 (keys are 256 random bits, so no slow hash)."""
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()


def api_token_create(*, owner, name: str):
    """A new personal API token; returns (token, key). The key is shown once and never stored."""
    from .models import ApiToken

    name = str(name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the token a name, e.g. the machine that will use it."})
    if len(name) > 100:
        raise ValidationError({"name": "A token name has at most 100 characters."})
    if ApiToken.objects.filter(owner=owner, revoked_at__isnull=True).count() >= MAX_ACTIVE_API_TOKENS:
        raise ValidationError({"name": f"You have {MAX_ACTIVE_API_TOKENS} active tokens; revoke one first."})
    key = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(owner=owner, name=name, key_hash=api_token_digest(key),
                                    prefix=key[:len(API_TOKEN_PREFIX) + 6])
    return token, key


def api_token_revoke(token):
    """Revoke a token at once: the next request that presents it is refused."""
    from .models import ApiToken

    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db()
    return token


def api_token_touch(token) -> None:
    """Note that a token was used, at most once a minute (not a write per request)."""
    from datetime import timedelta

    from django.db.models import Q

    from .models import ApiToken

    now = timezone.now()
    ApiToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(seconds=60)),
                            pk=token.pk).update(last_used_at=now)


# --- data sets users upload ------------------------------------------------------

def _uploads_root():
    from pathlib import Path

    from django.conf import settings

    return Path(settings.DATA_DIR) / "uploads"


def dataset_upload(*, owner, name: str, upload):
    """Check an uploaded data set (an image-folder ``.zip`` or a ``.csv``/``.jsonl`` text table)
    and keep it for ``owner`` under ``DATA_DIR/uploads/<owner id>/<name>/``.

    Returns the ready ``Dataset``. A refusal raises ValidationError with the reason; when
    the file itself is at fault the attempt is also kept as a failed row (reason, no files),
    so the owner's list says what went wrong. Nothing is ever left on disk by a refusal.
    """
    import shutil

    from django.conf import settings

    from . import uploads
    from .models import Dataset

    name = str(name or "").strip()
    if not uploads.NAME.match(name):
        raise ValidationError({"name": "Name the data set with up to 64 letters, digits, '-', '_' or '.', "
                                       "starting with a letter or digit."})
    if Dataset.objects.filter(owner=owner, name=name, state=Dataset.State.READY).exists():
        raise ValidationError({"name": f"You already have a data set named {name!r}; delete it or choose "
                                       f"another name."})
    filename = str(getattr(upload, "name", "") or "")
    max_bytes = int(settings.UPLOAD_MAX_BYTES)

    def refuse(message: str):
        kind = Dataset.Kind.TEXT if filename.lower().endswith(uploads.TEXT_SUFFIXES) else Dataset.Kind.IMAGE_FOLDER
        Dataset.objects.create(owner=owner, name=name, kind=kind, state=Dataset.State.FAILED,
                               message=message[:2000], size=int(getattr(upload, "size", 0) or 0))
        raise ValidationError({"file": message})

    if upload is None:
        raise ValidationError({"file": "Choose a file to upload."})
    if (getattr(upload, "size", 0) or 0) > max_bytes:
        refuse(f"The file is {upload.size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB.")
    dest = _uploads_root() / str(int(owner.pk)) / name
    try:
        checked = uploads.store_upload(upload, filename, dest, max_bytes=max_bytes,
                                       max_files=int(settings.UPLOAD_MAX_FILES),
                                       max_pixels=int(settings.UPLOAD_MAX_IMAGE_PIXELS))
    except uploads.UploadError as exc:
        refuse(str(exc))
    try:
        with transaction.atomic():
            return Dataset.objects.create(
                owner=owner, name=name, kind=checked.kind, path=str(dest), size=checked.size,
                num_examples=checked.num_examples, num_classes=len(checked.class_names),
                class_names=list(checked.class_names), state=Dataset.State.READY)
    except IntegrityError:
        shutil.rmtree(dest, ignore_errors=True)  # the same name won a race meanwhile
        raise ValidationError({"name": f"You already have a data set named {name!r}."}) from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def dataset_delete(dataset) -> None:
    """Delete an uploaded data set and, once that commits, its files. Refused while a search
    that has not ended still trains on it."""
    import shutil
    from pathlib import Path

    from .models import Dataset

    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
        busy = Search.objects.filter(dataset=dataset.catalog_name,
                                     state__in=Search.ACTIVE_STATES + (Search.State.PAUSED,))
        if busy.exists():
            raise ValidationError(f"The search {busy.first().name!r} still uses this data set; cancel it or "
                                  f"wait for it to end first.")
        path = Path(dataset.path) if dataset.path else None
        dataset.delete()
        root = _uploads_root().resolve()
        if path is not None and root in path.resolve().parents:  # never remove anything outside the uploads
            transaction.on_commit(lambda: shutil.rmtree(path, ignore_errors=True))
