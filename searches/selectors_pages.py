"""Reads for the pages' live parts that issue 18 added: the live worker count, the new-search
form's run-time estimate and the candidates' stored logs. Re-exported by searches.selectors."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import Candidate, CandidateLog, Search, Worker


# --- workers -----------------------------------------------------------------------

def live_worker_count(*, now=None) -> int:
    """Training workers heard from within the heartbeat timeout: how many candidates can train at once."""
    now = now or timezone.now()
    timeout = float(getattr(settings, "HEARTBEAT_TIMEOUT_SECONDS", 60))
    return Worker.objects.filter(last_heartbeat__gte=now - timedelta(seconds=timeout)).count()


# --- the new-search form -----------------------------------------------------------

EPOCH_SAMPLE = 2000


def epoch_seconds_by_dataset(user) -> dict[str, float]:
    """Median seconds of one epoch per data set, over the user's latest epochs: the base of the
    form's run-time estimate."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.dataset, percentile_cont(0.5) WITHIN GROUP (ORDER BY e.seconds) FROM "
            "(SELECT search_id, seconds FROM searches_epochmetric WHERE search_id IN "
            " (SELECT id FROM searches_search WHERE owner_id = %s) ORDER BY id DESC LIMIT %s) e "
            "JOIN searches_search s ON s.id = e.search_id GROUP BY s.dataset", [user.id, EPOCH_SAMPLE])
        return {name: float(seconds) for name, seconds in cursor.fetchall()}


def search_form_info(user) -> dict:
    """What the form's live estimate needs: each space's size, epoch times, live workers."""
    from .nas import SPACES, get_space

    return {
        "space_sizes": {name: get_space(name).size() for name in SPACES},
        "epoch_seconds": epoch_seconds_by_dataset(user),
        "workers_online": live_worker_count(),
    }


# --- candidate logs ------------------------------------------------------------------

LOG_PAGE_LINES = 2000


def candidate_log_lines(candidate_id: int, after_line: int = 0, limit: int = LOG_PAGE_LINES) -> list[list]:
    """[[number, text], ...] of the candidate's stored log after line ``after_line``: the last
    ``limit`` of them (a page follows the tail, like ``tail -f``)."""
    chunks = (CandidateLog.objects.filter(candidate_id=candidate_id)
              .filter(first_line__gt=max(0, after_line) - 200)  # chunks hold at most a few hundred lines
              .order_by("first_line").values_list("first_line", "text"))
    lines = []
    for first, text in chunks:
        lines.extend([first + i, line] for i, line in enumerate(text.split("\n")) if first + i > after_line)
    return lines[-limit:]


def running_candidates(search: Search, limit: int = 50) -> list[Candidate]:
    return list(search.candidates.filter(state=Candidate.State.RUNNING).order_by("index")
                .only("id", "index", "worker")[:limit])


def candidate_in_search(search_id: int, candidate_id: int) -> bool:
    return Candidate.objects.filter(search_id=search_id, pk=candidate_id).exists()


def candidate_log_length(candidate_id: int) -> int:
    last = (CandidateLog.objects.filter(candidate_id=candidate_id).order_by("-first_line")
            .values_list("first_line", "line_count").first())
    return last[0] + last[1] - 1 if last else 0
