"""Every state change of the domain goes through one function here.

Views, consumers and Celery tasks call these and nothing else that writes.
Work for the workers is enqueued only after the transaction that made it
commits, so a worker never sees a row a rollback took back.
"""
from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from nasweb.celery import app as celery_app

from . import events
from .datasets_catalog import DATASETS
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
    transaction.on_commit(lambda: celery_app.send_task(TRAIN_TASK, args=[candidate_id], queue="gpu"))


def _task_of(space) -> str:
    return {"image": "image-classification", "text": "text-classification"}[getattr(space, "modality", "image")]


def state_counts(search_id: int) -> dict:
    rows = Candidate.objects.filter(search_id=search_id).values("state").annotate(n=Count("id"))
    counts = {state: 0 for state in Candidate.State.values}
    counts.update({r["state"]: r["n"] for r in rows})
    return counts


def _publish_search(search: Search) -> None:
    events.publish_on_commit(search.id, events.search_event(search, state_counts(search.id)))


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
    if dataset not in DATASETS:
        errors["dataset"] = f"Unknown data set {dataset!r}."
    for field, value in (("max_candidates", max_candidates), ("epochs", epochs), ("parallel", parallel)):
        low, high = LIMITS[field]
        if not isinstance(value, int) or not low <= value <= high:
            errors[field] = f"Must be a whole number from {low} to {high}."
    try:
        space_obj = get_space(space, space_settings)
    except (ValueError, TypeError) as exc:
        errors["space"] = str(exc)
    try:
        get_strategy(strategy, strategy_settings)
    except (ValueError, TypeError) as exc:
        errors["strategy"] = str(exc)
    if "space" not in errors and dataset in DATASETS and DATASETS[dataset].task != _task_of(space_obj):
        errors["space"] = (f"The {space} space builds {getattr(space_obj, 'modality', 'image')} models; "
                           f"{DATASETS[dataset].label} needs a {DATASETS[dataset].task} space.")
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
            task=DATASETS[dataset].task,
        )
        _enqueue_advance(search.id)
    return search


def search_history(search: Search) -> list[Trial]:
    """Every candidate so far, in index order, as the strategy sees it."""
    spec = score_spec(search)
    trials = []
    for row in search.candidates.order_by("index").values(
            "arch", "state", "best_val_accuracy", "final_val_accuracy", "param_count", "flops", "latency_ms"):
        metrics = candidate_metrics(row)
        score = None
        if row["state"] == Candidate.State.FINISHED:
            try:
                score = pareto.score(metrics, spec)
            except (KeyError, TypeError, ValueError):
                score = None  # a metric the objective needs was not measured
        trials.append(Trial(arch=row["arch"], state=row["state"], score=score, metrics=metrics))
    return trials


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
        if free > 0:
            space = get_space(search.space, search.space_settings)
            strategy = _strategy_for(search)
            archs = strategy.ask(space, history, free, strategy_rng(search.seed, len(history)))
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
        _publish_search(search)
        return [c.id for c in created]


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
        candidate.param_count = None
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


def epoch_record(candidate: Candidate, *, epoch: int, train_loss: float, train_accuracy: float,
                 val_loss: float, val_accuracy: float, seconds: float) -> bool:
    """Commit one finished epoch, then tell the pages. Returns False when training should stop
    (the search was cancelled, or the candidate is no longer this worker's)."""
    with transaction.atomic():
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
