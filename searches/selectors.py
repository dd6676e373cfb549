"""Reads that pages, downloads and the websocket need; nothing here writes."""
from __future__ import annotations

import json

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Max, Q
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from . import events
from .datasets_catalog import available_datasets
from .models import Candidate, EpochMetric, Search, Worker
from .nas import pareto
from .selectors_leaderboard import (DEFAULT_SORT, HEAVY_FIELDS, LEADERBOARD_PAGE_SIZE, MAX_PAGE_SIZE,  # noqa: F401
                                    SORTS, BoardPaginator, LeaderboardForm, LeaderboardQuery, _light, leaderboard_page,
                                    leaderboard_queryset, resolve_uses, space_of, uses_options)
from .selectors_deliverables import (api_token_digest, api_token_get_for, api_token_lookup, api_tokens_for,  # noqa: F401
                                     bundle_of, candidate_rows_in_batches, dataset_get_for, dataset_searches,
                                     datasets_for, epoch_rows_in_batches, ready_bundle_path, ready_upload,
                                     ready_uploads)
from .selectors_pages import (EPOCH_SAMPLE, LOG_PAGE_LINES, candidate_in_search, candidate_log_length,  # noqa: F401
                              candidate_log_lines, epoch_seconds_by_dataset, live_worker_count, running_candidates,
                              search_form_info)

ENDED = [s.value for s in Candidate.ENDED_STATES]


def state_counts(search_id: int) -> dict:
    """How many of the search's candidates are in each state (every state present)."""
    rows = Candidate.objects.filter(search_id=search_id).values("state").annotate(n=Count("id"))
    counts = {state: 0 for state in Candidate.State.values}
    counts.update({r["state"]: r["n"] for r in rows})
    return counts


def search_list_for(user):
    """The user's searches with their progress and best accuracy, newest first."""
    return (Search.objects.filter(owner=user)
            .annotate(done=Count("candidates", filter=Q(candidates__state__in=ENDED)),
                      # Trained candidates only: a one-shot job's supernet accuracy is not a result.
                      best_accuracy=Max("candidates__best_val_accuracy", filter=Q(candidates__kind="train")))
            .order_by("-created_at", "-id"))


def search_list_rows(user) -> list[dict]:
    """The search list as plain rows (for the page and its websocket): what, how far, how good."""
    rows = []
    for s in search_list_for(user):
        rows.append({
            "id": s.id, "name": s.name, "url": s.url, "dataset": s.dataset, "space": s.space,
            "strategy": s.strategy, "state": s.state, "done": s.done, "total": s.max_candidates,
            "best_accuracy": s.best_accuracy, "created_at": s.created_at.isoformat(),
            "started_at": s.started_at.isoformat() if s.started_at else None,
            "finished_at": s.finished_at.isoformat() if s.finished_at else None,
        })
    return rows


def search_get_for(user, search_id: int) -> Search:
    """The user's own search, or 404 (another user's search is as absent as a missing one)."""
    search = Search.objects.filter(owner=user, pk=search_id).first()
    if search is None:
        raise Http404("No such search.")
    return search


def search_by_idempotency_key(user, key: str) -> Search | None:
    """The search the user's create with this Idempotency-Key made, if any."""
    return Search.objects.filter(owner=user, idempotency_key=key).first() if key else None


def search_owned_by(user, search_id: int) -> bool:
    return Search.objects.filter(owner=user, pk=search_id).exists()


def candidate_get_for(user, search_id: int, candidate_id: int) -> Candidate:
    candidate = (Candidate.objects.select_related("search")
                 .filter(search__owner=user, search_id=search_id, pk=candidate_id).first())
    if candidate is None:
        raise Http404("No such candidate.")
    return candidate


def search_devices(search: Search) -> list[str]:
    """The devices its candidates trained on ("cpu", "cuda:0 (NVIDIA H200)", ...), for naming the hours."""
    return sorted(d for d in search.candidates.exclude(device="").order_by().values_list("device", flat=True).distinct())


