"""The dashboard at scale: first paint, leaderboard pages and live events in Chromium.

Fills one search with 10,000 and one with 50,000 generated candidates (ten epochs each:
100,000 and 500,000 epoch rows) by COPY, serves them with Daphne and measures in a real
Chromium:

* first paint of the search page (first contentful paint) and the moment the leaderboard,
  chart and progress are drawn from the websocket snapshot;
* the fetch of one leaderboard page as the page makes it when the user sorts, filters or
  pages (page 1, a deep page sorted by parameters, a filtered page);
* how many epoch events per second one open page absorbs before it falls behind (events go
  through the real channel layer and Daphne; "keeps up" means every event of a 2-second
  burst is handled within a second of the last one), and how often it redraws meanwhile.

It works in a database of its own (created and dropped here, or the one bench/run_all.py
hands over in NASWEB_BENCH_DATABASE_URL) and a channel prefix of its own, so it runs beside
a demo, a test session or another benchmark::

    .venv/bin/python bench/dashboard.py                  # 10,000 and 50,000 candidates
    .venv/bin/python bench/dashboard.py --sizes 2000     # quick look

Every size is compared with a 100-candidate search measured in the same run ("x base"), and
the events rate with what the channel layer alone carries on this machine ("of layer").
Prints a table and writes bench/results/dashboard.json. ``fill_search`` is also what the
tests use to make a search with generated history.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "dashboard.json"
BENCH_DB = "nasweb_bench_dashboard"
NULL = "\\N"
BASELINE = 100  # the small search every size is compared with, measured in the same run


# --- generated history (also used by the tests) ---------------------------------------

def _converter(field):
    """A function turning one value of ``field`` into its COPY text (``\\N`` for NULL)."""
    from django.db import models

    if isinstance(field, models.JSONField):
        convert = json.dumps
    elif isinstance(field, models.BooleanField):
        def convert(value):
            return "t" if value else "f"
    elif isinstance(field, models.DateTimeField):
        def convert(value):
            return value.isoformat()
    else:
        convert = str
    return lambda value: NULL if value is None else convert(value)


def copy_rows(model, rows: list[dict]) -> None:
    """Insert ``rows`` (dicts by attribute name) with one COPY; fields a row leaves out get
    their default. Far faster than INSERTs for hundreds of thousands of rows."""
    from django.db import connection
    from django.utils import timezone

    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    plan = []
    for f in fields:
        if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False):
            default = now
        else:
            default = f.get_default()  # "" for a blank text field, None where null is allowed
        plan.append((f.attname, default, _converter(f)))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows([convert(row.get(name, default)) for name, default, convert in plan] for row in rows)
    buffer.seek(0)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(
            f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
            buffer)


def unique_archs(space, n: int, rng: random.Random) -> list[dict]:
    archs, seen, tries = [], set(), 0
    while len(archs) < n:
        tries += 1
        if tries > n * 50:
            raise ValueError(f"the {space.name} space has fewer than {n} distinct architectures")
        arch = space.sample(rng)
        key = space.arch_hash(arch)
        if key not in seen:
            seen.add(key)
            archs.append(arch)
    return archs


def fill_search(search, n: int, *, epochs: int | None = None, seed: int = 0, running: int = 0, queued: int = 0,
                failed_share: float = 0.03, pruned_share: float = 0.05, classes: int = 10) -> None:
    """Give ``search`` ``n`` generated candidates with ``epochs`` epochs each (running ones
    have fewer, queued ones none), as if a search had run: states, accuracies that rise per
    epoch, parameters, FLOPs, latency, workers, durations, tracebacks for the failed ones,
    confusion matrices for the finished ones, and the Pareto front (accuracy against
    parameters) marked. Rows go in by COPY; the search's ``last_seq`` follows."""
    from django.utils import timezone

    from searches.models import Candidate, EpochMetric, Search
    from searches.nas import get_space

    rng = random.Random(seed)
    epochs = epochs or search.epochs
    space = get_space(search.space, search.space_settings)
    archs = unique_archs(space, n, rng)
    start = search.started_at or timezone.now() - timedelta(hours=max(1, n / 500))
    ended_count = n - running - queued
    rows, curves = [], []
    clock = start
    for i, arch in enumerate(archs):
        if i >= ended_count + running:
            state = Candidate.State.QUEUED
        elif i >= ended_count:
            state = Candidate.State.RUNNING
        else:
            roll = rng.random()
            state = (Candidate.State.FAILED if roll < failed_share else
                     Candidate.State.PRUNED if roll < failed_share + pruned_share else Candidate.State.FINISHED)
        done = {Candidate.State.QUEUED: 0, Candidate.State.RUNNING: rng.randint(1, max(1, epochs - 1)),
                Candidate.State.FAILED: rng.randint(0, epochs - 1),
                Candidate.State.PRUNED: rng.randint(1, max(1, epochs - 1))}.get(state, epochs)
        ceiling = rng.uniform(0.35, 0.99)
        curve = [ceiling * (1 - math.exp(-(e + 1) / 2.5)) + rng.uniform(-0.02, 0.02) for e in range(done)]
        curve = [min(max(v, 0.01), 0.999) for v in curve]
        params = int(10 ** rng.uniform(3.5, 6.7))
        seconds = rng.uniform(20, 240)
        started = clock if state != Candidate.State.QUEUED else None
        finished = started + timedelta(seconds=seconds) if state in Candidate.ENDED_STATES else None
        clock += timedelta(seconds=seconds / max(1, search.parallel))
        row = {
            "search_id": search.id, "index": i, "arch": arch, "arch_hash": space.arch_hash(arch),
            "genotype": space.genotype(arch)[:500], "state": state, "epochs_done": done,
            "best_val_accuracy": max(curve) if curve else None, "final_val_accuracy": curve[-1] if curve else None,
            "param_count": params if state != Candidate.State.QUEUED else None,
            "flops": params * rng.randint(20, 200) if state != Candidate.State.QUEUED else None,
            "latency_ms": round(params / 2e5 + rng.uniform(0.1, 2.0), 3) if state != Candidate.State.QUEUED else None,
            "worker": f"gpu{i % 4}@bench" if started else "", "device": "cuda:0 (NVIDIA H100)" if started else "",
            "started_at": started, "finished_at": finished, "heartbeat_at": started, "created_at": start,
        }
        if state == Candidate.State.FINISHED:
            test = max(0.0, curve[-1] - rng.uniform(0, 0.03))
            row.update(test_accuracy=test, test_macro_recall=test, test_macro_f1=max(0.0, test - 0.01),
                       confusion_matrix=_confusion(test, classes, rng))
        elif state == Candidate.State.FAILED:
            row["error"] = ("Traceback (most recent call last):\n  File \"workers/training.py\", line 120, in run\n"
                            "    loss.backward()\nRuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")
        elif state == Candidate.State.PRUNED:
            row["stop_reason"] = f"median rule: below the median of its peers at epoch {done}"
        rows.append(row)
        curves.append(curve)
    if len(search.objectives or []) >= 2:
        _mark_front(rows)
    copy_rows(Candidate, rows)
    ids = dict(Candidate.objects.filter(search_id=search.id).values_list("index", "id"))
    seq = search.last_seq
    metrics = []
    for row, curve in zip(rows, curves):
        for epoch, value in enumerate(curve, start=1):
            seq += 1
            metrics.append({
                "candidate_id": ids[row["index"]], "search_id": search.id, "epoch": epoch, "seq": seq,
                "train_loss": 2.3 * (1 - value) + 0.05, "train_accuracy": min(1.0, value + 0.03),
                "val_loss": 2.3 * (1 - value) + 0.1, "val_accuracy": value, "seconds": 3.0,
                "created_at": (row["started_at"] or start) + timedelta(seconds=3 * epoch)})
    for chunk in range(0, len(metrics), 100_000):
        copy_rows(EpochMetric, metrics[chunk:chunk + 100_000])
    Search.objects.filter(pk=search.id).update(last_seq=seq, started_at=start)
    search.last_seq, search.started_at = seq, start


