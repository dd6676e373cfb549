"""How long the comparison page's reads take on one search of 50,000 finished candidates
(issue 18 follow-up): decision_stats, parallel_sample and best_so_far_curve, each called
exactly as views_compare calls them, timed cold (Django's cache cleared) and again warm.

A measurement to read, not a test: ``python bench/compare_page.py [--candidates 50000]``.
Set NASWEB_BENCH_DATABASE_URL to reuse a database that already holds the search."""
from __future__ import annotations

import time

from common import base_parser, bench_database, bench_user, busy_warning, machine, median, setup_django, table

READS = ("decision_stats", "parallel_sample", "best_so_far_curve")


def the_search(n: int):
    from django.utils import timezone

    from dashboard import fill_search
    from searches import services
    from searches.models import Search

    found = Search.objects.filter(name=f"compare-{n}").first()
    if found:
        return found
    search = services.search_create(owner=bench_user(), name=f"compare-{n}", dataset="digits", space="mobile",
                                    strategy="random", max_candidates=n, epochs=1, parallel=4, seed=4)
    Search.objects.filter(pk=search.pk).update(state=Search.State.RUNNING, started_at=timezone.now())
    fill_search(search, n, epochs=1, seed=4)
    Search.objects.filter(pk=search.pk).update(state=Search.State.FINISHED, finished_at=timezone.now())
    search.refresh_from_db()
    return search


def forget_cached() -> None:
    """Drop the comparison page's cached reads only (never the whole Redis database: others share it)."""
    import redis

    from common import REDIS_URL

    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match="*compare:*", count=1000))
    if keys:
        r.delete(*keys)


def timed(fn, search, repeats: int, clear) -> list[float]:
    seconds = []
    for _ in range(repeats):
        if clear:
            clear()
        start = time.perf_counter()
        fn(search)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--candidates", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with bench_database() as url:
        setup_django(url)
        from searches import selectors_compare

        search = the_search(args.candidates)
        rows = []
        for name in READS:
            fn = getattr(selectors_compare, name)
            cold = timed(fn, search, args.repeats, forget_cached)
            warm = timed(fn, search, args.repeats, None)
            rows.append([name, f"{median(cold):.3f}", f"{min(cold):.3f}", f"{median(warm):.3f}"])
        print(table(f"comparison reads at {search.candidates.count():,} candidates (seconds)",
                    ["read", "cold median", "cold min", "warm median"], rows,
                    [n for n in (busy_warning(), str(machine().get("cpu", ""))) if n]))


if __name__ == "__main__":
    main()