def best_candidate(search: Search) -> Candidate | None:
    return (search.candidates.filter(state=Candidate.State.FINISHED)
            .exclude(checkpoint_path="")
            .order_by("-best_val_accuracy", "index").first())


def epochs_after(search_id: int, after_seq: int) -> list[dict]:
    rows = EpochMetric.objects.filter(search_id=search_id, seq__gt=after_seq).order_by("seq")
    return [events.epoch_event(m) for m in rows]


def search_last_seq(search_id: int) -> int | None:
    return Search.objects.filter(pk=search_id).values_list("last_seq", flat=True).first()


def epochs_between(search_id: int, after_seq: int, before_seq: int) -> list[dict]:
    """The epoch events with ``after_seq < seq < before_seq``: what a gap in the stream lost."""
    rows = EpochMetric.objects.filter(search_id=search_id, seq__gt=after_seq, seq__lt=before_seq).order_by("seq")
    return [events.epoch_event(m) for m in rows]


def validation_after(search_id: int, after_seq: int) -> list[tuple[int, int, int, float]]:
    """(seq, candidate id, epoch, validation accuracy) of the search's epochs after ``after_seq``,
    in order: what early stopping adds to the curves it read before."""
    return list(EpochMetric.objects.filter(search_id=search_id, seq__gt=after_seq).order_by("seq")
                .values_list("seq", "candidate_id", "epoch", "val_accuracy"))


def search_snapshot(search_id: int, after_seq: int = 0, *, have=None, selected=(), query=None,
                    top_n: int | None = None) -> dict:
    """What a page needs to draw a search of any size from Postgres alone, bounded however
    many candidates it has: the state and counts, one leaderboard page, and the curves of
    the candidates the page draws (the top ``top_n``, the ones the user selected, the
    running ones).

    Resuming: ``after_seq`` is the last sequence number the page saw and ``have`` the
    candidates whose curves it holds complete. Those get only their epochs after
    ``after_seq``; every other drawn candidate gets its whole curve. With ``have=None``
    every drawn candidate counts as held (plain "everything after N"). The page drops the
    curves it holds of candidates no longer drawn, and drops points whose sequence number
    it has seen, so a reconnect leaves no gap and no duplicate point in what it draws.
    """
    search = Search.objects.get(pk=search_id)
    counts, stats = candidate_stats(search_id)
    query = query or LeaderboardQuery()
    top_n = TOP_CURVES if top_n is None else max(0, min(int(top_n), MAX_TOP_CURVES))
    board = leaderboard_page(search, query)
    top = top_candidate_ids(search_id, top_n)
    running = list(_light(Candidate.objects.filter(search_id=search_id, state=Candidate.State.RUNNING))
                   .order_by("index")[:MAX_RUNNING])
    selected = _own_candidate_ids(search_id, selected)
    drawn = list(dict.fromkeys(top + selected + [c.id for c in running]))

    known = {row["id"]: row for row in board["rows"]}
    known.update({c.id: events.candidate_data(c) for c in running})
    missing = [cid for cid in drawn if cid not in known]
    if missing:
        known.update({c.id: events.candidate_data(c)
                      for c in _light(Candidate.objects.filter(search_id=search_id, id__in=missing))})

    held = set(drawn) if have is None else set(drawn) & {int(h) for h in have}
    fresh = [cid for cid in drawn if cid not in held]
    wanted = Q(candidate_id__in=list(held), seq__gt=after_seq) | Q(candidate_id__in=fresh)
    epochs = ([events.epoch_event(m) for m in EpochMetric.objects.filter(search_id=search_id)
               .filter(wanted).order_by("seq")] if drawn else [])
    return {
        "type": "snapshot",
        "search": events.search_data(search, counts),
        "after": after_seq,
        "leaderboard": board,
        "candidates": list(known.values()),
        "top": top,
        "drawn": drawn,
        "epochs": epochs,
        "progress": progress_stats(search_id, stats),
    }