def _confusion(accuracy: float, classes: int, rng: random.Random) -> list[list[int]]:
    matrix = []
    for true_class in range(classes):
        row = [int(rng.random() * 4) for _ in range(classes)]
        row[true_class] = int(40 * accuracy + rng.random() * 6)
        matrix.append(row)
    return matrix


def _mark_front(rows: list[dict]) -> None:
    best = None
    for row in sorted((r for r in rows if r["state"] == "finished"), key=lambda r: (r["param_count"], -r["best_val_accuracy"])):
        if best is None or row["best_val_accuracy"] > best:
            row["on_pareto_front"] = True
            best = row["best_val_accuracy"]


# --- the benchmark -------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _admin_connection():
    """A connection to the server's ``postgres`` database, for CREATE and DROP DATABASE."""
    import dj_database_url
    import psycopg2

    db = dj_database_url.parse(os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/root"))
    conn = psycopg2.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"] or "root",
                            password=db["PASSWORD"] or None, dbname="postgres")
    conn.autocommit = True
    return conn, db


def _create_database() -> tuple[str, str]:
    """A new, empty database with a name of its own (runs side by side never meet): (name, url)."""
    import uuid

    name = f"{BENCH_DB}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    conn, db = _admin_connection()
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    auth = (db["USER"] or "root") + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return name, f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"


