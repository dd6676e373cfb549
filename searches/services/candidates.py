"""A candidate's training seen from the worker: claim, measure, end (finish, fail, stop, prune)."""
from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import events
from ..models import Candidate, Search
from ..nas import get_space, pareto
from .enqueue import _enqueue_advance


# --- candidates -------------------------------------------------------------

def candidate_claim(candidate_id: int, *, worker: str, device: str) -> Candidate | None:
    """Take a queued candidate for training; None if another worker has it or it was cancelled.

    Every claim bumps ``attempt``: the returned row carries this run's number, and
    every later write of the run (epochs, notes, its end) applies only while it is
    still the candidate's current attempt. A queued candidate whose search ended is
    cancelled here rather than left queued for good."""
    now = timezone.now()
    with transaction.atomic():
        claimed = Candidate.objects.filter(
            id=candidate_id, state=Candidate.State.QUEUED,
            search__state__in=Search.ACTIVE_STATES + (Search.State.PAUSED,),
        ).update(state=Candidate.State.RUNNING, worker=worker, device=device, attempt=F("attempt") + 1,
                 heartbeat_at=now, started_at=now)
        if not claimed:
            candidates_cancel_orphans(Candidate.objects.filter(id=candidate_id))
            return None
        candidate = Candidate.objects.select_related("search").get(id=candidate_id)
        events.publish_on_commit(candidate.search_id, events.candidate_event(candidate))
    return candidate


def candidates_cancel_orphans(queryset) -> list[int]:
    """Cancel the queued candidates in ``queryset`` whose search has ended (cancelled,
    failed, finished): no claim will ever take them, so they must not wait for one."""
    with transaction.atomic():
        orphans = list(queryset.select_for_update(of=("self",)).filter(
            state=Candidate.State.QUEUED, search__state__in=Search.ENDED_STATES))
        now = timezone.now()
        for candidate in orphans:
            candidate.state, candidate.finished_at = Candidate.State.CANCELLED, now
            candidate.stop_reason = f"Cancelled: its search is {candidate.search.state}."
            candidate.save(update_fields=["state", "finished_at", "stop_reason"])
            events.publish_on_commit(candidate.search_id, events.candidate_event(candidate))
    return [c.id for c in orphans]


def _this_attempt(candidate: Candidate):
    """The candidate's row while ``candidate`` (as claimed) is still its running attempt."""
    return Candidate.objects.filter(id=candidate.id, state=Candidate.State.RUNNING, worker=candidate.worker,
                                    attempt=candidate.attempt)


def candidate_set_measurements(candidate: Candidate, *, param_count: int, flops: int | None = None,
                               latency_ms: float | None = None, latency: dict | None = None) -> None:
    """Size and speed of the built network, measured on the worker's own device. ``latency_ms``
    is the median the ranking and the Pareto front use; ``latency`` (its spread) goes in extra."""
    fields = {"param_count": param_count, "flops": flops, "latency_ms": latency_ms}
    if latency is not None:
        fields["extra"] = {**(candidate.extra or {}), "latency": latency}
    _this_attempt(candidate).update(**fields)
    for name, value in fields.items():
        setattr(candidate, name, value)


def _candidate_end(candidate: Candidate, state: str, **fields) -> bool:
    with transaction.atomic():
        ended = _this_attempt(candidate).update(state=state, finished_at=timezone.now(), **fields)
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
        row = _this_attempt(candidate).select_for_update().first()
        if row is None:
            return  # no longer this run's candidate
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