def candidate_snapshot(search_id: int, candidate_id: int, after_seq: int = 0) -> dict:
    """The candidate page's snapshot: the search's state, this candidate and its curve."""
    search = Search.objects.get(pk=search_id)
    candidate = _light(Candidate.objects.filter(search_id=search_id, id=candidate_id)).first()
    points = (EpochMetric.objects.filter(candidate_id=candidate_id, search_id=search_id, seq__gt=after_seq)
              .order_by("seq") if candidate else [])
    return {
        "type": "snapshot", "after": after_seq,
        "search": events.search_data(search, state_counts(search_id)),
        "candidates": [events.candidate_data(candidate)] if candidate else [],
        "drawn": [candidate.id] if candidate else [], "top": [],
        "epochs": [events.epoch_event(m) for m in points],
    }


# --- curves and statistics ---------------------------------------------------------

TOP_CURVES = 10
MAX_TOP_CURVES = 50
MAX_SELECTED = 50
MAX_RUNNING = 300


def leaderboard_page_of(search_id: int, query: LeaderboardQuery) -> dict:
    """``leaderboard_page`` by the search's id (the websocket asks with ids)."""
    return leaderboard_page(Search.objects.get(pk=search_id), query)


def top_candidate_ids(search_id: int, n: int = TOP_CURVES) -> list[int]:
    """Ids of the ``n`` candidates with the best validation accuracy so far (ties by index)."""
    if n <= 0:
        return []
    return list(Candidate.objects.filter(search_id=search_id, best_val_accuracy__isnull=False)
                .order_by(F("best_val_accuracy").desc(), "index").values_list("id", flat=True)[:n])


def _own_candidate_ids(search_id: int, ids) -> list[int]:
    wanted = []
    for value in ids or ():
        try:
            wanted.append(int(value))
        except (TypeError, ValueError):
            continue
    wanted = list(dict.fromkeys(wanted))[:MAX_SELECTED]
    if not wanted:
        return []
    found = set(Candidate.objects.filter(search_id=search_id, id__in=wanted).values_list("id", flat=True))
    return [cid for cid in wanted if cid in found]


def candidate_curves(search_id: int, ids) -> dict:
    """Whole curves of a few of the search's candidates (ids of other searches are ignored),
    with their leaderboard data: what a page fetches when the user selects candidates."""
    ids = _own_candidate_ids(search_id, ids)
    points = (EpochMetric.objects.filter(search_id=search_id, candidate_id__in=ids).order_by("seq")
              if ids else [])
    return {
        "candidates": [events.candidate_data(c) for c in _light(Candidate.objects.filter(id__in=ids))],
        "epochs": [events.epoch_event(m) for m in points],
    }


# --- progress --------------------------------------------------------------------

def candidate_stats(search_id: int) -> tuple[dict, dict]:
    """Counts by state, device time and the best-so-far steps, from one pass over the search's
    candidates (at 50,000 candidates each pass over the table is most of the cost):
    ``(counts, {"ended_seconds", "finished_seconds", "finished_count", "best_so_far"})``.
    ``best_so_far`` is ``[[finished_at, best value, candidate id], ...]`` at each improvement."""
    table = Candidate._meta.db_table
    counts = {state: 0 for state in Candidate.State.values}
    stats = {"ended_seconds": 0.0, "finished_seconds": 0.0, "finished_count": 0}
    best = []
    with connection.cursor() as cursor:
        cursor.execute(f"""
            WITH c AS MATERIALIZED (
                SELECT id, state, started_at, finished_at, best_val_accuracy FROM {table} WHERE search_id = %s
            )
            SELECT 'count', state, count(*), coalesce(sum(extract(epoch FROM finished_at - started_at)), 0),
                   count(finished_at - started_at), NULL::timestamptz, NULL::double precision, NULL::bigint
            FROM c GROUP BY state
            UNION ALL
            (SELECT 'best', NULL, NULL, NULL, NULL, finished_at, best_val_accuracy, id FROM (
                SELECT id, finished_at, best_val_accuracy,
                       max(best_val_accuracy) OVER (ORDER BY finished_at, id
                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
                FROM c WHERE finished_at IS NOT NULL AND best_val_accuracy IS NOT NULL) AS t
             WHERE before IS NULL OR best_val_accuracy > before
             ORDER BY finished_at, id LIMIT %s)""", [search_id, BEST_SO_FAR_LIMIT])
        for kind, state, n, seconds, timed, at, value, cid in cursor.fetchall():
            if kind == "count":
                counts[state] = n
                stats["ended_seconds"] += float(seconds)
                if state == Candidate.State.FINISHED:
                    stats["finished_seconds"], stats["finished_count"] = float(seconds), timed
            else:
                best.append((at, cid, value))
    best.sort()
    stats["best_so_far"] = [[at.isoformat(), value, cid] for at, cid, value in best]
    return counts, stats