def _drop_database(name: str) -> None:
    if not name.startswith(BENCH_DB + "_"):
        raise ValueError(f"refusing to drop {name!r}: not this benchmark's database")
    conn, _ = _admin_connection()
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid()", [name])
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    conn.close()


def _median_ms(values) -> float:
    return round(statistics.median(values), 1)


def measure_page(page, base: str, search_id: int, loads: int) -> dict:
    """First contentful paint and the moment the snapshot is drawn, median of ``loads``."""
    marks = {"html_ms": [], "first_contentful_paint_ms": [], "socket_open_ms": [], "snapshot_received_ms": [],
             "snapshot_drawn_ms": [], "first_draw_js_ms": []}
    for _ in range(loads):
        page.goto(f"{base}/searches/{search_id}/", wait_until="load")
        page.wait_for_function("document.getElementById('search').dataset.readyMs !== undefined", timeout=60_000)
        got = page.evaluate("""() => {
            const d = document.getElementById('search').dataset, nav = performance.getEntriesByType('navigation')[0];
            return [nav.responseEnd, performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
                    Number(d.wsOpenMs), Number(d.snapshotMs), Number(d.readyMs), Number(d.firstDrawMs)];
        }""")
        for key, value in zip(marks, got):
            marks[key].append(value)
        rows = page.locator("#leaderboard tbody tr").count()
        assert rows == 50, f"expected a full first page, got {rows} rows"  # every size here has > 50
        page.wait_for_load_state("networkidle")  # the scatter it fetches next must not overlap the next load
    return dict({key: _median_ms(values) for key, values in marks.items()}, loads=loads)


FETCHES = {
    "page 1, best first": "",
    "deep page, fewest params": "sort=params&page=400",
    "filtered (finished, acc 0.5-0.9, text)": "state=finished&acc_min=0.5&acc_max=0.9&q=e6",
}


def measure_fetches(page, base: str, search_id: int, repeats: int = 5) -> dict:
    out = {}
    for name, query in FETCHES.items():
        times = page.evaluate("""async ([url, n]) => {
            const times = [];
            for (let i = 0; i < n; i++) {
                const t0 = performance.now();
                const r = await fetch(url, {credentials: 'same-origin'});
                const body = await r.json();
                if (!r.ok || !Array.isArray(body.rows)) throw new Error('bad page');
                times.push(performance.now() - t0);
            }
            return times;
        }""", [f"{base}/searches/{search_id}/leaderboard.json?{query}", repeats])
        out[name] = _median_ms(times)
    return out


EVENT_RATES = (100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 4000)


