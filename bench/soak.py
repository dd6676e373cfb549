"""Soak: 50 websocket clients watch while 16 simulated workers write epochs as fast as they can.

On loopback only. A real Daphne serves ``nasweb.asgi`` against a throwaway
database; 16 forked writer processes call ``with_db_retry(services.epoch_record,
...)`` exactly as the training worker does (row, sequence number, event, under
the search's epoch-order lock; no transaction around it) in a loop for ``--seconds``;
50 clients, logged in with a session cookie, watch the same search over
websockets and reconnect as the page does (asking for what they missed
after the last sequence number they saw). Reported: epochs written, events
received per client, sequence numbers each client never got (missing) or
got after a later one (out of order) — both must be zero — the gap fills the
consumers made (Daphne logs each; 0 when the layer lost nothing), and memory
over time, sampled every ``--sample-every`` seconds: Daphne's and the writers'
resident memory, Redis's ``used_memory`` and the bench database's Postgres
connections (count and their resident memory). "Flat" compares the last
sample with the first one taken after a tenth of the run (start-up done).

    .venv/bin/python bench/soak.py [--quick] [--seconds S] [--clients N] [--writers N]
    .venv/bin/python bench/soak.py --seconds 600      # the ten-minute soak
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import threading
import time

from common import (base_parser, bench_database, bench_user, busy_warning, flush_bench_redis, machine, rounded,
                    setup_django, shown, table, temp_dir, write_results)
from push_latency import free_port, gap_fills, session_cookie, start_daphne, stop
from wsclient import HandshakeError, WebSocket

METRICS = dict(train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5, seconds=0.0)
RECONNECT_S = 0.5


FLAT_TOLERANCE = 0.05
FLAT_FLOOR = 1.0  # ...or within one MB (one connection): Redis holds ~2 MB, messages in flight move it 10%


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's memory in MB: ``VmRSS`` from /proc/<pid>/status, or ``Pss``/``Pss_Anon``
    from smaps_rollup (its proportional share: forked writers and Postgres backends share
    most of their pages)."""
    try:
        for line in open(f"/proc/{pid}/{'smaps_rollup' if field.startswith('Pss') else 'status'}"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def memory_sample(daphne_pid: int, writer_pids: list[int], db_name: str) -> dict:
    """One sample of what the soak watches: RSS of Daphne and the writers, Redis's memory,
    and the bench database's Postgres backends (how many, and their RSS)."""
    import psycopg2
    import redis

    from common import PG_HOST, PG_PORT, PG_USER, REDIS_URL

    info = redis.Redis.from_url(REDIS_URL).info("memory")
    with psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres") as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [db_name])
            backends = [row[0] for row in cur.fetchall()]
    conn.close()
    def total(values):  # a process that ended between the listing and the read counts 0
        return sum(v for v in values if v == v)

    return {"daphne_rss_mb": rss_mb(daphne_pid), "writers_pss_mb": total(rss_mb(p, "Pss") for p in writer_pids),
            "redis_used_mb": info["used_memory"] / 2 ** 20, "pg_connections": len(backends),
            # Private memory only: a backend's PSS also counts its share of the shared buffers
            # it has touched, which grows with the tables, not with a leak.
            "pg_backends_anon_mb": total(rss_mb(p, "Pss_Anon") for p in backends)}


class Sampler:
    """Samples memory every ``every`` seconds in a thread while the soak runs."""

    def __init__(self, every: float, sample, active):
        self.every, self.sample, self.active, self.samples = every, sample, active, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.monotonic()

    def _run(self):
        while not self._stop.is_set() and self.active():
            self.samples.append({"t": round(time.monotonic() - self.started, 1), **self.sample()})
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)


def flatness(samples: list[dict], key: str) -> dict:
    """First sample after a tenth of the run (start-up done) against the last one."""
    if len(samples) < 2:
        return {"from": None, "to": None, "change": None, "flat": None}
    t_end = samples[-1]["t"]
    base = next(s for s in samples if s["t"] >= t_end / 10)
    start, end = base[key], samples[-1][key]
    change = (end - start) / start if start else 0.0
    return {"from": start, "to": end, "change": change,
            "flat": abs(change) <= FLAT_TOLERANCE or abs(end - start) <= FLAT_FLOOR}