BEST_SO_FAR_LIMIT = 1000


def progress_stats(search_id: int, stats: dict | None = None) -> dict:
    """Device time spent, how long a finished candidate took on average, and the best value
    so far each time it improved (one point per improvement, not per candidate)."""
    return stats if stats is not None else candidate_stats(search_id)[1]


def best_so_far(search_id: int) -> list[list]:
    """``[[finished_at, best value, candidate id], ...]`` at each improvement, oldest first."""
    return candidate_stats(search_id)[1]["best_so_far"]


# --- Pareto scatter --------------------------------------------------------------

SCATTER_METRICS = {"params": "param_count", "flops": "flops", "latency": "latency_ms"}


def pareto_front_ids(points: list[tuple], metric_index: int) -> set[int]:
    """Ids on the 2-D front of (max accuracy, min cost) among ``(id, accuracy, costs...)``."""
    return {p[0] for p in pareto.front_2d(points, value=lambda p: p[1], cost=lambda p: p[metric_index])}


# One query: the total, the finished count, and only the rows the page will draw (``picked``).
# ``best_cheaper`` is the best accuracy of any row at most as costly (cheapest first, the more
# accurate first among equal costs), so ``acc >= best_cheaper`` keeps every row nothing cheaper
# beats on accuracy: a few rows more than the front, never fewer. The front itself is then
# ``pareto.front_2d`` over those few rows (the one Pareto implementation), never over 50,000.
_SCATTER_SQL = """
    WITH f AS MATERIALIZED (
        SELECT id, best_val_accuracy AS acc, {column} AS cost, index, on_pareto_front,
               best_val_accuracy >= max(best_val_accuracy) OVER (
                   ORDER BY {column}, best_val_accuracy DESC ROWS UNBOUNDED PRECEDING) AS maybe
        FROM {table} WHERE search_id = %(search)s AND state = %(state)s),
    n AS MATERIALIZED (SELECT count(*) AS finished,
                 count(*) FILTER (WHERE acc IS NOT NULL AND cost IS NOT NULL) AS total,
                 max(index) FILTER (WHERE acc IS NOT NULL AND cost IS NOT NULL) + 1 AS span FROM f),
    top AS MATERIALIZED (SELECT coalesce(min(acc), '-infinity') AS acc
            FROM (SELECT acc FROM f WHERE acc IS NOT NULL AND cost IS NOT NULL
                  ORDER BY acc DESC LIMIT %(top)s) best)
    SELECT * FROM (
        SELECT f.id, f.acc, f.cost, f.index, f.on_pareto_front, f.maybe, n.total, n.finished,
               n.total <= %(limit)s OR f.on_pareto_front OR f.acc >= top.acc
               OR f.index %% GREATEST(1, CEIL(n.span::numeric / %(room)s)::int) = 0 AS picked
        FROM f, n, top
        WHERE f.acc IS NOT NULL AND f.cost IS NOT NULL) drawn
    WHERE picked OR maybe
    ORDER BY index"""


