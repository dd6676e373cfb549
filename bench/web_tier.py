"""Web tier: a cheap page's latency while heavy requests run, one Daphne against gunicorn.

A large search (``--candidates``, filled as ``bench/dashboard.py`` fills them) and a small
one are written to the bench database. Each server serves ``nasweb.asgi`` against it:

  one Daphne process (the old ``make demo``), and
  gunicorn with uvicorn workers as ``make demo`` and compose start it
  (``gunicorn -c nasweb/gunicorn_conf.py``; ``WEB_CONCURRENCY`` processes, default the
  gunicorn_conf default for this machine).

Per server: the heavy request alone (the large search's Pareto data,
``/searches/<id>/scatter.json``), the cheap page alone (the small search's architectures
page), then the cheap page again, one request every 100 ms, while ``--heavy`` clients
request the Pareto data back to back. Every request is a fresh connection with the
session cookie; the time is to the last byte.

    .venv/bin/python bench/web_tier.py [--quick] [--candidates N] [--heavy 8]
"""
from __future__ import annotations

import asyncio
import os
import sys
import time

from common import (ROOT, base_parser, bench_database, bench_env, bench_user, busy_warning, flush_bench_redis,
                    machine, percentile, rounded, setup_django, shown, table, temp_dir, write_results)
from push_latency import free_port, session_cookie, stop

CHEAP_REQUESTS = 40
ALONE_REQUESTS = 15


def start_server(kind: str, db_url: str, port: int, log_path: str, processes: int | None):
    import socket
    import subprocess

    env = bench_env(db_url)
    if kind == "daphne":
        args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "nasweb.asgi:application"]
    else:
        args = [sys.executable, "-m", "gunicorn", "-c", "nasweb/gunicorn_conf.py", "-b", f"127.0.0.1:{port}",
                "nasweb.asgi:application"]
        if processes:
            env["WEB_CONCURRENCY"] = str(processes)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} exited early; see {log_path}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    stop(proc)
    raise TimeoutError(f"{kind} did not open port {port}")


async def get(port: int, path: str, cookie: str) -> float:
    """One GET on a fresh connection; seconds to the last byte. Raises unless 200."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
                      "Connection: close\r\n\r\n").encode())
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    status = raw.split(b"\r\n", 1)[0]
    if b" 200 " not in status:
        raise RuntimeError(f"GET {path}: {status.decode(errors='replace')}")
    return time.perf_counter() - start


async def measure(port: int, cookie: str, heavy_path: str, cheap_path: str, heavy: int) -> dict:
    for path in (heavy_path, cheap_path):  # warm: the first request of a process imports and connects
        for _ in range(3):
            await get(port, path, cookie)
    heavy_alone = [await get(port, heavy_path, cookie) for _ in range(5)]
    cheap_alone = [await get(port, cheap_path, cookie) for _ in range(ALONE_REQUESTS)]
    stop_heavy = asyncio.Event()
    heavy_times: list[float] = []

    async def hammer():
        while not stop_heavy.is_set():
            heavy_times.append(await get(port, heavy_path, cookie))

    hammers = [asyncio.create_task(hammer()) for _ in range(heavy)]
    await asyncio.sleep(1.0)  # every heavy client has a request in flight
    cheap = []
    for _ in range(CHEAP_REQUESTS):
        cheap.append(await get(port, cheap_path, cookie))
        await asyncio.sleep(0.1)
    stop_heavy.set()
    await asyncio.gather(*hammers)
    return {"heavy_alone_p50_ms": 1000 * percentile(heavy_alone, 50),
            "alone_p50_ms": 1000 * percentile(cheap_alone, 50), "alone_p99_ms": 1000 * percentile(cheap_alone, 99),
            "p50_ms": 1000 * percentile(cheap, 50), "p99_ms": 1000 * percentile(cheap, 99),
            "max_ms": 1000 * max(cheap), "heavy_under_load_p50_ms": 1000 * percentile(heavy_times, 50),
            "heavy_requests": len(heavy_times)}


def main():
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=None, help="the large search (default 50,000; quick 5,000)")
    parser.add_argument("--heavy", type=int, default=8, help="clients requesting the Pareto data back to back")
    parser.add_argument("--processes", type=int, default=None, help="WEB_CONCURRENCY for gunicorn")
    args = parser.parse_args()
    n = args.candidates or (5000 if args.quick else 50000)
    info = machine()
    from dashboard import _bench_search, fill_search

    rows, results = [], []
    with bench_database() as db_url:
        setup_django(db_url)
        user = bench_user("web")
        cookie = session_cookie(user)
        big, small = _bench_search(user, n, 10), _bench_search(user, 100, 10)
        fill_search(big, n, epochs=10)
        fill_search(small, 100, epochs=10)
        from django.db import connection, connections

        with connection.cursor() as cur:
            # What autovacuum does soon after a bulk load (as bench/dashboard.py does; this
            # machine's shared Postgres runs with autovacuum off): statistics for the planner
            # and the visibility map that lets the scatter read its index alone.
            cur.execute("VACUUM ANALYZE")
        connections.close_all()
        heavy_path, cheap_path = f"/searches/{big.id}/scatter.json?x=params", f"/searches/{small.id}/architectures/"
        log_dir = temp_dir("nasweb-bench-web-")
        import runpy

        default = runpy.run_path(str(ROOT / "nasweb" / "gunicorn_conf.py"))["workers"]
        servers = [("daphne", "one Daphne process", None),
                   ("gunicorn", f"gunicorn, {args.processes or default} uvicorn processes", args.processes)]
        for kind, label, processes in servers:
            port = free_port()
            proc = start_server(kind, db_url, port, f"{log_dir}/{kind}.log", processes)
            try:
                r = asyncio.run(measure(port, cookie, heavy_path, cheap_path, args.heavy))
            finally:
                stop(proc)
            r.update({"server": label, "heavy": args.heavy, "candidates": n,
                      "cheap_path": "the small search's architectures page",
                      "heavy_path": f"the Pareto data (scatter.json) of {n:,} candidates"})
            results.append(r)
            rows.append([label, r["heavy_alone_p50_ms"], r["alone_p50_ms"], r["alone_p99_ms"], r["p50_ms"],
                         r["p99_ms"], r["max_ms"], r["heavy_under_load_p50_ms"]])
    flush_bench_redis()
    notes = [f"heavy = GET {heavy_path.split('?')[0].replace(str(big.id), '<id>')} ({n:,} candidates), "
             f"{args.heavy} clients back to back; cheap = the architectures page of a 100-candidate search, "
             f"{CHEAP_REQUESTS} requests 100 ms apart; ms to the last byte, fresh connection each",
             "goal: the cheap page's p99 < 100 ms while the heavy requests run",
             "the database is vacuumed and analysed after the fill, as autovacuum would"]
    warn = busy_warning()
    if warn:
        notes.append(warn)
    print(table("Web tier: a cheap page while heavy requests run (ms)",
                ["server", "heavy alone p50", "cheap alone p50", "cheap alone p99", "cheap under load p50",
                 "cheap under load p99", "max", "heavy under load p50"], rows, notes))
    path = write_results("web_tier", rounded({"machine": info, "quick": args.quick, "rows": results,
                                              "notes": notes}, 3), args.json)
    print(f"  wrote {shown(path)}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