def writer(candidate_id: int, go, stop_at, out):
    """Write epochs of one candidate back to back until ``stop_at``; put the count on ``out``."""
    from searches import services
    from searches.models import Candidate
    from workers.training import with_db_retry

    candidate = Candidate.objects.get(id=candidate_id)
    go.wait()
    epoch = 0
    while time.time() < stop_at.value:
        epoch += 1
        with_db_retry(services.epoch_record, candidate, epoch=epoch, **METRICS)  # as the worker calls it
    out.put(epoch)


async def watch(port, path, cookie, log: list, stats: dict, done: asyncio.Event):
    """One page: records every epoch sequence number in the order it arrives."""
    last_seq = 0
    while not done.is_set():
        ws = None
        try:
            ws = await WebSocket.connect("127.0.0.1", port, path + (f"?after={last_seq}" if last_seq else ""),
                                         cookie=cookie)
            while not done.is_set():
                try:
                    msg = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except asyncio.TimeoutError:
                    continue
                if msg is None:
                    break
                event = json.loads(msg[1])
                epochs = event.get("epochs", []) if event.get("type") == "snapshot" else (
                    [event] if event.get("type") == "epoch" else [])
                for e in epochs:
                    log.append(e["seq"])
                    last_seq = max(last_seq, e["seq"])
        except (ConnectionError, OSError, asyncio.IncompleteReadError, HandshakeError):
            pass
        finally:
            if ws is not None:
                await ws.close()
        if not done.is_set():
            stats["reconnects"] += 1
            await asyncio.sleep(RECONNECT_S)


async def run(port, search_id, cookie, clients, go, stop_at, seconds, expected_total):
    logs = [[] for _ in range(clients)]
    stats = {"reconnects": 0}
    done = asyncio.Event()
    path = f"/ws/searches/{search_id}/"
    tasks = [asyncio.create_task(watch(port, path, cookie, logs[i], stats, done)) for i in range(clients)]
    await asyncio.sleep(2)  # every client connected and joined before the writers start
    stop_at.value = time.time() + seconds
    go.set()
    await asyncio.sleep(seconds)
    total = await expected_total()
    # The server may be behind when the writers stop: wait while it still delivers
    # (progress within the last 10 s, 180 s at most) and report how long it took.
    stopped = time.monotonic()
    last_progress, last_count = stopped, -1
    while any(len(set(log)) < total for log in logs) and time.monotonic() - last_progress < 10 \
            and time.monotonic() - stopped < 180:
        count = sum(len(log) for log in logs)
        if count != last_count:
            last_progress, last_count = time.monotonic(), count
        await asyncio.sleep(0.2)
    drain = time.monotonic() - stopped
    done.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return logs, stats["reconnects"], drain


