"""Soak: 50 websocket clients watch while 16 simulated workers write epochs as fast as they can.

On loopback only. A real Daphne serves ``nasweb.asgi`` against a throwaway
database; 16 forked writer processes call ``services.epoch_record`` (the
worker's own path: row, sequence number, event) in a loop for ``--seconds``;
50 clients, logged in with a session cookie, watch the same search over
websockets and reconnect as the page does (asking for what they missed
after the last sequence number they saw). Reported: epochs written, events
received per client, sequence numbers each client never got (missing) or
got after a later one (out of order) — both must be zero — and Daphne's
resident memory at the start and the end.

    .venv/bin/python bench/soak.py [--quick] [--seconds S] [--clients N] [--writers N]
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time

from common import (base_parser, bench_database, bench_user, busy_warning, flush_bench_redis, machine, rounded,
                    setup_django, shown, table, temp_dir, write_results)
from push_latency import free_port, session_cookie, start_daphne, stop
from wsclient import HandshakeError, WebSocket

METRICS = dict(train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5, seconds=0.0)
RECONNECT_S = 0.5


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def writer(candidate_id: int, go, stop_at, out):
    """Write epochs of one candidate back to back until ``stop_at``; put the count on ``out``."""
    from searches import services
    from searches.models import Candidate

    candidate = Candidate.objects.get(id=candidate_id)
    go.wait()
    epoch = 0
    while time.time() < stop_at.value:
        epoch += 1
        services.epoch_record(candidate, epoch=epoch, **METRICS)
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
        daphne = start_daphne(db_url, port, f"{log_dir}/daphne.log")
        ctx = mp.get_context("fork")
        go, stop_at, out = ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
        procs = [ctx.Process(target=writer, args=(c.id, go, stop_at, out)) for c in candidates]
        for p in procs:
            p.start()
        try:
            time.sleep(1)
            rss_start = rss_mb(daphne.pid)

            async def expected_total():
                loop = asyncio.get_running_loop()
                counts = [await loop.run_in_executor(None, lambda: out.get(timeout=120)) for _ in procs]
                return sum(counts)

            logs, reconnects, drain = asyncio.run(run(port, search.id, cookie, args.clients, go, stop_at, seconds,
                                               expected_total))
            rss_end = rss_mb(daphne.pid)
        finally:
            for p in procs:
                p.join(30)
            stop(daphne)
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
    result = {
        "machine": info, "quick": args.quick, "seconds": seconds, "writers": args.writers, "clients": args.clients,
        "epochs_written": written, "epochs_per_second": written / seconds,
        "received_per_client_min": min(received), "received_per_client_mean": sum(received) / len(received),
        "missing_total": sum(missing), "out_of_order_total": sum(first_late), "reconnects": reconnects,
        "daphne_rss_mb_start": rss_start, "daphne_rss_mb_end": rss_end,
        "drain_seconds_after_writers_stopped": drain,
    }
    rows = [["epochs written", written], ["epochs/s written", result["epochs_per_second"]],
            ["events received per client (min / mean)", f"{min(received)} / {result['received_per_client_mean']:.1f}"],
            ["missing sequence numbers (all clients)", sum(missing)],
            ["out-of-order sequence numbers (all clients)", sum(first_late)],
            ["client reconnects", reconnects],
            ["seconds the server needed after the writers stopped", f"{drain:.1f}"],
            ["Daphne RSS MB at start / end", f"{rss_start:.0f} / {rss_end:.0f}"]]
    notes = [f"{args.writers} writer processes for {seconds:.0f} s, {args.clients} websocket clients on one search; "
             "missing and out-of-order must be 0"]
    warn = busy_warning()
    if warn:
        notes.append(warn)
    print(table("Soak: 50 watchers, 16 writers as fast as they can", ["measure", "value"], rows, notes))
    path = write_results("soak", rounded(result, 3), args.json)
    print(f"  wrote {shown(path)}")


if __name__ == "__main__":
    main()
