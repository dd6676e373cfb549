"""Reads of the comparison page: best-so-far curves of several searches, and how each
architecture decision of one search relates to accuracy. Everything is aggregated or
sampled in Postgres, so the page gets a bounded answer at 50,000 candidates. The two reads
over every finished candidate (the decisions' boxes, the parallel-coordinates sample) are
kept in Django's cache under what the finished candidates are now (their count and the last
finish), so they are computed once per newly finished candidate, not once per page view."""
from __future__ import annotations

import json

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max

from .models import Candidate, Search
from .selectors import space_of

MAX_COMPARED = 8          # searches overlaid at once
CURVE_LIMIT = 2000        # best-so-far points per search (one per improvement)
PARALLEL_LIMIT = 1000     # candidates drawn in the parallel-coordinates view
PARALLEL_TOP = 200        # of which the most accurate are always kept
PICK_LIMIT = 200          # searches offered in the picker
CACHE_SECONDS = 3600      # a cached read of a search nobody looks at goes after an hour


def searches_to_compare(user) -> list[dict]:
    """The user's searches, newest first, for the picker."""
    rows = (Search.objects.filter(owner=user).order_by("-created_at", "-id")
            .values("id", "name", "state", "dataset", "space", "strategy")[:PICK_LIMIT])
    return list(rows)


def chosen_searches(user, ids) -> list[Search]:
    """The user's searches among ``ids`` (others' and unknown ids are skipped), in that order."""
    wanted = []
    for value in ids:
        try:
            wanted.append(int(value))
        except (TypeError, ValueError):
            continue
    wanted = list(dict.fromkeys(wanted))[:MAX_COMPARED]
    found = {s.id: s for s in Search.objects.filter(owner=user, id__in=wanted)}
    return [found[i] for i in wanted if i in found]


def best_so_far_curve(search: Search) -> dict:
    """The best validation accuracy after each ended candidate, as steps: one point per
    improvement, ``[n, seconds, best]`` with ``n`` the number of candidates ended by then and
    ``seconds`` the time since the search started; the last point marks where it stands now."""
    table = Candidate._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"""
            WITH c AS (
                SELECT finished_at, best_val_accuracy AS acc,
                       row_number() OVER (ORDER BY finished_at, id) AS n,
                       max(best_val_accuracy) OVER (ORDER BY finished_at, id
                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before,
                       count(*) OVER () AS total
                FROM {table} WHERE search_id = %s AND finished_at IS NOT NULL AND state = ANY(%s))
            SELECT n, finished_at, acc, total FROM c
            WHERE (acc IS NOT NULL AND (before IS NULL OR acc > before)) OR n = total
            ORDER BY n LIMIT %s""", [search.id, [s.value for s in Candidate.ENDED_STATES], CURVE_LIMIT])
        rows = cursor.fetchall()
    start = search.started_at or search.created_at
    points, best = [], None
    for n, at, acc, _ in rows:
        if acc is not None and (best is None or acc > best):
            best = acc
        if best is not None:
            points.append([n, max(0.0, (at - start).total_seconds()) if start else 0.0, best])
    return {"id": search.id, "name": search.name, "state": search.state, "points": points,
            "ended": rows[-1][3] if rows else 0}


def _box(values: list[float]) -> dict:
    return {"min": values[0], "q1": values[1], "median": values[2], "q3": values[3], "max": values[4]}


def _finished(search: Search):
    return Candidate.objects.filter(search_id=search.id, state=Candidate.State.FINISHED,
                                    best_val_accuracy__isnull=False)


def _cached(name: str, search: Search, compute):
    """``compute(search)``, or its answer kept from when the search's finished candidates were
    the same: same count and same last finish (a candidate finishing changes one or the other)."""
    mark = _finished(search).aggregate(n=Count("id"), last=Max("finished_at"))
    last = mark["last"].timestamp() if mark["last"] else 0
    key = f"compare:v1:{name}:{search.id}:{search.created_at.timestamp()}:{mark['n']}:{last}"
    found = cache.get(key)
    if found is None:
        found = compute(search)
        cache.set(key, found, CACHE_SECONDS)
    return found


