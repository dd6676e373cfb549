"""Reads that pages, downloads and the websocket need; nothing here writes."""
from __future__ import annotations

from django.db.models import Count, Max, Q
from django.http import Http404

from . import events
from .models import Candidate, EpochMetric, Search
from .services import state_counts

ENDED = [s.value for s in Candidate.ENDED_STATES]


def search_list_for(user):
    """The user's searches with their progress and best accuracy, newest first."""
    return (Search.objects.filter(owner=user)
            .annotate(done=Count("candidates", filter=Q(candidates__state__in=ENDED)),
                      best_accuracy=Max("candidates__best_val_accuracy"))
            .order_by("-created_at", "-id"))


def search_get_for(user, search_id: int) -> Search:
    """The user's own search, or 404 (another user's search is as absent as a missing one)."""
    search = Search.objects.filter(owner=user, pk=search_id).first()
    if search is None:
        raise Http404("No such search.")
    return search


def search_owned_by(user, search_id: int) -> bool:
    return Search.objects.filter(owner=user, pk=search_id).exists()


def candidate_get_for(user, search_id: int, candidate_id: int) -> Candidate:
    candidate = (Candidate.objects.select_related("search")
                 .filter(search__owner=user, search_id=search_id, pk=candidate_id).first())
    if candidate is None:
        raise Http404("No such candidate.")
    return candidate


def best_candidate(search: Search) -> Candidate | None:
    return (search.candidates.filter(state=Candidate.State.FINISHED)
            .exclude(checkpoint_path="")
            .order_by("-best_val_accuracy", "index").first())


def epochs_after(search_id: int, after_seq: int) -> list[dict]:
    rows = EpochMetric.objects.filter(search_id=search_id, seq__gt=after_seq).order_by("seq")
    return [events.epoch_event(m) for m in rows]


def search_snapshot(search_id: int, after_seq: int = 0) -> dict:
    """What a page needs to draw the search from Postgres alone: state, every candidate,
    and every epoch after ``after_seq`` (all of them on a first connect)."""
    search = Search.objects.get(pk=search_id)
    candidates = [events.candidate_data(c) for c in search.candidates.order_by("index")]
    return {
        "type": "snapshot",
        "search": events.search_data(search, state_counts(search_id)),
        "candidates": candidates,
        "epochs": epochs_after(search_id, after_seq),
    }