def measure_events(page, search_id: int, candidate_ids: list[int], start_seq: int,
                   rates=EVENT_RATES, burst_seconds: float = 2.0) -> dict:
    """Send epoch events through the channel layer at rising rates; the page keeps up with a
    rate when it has handled every event of the burst within 1 s of the last one sent."""
    import asyncio

    from channels.layers import get_channel_layer

    from searches.events import group_name

    layer = get_channel_layer()
    seq = start_seq
    steps = []

    async def burst(rate: int, first_seq: int) -> tuple[int, float]:
        total = int(rate * burst_seconds)
        t0 = time.perf_counter()
        sent = 0
        batch = max(1, rate // 50)  # send in 20 ms slices
        while sent < total:
            # One send at a time, as the workers publish (under the search's epoch lock): events
            # sent concurrently can reach the layer out of order, and the consumer treats an
            # epoch older than the last one it sent as already sent.
            for _ in range(min(batch, total - sent)):
                s = first_seq + sent
                cid = candidate_ids[s % len(candidate_ids)]
                await layer.group_send(group_name(search_id), {"type": "search.event", "event": {
                    "type": "epoch", "seq": s, "candidate": cid, "epoch": 1 + s % 10, "train_loss": 0.5,
                    "train_accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.5 + (s % 400) / 1000, "seconds": 1.0}})
                sent += 1
            ahead = sent / rate - (time.perf_counter() - t0)
            if ahead > 0:
                await asyncio.sleep(ahead)
        return total, time.perf_counter() - t0

    def in_thread(rate, first):
        # Playwright's sync API keeps an event loop in this thread; the sender gets its own.
        import threading

        out = {}
        thread = threading.Thread(target=lambda: out.setdefault("r", asyncio.run(burst(rate, first))))
        thread.start()
        thread.join()
        return out["r"]

    for rate in rates:
        before = page.evaluate("[Number(document.getElementById('search').dataset.events || 0), "
                               "Number(document.getElementById('search').dataset.draws || 0)]")
        total, took = in_thread(rate, seq + 1)
        seq += total
        deadline = time.perf_counter() + 1.0
        handled = 0
        while True:
            events, draws = page.evaluate("[Number(document.getElementById('search').dataset.events || 0), "
                                          "Number(document.getElementById('search').dataset.draws || 0)]")
            handled = events - before[0]
            if handled >= total or time.perf_counter() > deadline:
                break
            time.sleep(0.05)
        lag_ok = handled >= total
        elapsed = time.perf_counter() - (deadline - 1.0) + took
        step = {"rate": rate, "sent": total, "sent_per_second": round(total / took), "handled_within_1s": handled,
                "kept_up": lag_ok and total / took >= 0.9 * rate,
                "redraws_per_second": round((draws - before[1]) / max(elapsed, 1e-9), 1)}
        if not lag_ok:  # late, or lost? (a page that falls behind loses events past the channel's capacity)
            time.sleep(4)
            step["handled_within_5s"] = page.evaluate("Number(document.getElementById('search').dataset.events || 0)") - before[0]
            step["resumes"] = page.evaluate("Number(document.getElementById('search').dataset.resumes || 0)")
        steps.append(step)
        if not lag_ok:
            break
        time.sleep(0.5)
    kept = [s["rate"] for s in steps if s["kept_up"]]
    return {"steps": steps, "max_events_per_second": max(kept) if kept else 0, "last_seq": seq}


def layer_throughput(count: int = 2000) -> int:
    """The baseline of the events column: messages per second the channel layer itself carries
    from group_send to receive, in one process, with no Daphne and no browser."""
    import asyncio
    import threading

    from channels.layers import get_channel_layer

    async def run():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("bench-baseline", channel)

        async def send():
            for i in range(count):
                await layer.group_send("bench-baseline", {"type": "x", "i": i})

        async def receive():
            for _ in range(count):
                await layer.receive(channel)

        t0 = time.perf_counter()
        await asyncio.gather(send(), receive())
        took = time.perf_counter() - t0
        await layer.group_discard("bench-baseline", channel)
        return round(count / took)

    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("rate", asyncio.run(run())))
    thread.start()
    thread.join()
    return out["rate"]


def server_side(search) -> dict:
    """The selectors alone, timed in this process (no HTTP, no browser)."""
    from django.db import connection

    from searches import selectors

    def timed(fn, repeats=5):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
        return _median_ms(times)

    connection.ensure_connection()
    snapshot = selectors.search_snapshot(search.id)
    return {
        "snapshot_ms": timed(lambda: selectors.search_snapshot(search.id)),
        "snapshot_bytes": len(json.dumps(snapshot)),
        "leaderboard_page_ms": timed(lambda: selectors.leaderboard_page(search)),
        "deep_page_params_ms": timed(lambda: selectors.leaderboard_page(
            search, selectors.LeaderboardQuery.from_params({"sort": "params", "page": "400"}))),
        "last_page_params_ms": timed(lambda: selectors.leaderboard_page(
            search, selectors.LeaderboardQuery.from_params({"sort": "params", "page": str(10**7)}))),
        "scatter_ms": timed(lambda: selectors.scatter_points(search), 3),
    }


def _bench_search(user, n: int, epochs: int):
    from searches.models import Search

    return Search.objects.create(
        owner=user, name=f"bench {n}", dataset="digits", space="mobile", strategy="random",
        max_candidates=n + 100, epochs=epochs, parallel=64, seed=1, state=Search.State.RUNNING,
        objectives=[{"metric": "val_accuracy", "direction": "max"}, {"metric": "params", "direction": "min"}])


def _server_only(user, args, db_url: str, own_db: str | None) -> int:
    """``--server-only``: each size filled, analysed as autovacuum would, then ``server_side``."""
    from django.db import connection, connections

    out = {"machine": {"cpus": os.cpu_count(), "load_avg_start": list(os.getloadavg())}, "sizes": []}
    try:
        for n in args.sizes:
            search = _bench_search(user, n, args.epochs)
            fill_search(search, n, epochs=args.epochs, seed=n, running=64, queued=0)
            with connection.cursor() as cur:
                cur.execute("VACUUM ANALYZE")
            out["sizes"].append(dict(candidates=n, **server_side(search)))
    finally:
        connections.close_all()
        if own_db and not args.keep_db:
            _drop_database(own_db)
    out["machine"]["load_avg_end"] = list(os.getloadavg())
    print(json.dumps(out, indent=1))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--event-rates", type=int, nargs="+", default=list(EVENT_RATES),
                        help="events/s to try, rising, until the page falls behind")
    parser.add_argument("--loads", type=int, default=3, help="page loads per size (median)")
    parser.add_argument("--keep-db", action="store_true", help="leave the database it made behind")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--fill-only", action="store_true",
                        help="fill the searches, keep the database, measure nothing (to look at query plans)")
    parser.add_argument("--server-only", action="store_true",
                        help="fill each size and time the selectors alone (no browser, no server); "
                             "prints JSON, writes no results file")
    args = parser.parse_args(argv)

    # bench/run_all.py hands over a migrated database of its own; alone, this makes (and drops) one.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stop still runs the clean-up below
    given = os.environ.get("NASWEB_BENCH_DATABASE_URL")
    own_db, db_url = (None, given) if given else _create_database()
    # BENCH_SETTINGS_MODULE measures a change before making it (another channel layer, say):
    # a module on PYTHONPATH that does ``from nasweb.settings import *`` and overrides one thing.
    env = dict(os.environ, DATABASE_URL=db_url,
               DJANGO_SETTINGS_MODULE=os.environ.get("BENCH_SETTINGS_MODULE", "nasweb.settings"),
               REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11") if not given
               else os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13"),
               CHANNEL_PREFIX=f"nasweb-bench-dashboard-{os.getpid()}", DEBUG="true", LOG_LEVEL="WARNING",
               CHECKPOINT_DIR=str(ROOT / "var" / "bench-checkpoints"))
    os.environ.update(env)
    # Playwright's sync API runs an event loop in this thread; the ORM calls made between
    # browser steps are plain blocking calls, which is safe here (as in tests/e2e).
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    username = f"bench-dashboard-{os.getpid()}"
    user = get_user_model().objects.create_user(username, password="bench password 1")
    if args.server_only:
        return _server_only(user, args, db_url, own_db)
    if args.fill_only:
        for n in args.sizes:
            search = _bench_search(user, n, args.epochs)
            fill_search(search, n, epochs=args.epochs, seed=n, running=64, queued=0)
            print(f"search {search.id}: {n:,} candidates in {db_url}")
        from django.db import connection
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
        return 0
    port = _free_port()
    (ROOT / "var").mkdir(exist_ok=True)
    log = open(ROOT / "var" / f"bench-dashboard-daphne-{os.getpid()}.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "nasweb.asgi:application"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    results = {"sizes": [], "epochs_per_candidate": args.epochs, "settings": env["DJANGO_SETTINGS_MODULE"],
               "machine": {"cpus": os.cpu_count(), "load_avg_start": list(os.getloadavg())}}
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page()
            page.goto(f"{base}/login/")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", "bench password 1")
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")
            results["layer_events_per_second"] = layer_throughput()
            for n in [BASELINE] + [n for n in args.sizes if n != BASELINE]:
                search = _bench_search(user, n, args.epochs)
                t0 = time.perf_counter()
                fill_search(search, n, epochs=args.epochs, seed=n, running=64, queued=0)
                fill_seconds = time.perf_counter() - t0
                from django.db import connection
                with connection.cursor() as cur:
                    cur.execute("VACUUM ANALYZE")  # what autovacuum does soon after a bulk load
                epoch_rows = search.epoch_metrics.count()
                row = {"candidates": n, "epoch_rows": epoch_rows, "fill_seconds": round(fill_seconds, 1)}
                row.update(server_side(search))
                row.update(measure_page(page, base, search.id, args.loads))
                row["fetch_ms"] = measure_fetches(page, base, search.id)
                ids = list(search.candidates.order_by("-best_val_accuracy")[:200].values_list("id", flat=True))
                row["events"] = measure_events(page, search.id, ids, search.last_seq, rates=args.event_rates)
                from searches import services
                t0 = time.perf_counter()
                services.search_delete(search)  # rows and (no) checkpoint files: how long a user waits
                row["delete_seconds"] = round(time.perf_counter() - t0, 2)
                results["sizes"].append(row)
                print(f"  {n:,} candidates done", flush=True)
            browser.close()
    finally:
        os.killpg(server.pid, 15)
        server.wait(20)
        log.close()
        from django.db import connections
        connections.close_all()
        if own_db and not args.keep_db:
            _drop_database(own_db)
        elif own_db:
            print(f"kept {db_url}")

    results["machine"]["load_avg_end"] = list(os.getloadavg())
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


def print_table(results: dict) -> None:
    """One row per size; "x base" columns divide by the 100-candidate baseline measured in the
    same run, and events/s is also given as a share of what the channel layer alone carries."""
    header = ["candidates", "epoch rows", "fill s", "FCP ms", "drawn ms", "x base", "snapshot ms (server)",
              "snapshot KB", "page 1 ms", "x base", "deep page ms", "filtered ms", "events/s kept up",
              "of layer", "redraws/s", "delete s"]
    base = results["sizes"][0]
    layer = results.get("layer_events_per_second") or 0
    lines = []
    for r in results["sizes"]:
        fetch = list(r["fetch_ms"].values())
        base_fetch = list(base["fetch_ms"].values())
        steps = [s for s in r["events"]["steps"] if s["kept_up"]]
        rate = r["events"]["max_events_per_second"]
        lines.append([f"{r['candidates']:,}", f"{r['epoch_rows']:,}", r["fill_seconds"], r["first_contentful_paint_ms"],
                      r["snapshot_drawn_ms"], f"{r['snapshot_drawn_ms'] / base['snapshot_drawn_ms']:.2f}",
                      r["snapshot_ms"], round(r["snapshot_bytes"] / 1024, 1),
                      fetch[0], f"{fetch[0] / base_fetch[0]:.2f}", fetch[1], fetch[2], rate,
                      f"{rate / layer:.0%}" if layer else "—",
                      steps[-1]["redraws_per_second"] if steps else "—", r.get("delete_seconds", "—")])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    print("\n" + " | ".join(h.rjust(w) for h, w in zip(header, widths)))
    print("-+-".join("-" * w for w in widths))
    for line in lines:
        print(" | ".join(str(x).rjust(w) for x, w in zip(line, widths)))
    machine = results["machine"]
    print(f"\nchannel layer alone (group_send -> receive, one process): {layer} messages/s; "
          f"{machine['cpus']} CPUs, load average {machine['load_avg_start'][0]:.1f} at the start, "
          f"{machine.get('load_avg_end', [float('nan')])[0]:.1f} at the end")


if __name__ == "__main__":
    sys.exit(main())