def decision_stats(search: Search) -> list[dict]:
    """For each decision of the search's space, per choice: how many finished candidates took
    it and their validation accuracy's five-number summary (min, quartiles, max)."""
    return _cached("decisions", search, _decision_stats)


def _decision_stats(search: Search) -> list[dict]:
    table = Candidate._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"""
            SELECT d.key, d.value::text, count(*), min(c.best_val_accuracy),
                   percentile_cont(ARRAY[0.25, 0.5, 0.75]) WITHIN GROUP (ORDER BY c.best_val_accuracy),
                   max(c.best_val_accuracy)
            FROM {table} c, jsonb_each(c.arch) d
            WHERE c.search_id = %s AND c.state = %s AND c.best_val_accuracy IS NOT NULL
            GROUP BY d.key, d.value::text""", [search.id, Candidate.State.FINISHED])
        rows = cursor.fetchall()
    found: dict[str, dict[str, dict]] = {}
    for key, value, n, lo, quartiles, hi in rows:
        found.setdefault(key, {})[value] = dict(_box([lo, *quartiles, hi]), count=n)
    decisions = []
    for name, choices in _decisions(search, found):
        stats = found.get(name, {})
        decisions.append({"name": name, "choices": [
            dict({"value": _label(choice), "count": 0}, **stats.get(_key(choice), {})) for choice in choices]})
    return decisions


def _key(choice) -> str:
    """A choice as Postgres prints its jsonb value (``"conv3x3"``, ``3``, ``true``)."""
    return json.dumps(choice, separators=(", ", ": "))


def _label(choice) -> str:
    return choice if isinstance(choice, str) else json.dumps(choice)


def _decisions(search: Search, found: dict) -> list[tuple[str, list]]:
    """The space's decisions with their choices in the space's order; a decision the space
    no longer knows is listed with the choices found."""
    space = space_of(search)
    known = [(d.name, list(d.choices)) for d in space.decisions] if space else []
    names = {name for name, _ in known}
    extra = [(name, [json.loads(v) for v in sorted(values)]) for name, values in found.items() if name not in names]
    return known + extra


def parallel_sample(search: Search) -> dict:
    """Finished candidates for the parallel-coordinates view: the most accurate ones and an
    even sample of the rest, at most ``PARALLEL_LIMIT``. Each row is the index of the choice
    taken for every decision, then the accuracy."""
    return _cached("parallel", search, _parallel_sample)


def _parallel_sample(search: Search) -> dict:
    table = Candidate._meta.db_table
    finished = _finished(search)
    total = finished.count()
    step = max(1, -(-total // max(1, PARALLEL_LIMIT - PARALLEL_TOP)))
    with connection.cursor() as cursor:
        cursor.execute(f"""
            SELECT id FROM (
                SELECT id, row_number() OVER (ORDER BY best_val_accuracy DESC, index) AS r,
                       row_number() OVER (ORDER BY index) AS i
                FROM {table} WHERE search_id = %s AND state = %s AND best_val_accuracy IS NOT NULL) t
            WHERE r <= %s OR i %% %s = 0 LIMIT %s""",
                       [search.id, Candidate.State.FINISHED, PARALLEL_TOP, step, PARALLEL_LIMIT])
        ids = [row[0] for row in cursor.fetchall()]
    decisions = _decisions(search, {})
    rows = []
    for cid, index, arch, acc in finished.filter(id__in=ids).values_list("id", "index", "arch", "best_val_accuracy"):
        picks = []
        for name, choices in decisions:
            value = arch.get(name)
            picks.append(choices.index(value) if value in choices else None)
        rows.append({"id": cid, "index": index, "choices": picks, "accuracy": acc})
    rows.sort(key=lambda r: r["accuracy"])  # the best drawn last, on top
    return {"decisions": [{"name": n, "choices": [_label(c) for c in cs]} for n, cs in decisions],
            "rows": rows, "total": total, "sampled": total > len(rows)}