def main():
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--sample-every", type=float, default=None, help="seconds between memory samples")
    args = parser.parse_args()
    seconds = args.seconds or (5 if args.quick else 30)
    info = machine()
    with bench_database() as db_url:
        setup_django(db_url)
        from django.db import connection

        from searches import services
        from searches.models import EpochMetric

        owner = bench_user("soak")
        cookie = session_cookie(owner)
        search = services.search_create(owner=owner, name="soak", dataset="digits", space="chain",
                                        strategy="random", max_candidates=args.writers, epochs=1000,
                                        parallel=args.writers, seed=1)
        candidates = [services.candidate_claim(cid, worker=f"soak{i}", device="cpu")
                      for i, cid in enumerate(services.search_advance(search.id))]
        connection.close()  # the forked writers open their own
        port = free_port()
        log_dir = temp_dir("nasweb-bench-soak-")
        log_path = f"{log_dir}/daphne.log"
        daphne = start_daphne(db_url, port, log_path)
        ctx = mp.get_context("fork")
        go, stop_at, out = ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
        procs = [ctx.Process(target=writer, args=(c.id, go, stop_at, out)) for c in candidates]
        for p in procs:
            p.start()
        try:
            time.sleep(1)
            db_name = db_url.rsplit("/", 1)[1]
            every = args.sample_every or max(1.0, seconds / 60)
            # Sampled while the writers write (their last second left out: they exit then).
            sampler = Sampler(every, lambda: memory_sample(daphne.pid, [p.pid for p in procs], db_name),
                              lambda: not stop_at.value or time.time() < stop_at.value - 1)

            async def expected_total():
                loop = asyncio.get_running_loop()
                counts = [await loop.run_in_executor(None, lambda: out.get(timeout=120)) for _ in procs]
                return sum(counts)

            with sampler:
                logs, reconnects, drain = asyncio.run(run(port, search.id, cookie, args.clients, go, stop_at,
                                                          seconds, expected_total))
        finally:
            for p in procs:
                p.join(30)
            stop(daphne)
        fills = gap_fills(log_path)
        written = EpochMetric.objects.filter(search=search).count()
        expected = set(EpochMetric.objects.filter(search=search).values_list("seq", flat=True))
    flush_bench_redis()
    received = [len(set(log)) for log in logs]
    missing = [len(expected - set(log)) for log in logs]
    # A reconnect's snapshot may resend what was already seen: count a sequence number
    # as out of order only if it arrives late *for the first time*.
    first_late = []
    for log in logs:
        seen, seen_max, late = set(), 0, 0
        for seq in log:
            if seq not in seen and seq < seen_max:
                late += 1
            seen.add(seq)
            seen_max = max(seen_max, seq)
        first_late.append(late)
    samples = sampler.samples
    memory = {key: flatness(samples, key) for key in
              ("daphne_rss_mb", "writers_pss_mb", "redis_used_mb", "pg_connections", "pg_backends_anon_mb")}
    result = {
        "machine": info, "quick": args.quick, "seconds": seconds, "writers": args.writers, "clients": args.clients,
        "epochs_written": written, "epochs_per_second": written / seconds,
        "received_per_client_min": min(received), "received_per_client_mean": sum(received) / len(received),
        "missing_total": sum(missing), "out_of_order_total": sum(first_late), "reconnects": reconnects,
        "gap_fills": fills, "drain_seconds_after_writers_stopped": drain,
        "memory": memory, "memory_flat": all(m["flat"] is not False for m in memory.values()),
        "memory_samples": samples,
    }
    rows = [["epochs written", written], ["epochs/s written", result["epochs_per_second"]],
            ["events received per client (min / mean)", f"{min(received)} / {result['received_per_client_mean']:.1f}"],
            ["missing sequence numbers (all clients)", sum(missing)],
            ["out-of-order sequence numbers (all clients)", sum(first_late)],
            ["client reconnects", reconnects],
            ["seconds the server needed after the writers stopped", f"{drain:.1f}"],
            ["gap fills, an event after a hole (pages / holes)", f"{fills['jump_page_fills']} / {fills['jump_holes']}"],
            ["gap fills, still unsent a check (2 s) after commit (pages / holes)",
             f"{fills['late_page_fills']} / {fills['late_holes']}"]]
    labels = {"daphne_rss_mb": "Daphne RSS MB", "writers_pss_mb": f"{args.writers} writers' PSS MB",
              "redis_used_mb": "Redis used_memory MB", "pg_connections": "Postgres connections",
              "pg_backends_anon_mb": "Postgres backends' private (Pss_Anon) MB"}
    for key, m in memory.items():
        if m["from"] is not None:
            rows.append([f"{labels[key]}, after 10% / end", f"{m['from']:.1f} / {m['to']:.1f} "
                         f"({100 * m['change']:+.1f}%, {'flat' if m['flat'] else 'NOT flat'})"])
    notes = [f"{args.writers} writer processes for {seconds:.0f} s, {args.clients} websocket clients on one search; "
             "missing, out-of-order and gap fills must be 0 (gap fills: when nothing was lost); "
             f"memory flat = within {100 * FLAT_TOLERANCE:.0f}% (or {FLAT_FLOOR:.0f} MB / one connection) from a "
             "tenth of the run to its end"]
    warn = busy_warning()
    if warn:
        notes.append(warn)
    print(table("Soak: 50 watchers, 16 writers as fast as they can", ["measure", "value"], rows, notes))
    path = write_results("soak", rounded(result, 3), args.json)
    print(f"  wrote {shown(path)}")


if __name__ == "__main__":
    main()