def scatter_points(search: Search, x: str = "params", limit: int = 2000) -> dict:
    """Finished candidates as points of accuracy against one cost (``x``: parameters, FLOPs or
    latency), with the ids on the front of (max accuracy, min that cost). Past ``limit`` points
    it sends every point on the front (and every one marked on the search's own multi-objective
    front), the ``limit // 4`` most accurate and an even sample of ``limit // 2`` of the rest,
    picked in Postgres: a 50,000-candidate search's data is a couple of thousand rows to Python,
    not 50,000. ``sampled`` says some were left out."""
    column = SCATTER_METRICS.get(x, "param_count")
    sql = _SCATTER_SQL.format(column=column, table=Candidate._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"search": search.id, "state": Candidate.State.FINISHED, "limit": limit,
                             "top": limit // 4, "room": max(1, limit // 2)})
        rows = cursor.fetchall()
    total = rows[0][6] if rows else 0
    finished = rows[0][7] if rows else Candidate.objects.filter(
        search_id=search.id, state=Candidate.State.FINISHED).count()
    maybe = [r for r in rows if r[5]]
    front = [r[0] for r in pareto.front_2d(maybe, value=lambda r: r[1], cost=lambda r: r[2])]  # cheapest first
    on_front = set(front)
    rows = [r for r in rows if r[8] or r[0] in on_front]  # not the few "maybe" rows the front left out
    return {
        "x": x if x in SCATTER_METRICS else "params", "total": total, "sampled": total > len(rows), "limit": limit,
        "finished": finished,
        "points": [{"id": r[0], "best_val_accuracy": r[1], column: r[2], "index": r[3], "on_pareto_front": r[4]}
                   for r in rows],
        # Ids on the front of (most accurate, least x), cheapest first: the page draws it as is.
        "front": front,
    }


# --- architectures ---------------------------------------------------------------

def _choice_label(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def choice_frequencies(search: Search, k: int) -> dict:
    """How often each choice of each decision appears among the top ``k`` candidates."""
    space = space_of(search)
    archs = list(Candidate.objects.filter(search_id=search.id, best_val_accuracy__isnull=False)
                 .order_by(F("best_val_accuracy").desc(), "index").values_list("arch", flat=True)[:k])
    decisions = []
    for d in (space.decisions if space else []):
        counts = {json.dumps(c): 0 for c in d.choices}
        for arch in archs:
            if d.name in arch:
                key = json.dumps(arch[d.name])
                counts[key] = counts.get(key, 0) + 1
        decisions.append({"name": d.name, "choices": [
            {"value": _choice_label(json.loads(key)), "count": n, "share": n / len(archs) if archs else 0.0}
            for key, n in counts.items()]})
    return {"k": len(archs), "decisions": decisions}


def arch_diff(search: Search, a: dict, b: dict) -> list[dict]:
    """Decision by decision, the two architectures' choices and whether they differ."""
    space = space_of(search)
    names = [d.name for d in space.decisions] if space else sorted(set(a) | set(b))
    names += [n for n in sorted(set(a) | set(b)) if n not in names]
    return [{"name": n, "a": _choice_label(a.get(n, "—")), "b": _choice_label(b.get(n, "—")),
             "differs": a.get(n) != b.get(n)} for n in names]


def candidate_by_index(search: Search, index) -> Candidate | None:
    try:
        return search.candidates.filter(index=int(index)).first()
    except (TypeError, ValueError):
        return None


def candidate_curve(candidate: Candidate) -> list[dict]:
    return [events.epoch_event(m) for m in candidate.epoch_metrics.order_by("epoch")]


def confusion_rows(matrix) -> list[dict]:
    """A confusion matrix as rows of cells with an intensity from 0 to 1 (the share of the
    row's true class), for a heat map; None when there is no usable matrix."""
    if not matrix or not isinstance(matrix, list) or not all(isinstance(r, list) for r in matrix):
        return []
    rows = []
    for true_class, row in enumerate(matrix):
        total = sum(v for v in row if isinstance(v, (int, float))) or 1
        rows.append({"label": true_class, "recall": (row[true_class] / total) if true_class < len(row) else 0.0,
                     "cells": [{"value": v, "share": v / total, "diagonal": i == true_class}
                               for i, v in enumerate(row)]})
    return rows


# --- workers ---------------------------------------------------------------------

def worker_rows_for(user, *, now=None) -> list[dict]:
    """Every worker as last heard of, ``lost`` once silent past the heartbeat timeout. The
    candidate it trains is named only to the owner of that candidate's search."""
    now = now or timezone.now()
    timeout = float(getattr(settings, "HEARTBEAT_TIMEOUT_SECONDS", 60))
    rows = []
    for w in Worker.objects.select_related("candidate__search").order_by("name"):
        age = (now - w.last_heartbeat).total_seconds()
        c = w.candidate
        mine = c is not None and c.search.owner_id == user.id
        rows.append({
            "id": w.id, "name": w.name, "host": w.host, "device": w.device,
            "last_heartbeat": w.last_heartbeat.isoformat(), "seconds_since_heartbeat": round(age, 1),
            "lost": age > timeout, "timeout_seconds": timeout, "epochs_done": w.epochs_done,
            "samples_per_second": w.samples_per_second,
            "started_at": w.started_at.isoformat() if w.started_at else None,
            "busy": c is not None,
            "candidate": ({"id": c.id, "index": c.index, "search_id": c.search_id, "search_name": c.search.name,
                           "url": reverse("candidate_detail", args=[c.search_id, c.id])} if mine else None),
        })
    return rows


# --- deliverables and API reads (bundles, tokens, uploads: selectors_deliverables) -----

def search_done_count(search: Search) -> int:
    """How many of the search's candidates ended (the list annotates it; a single search reads it)."""
    if hasattr(search, "done"):
        return search.done
    return search.candidates.filter(state__in=Candidate.ENDED_STATES).count()


def search_best_accuracy(search: Search) -> float | None:
    if hasattr(search, "best_accuracy"):
        return search.best_accuracy
    best = (search.candidates.filter(kind="train").exclude(best_val_accuracy=None)
            .order_by("-best_val_accuracy").first())  # a one-shot job's supernet is not a result
    return best.best_val_accuracy if best else None


def candidate_epochs(candidate: Candidate):
    """Every epoch row of the candidate, in order."""
    return candidate.epoch_metrics.order_by("epoch")


def delete_summary(search: Search) -> dict:
    """What deleting the search takes with it, for the page that asks to confirm."""
    counts = state_counts(search.id)
    return {"candidates": sum(counts.values()), "running": counts.get("running", 0),
            "checkpoints": search.candidates.exclude(checkpoint_path="").count()}


def warm_start_choices(user):
    """The user's finished searches a new search may start warm from."""
    return Search.objects.filter(owner=user, state=Search.State.FINISHED)


def best_candidate_for(user, search_id: int) -> Candidate:
    """The best finished candidate of the user's search, or 404 with the reason."""
    best = best_candidate(search_get_for(user, search_id))
    if best is None:
        raise Http404("No candidate of this search has finished with a checkpoint yet.")
    return best


def search_detail_for(user, search_id: int) -> Search:
    """The user's search with its progress annotations (as in the list), or 404."""
    search = search_list_for(user).filter(pk=search_id).first()
    if search is None:
        raise Http404("No such search.")
    return search


def disk_datasets():
    """Data sets an administrator put under DATA_DIR (text files, image folders), with availability."""
    return [(info, *info.availability()) for info in available_datasets() if info.kind in ("text", "folder")]


def darts_job(search: Search) -> Candidate | None:
    """The DARTS job of a DARTS search (its first candidate), for the edge-weights panel."""
    if search.strategy != "darts":
        return None
    return search.candidates.filter(index=0, kind="darts").first()
