"""Run every benchmark, print one table each, write bench/results/<name>.json.

    .venv/bin/python bench/run_all.py            # the full run (under 15 minutes on 2 cores)
    .venv/bin/python bench/run_all.py --quick    # the short one (under 2 minutes)
    .venv/bin/python bench/run_all.py --only push_latency,orchestration

One throwaway Postgres database is created and migrated for the whole run
and handed to each benchmark in NASWEB_BENCH_DATABASE_URL (dropped at the
end); Redis database 13 and the channel prefix ``nasweb-bench`` keep the
run apart from a demo or a test session. Each benchmark runs in its own
process and measures its baseline in that same process.

``bench/dashboard.py`` (the dashboard issue's), when it exists, runs last in
the same environment: ``--sizes 2000 --loads 1 --event-rates 100 300 1000`` in
a quick run, its defaults (10,000 and 50,000 candidates) in a full one.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from common import (ROOT, bench_env, create_database, database_url, drop_database, flush_bench_redis, machine,
                    migrate, write_results)

BENCHMARKS = ["training_overhead", "data_pipeline", "push_latency", "orchestration", "cold_start", "web_tier",
              "soak"]
OPTIONAL = ["dashboard"]  # written with the dashboard issue; run when present
# Arguments for (quick, full) runs; by default "--quick" and nothing (and "--quick" for any
# benchmark that has it).
ARGS = {"dashboard": (["--sizes", "2000", "--loads", "1", "--event-rates", "100", "300", "1000"], [])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    args = parser.parse_args()
    names = BENCHMARKS + [n for n in OPTIONAL if (ROOT / "bench" / f"{n}.py").exists()]
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            parser.error(f"unknown benchmark(s) {unknown}; choose from {names}")
        names = wanted
    limit = 150 if args.quick else 600  # seconds per benchmark before it is stopped
    started = time.monotonic()
    info = machine()
    print(f"NASWeb benchmarks ({'quick' if args.quick else 'full'}) on {info['cpu']}, {info['cores']} cores, "
          f"Python {info['python']}, torch {info.get('torch', '?')}; load average {info['load_avg_start']}",
          flush=True)
    db_name = create_database()
    summary = []
    try:
        t_migrate = time.monotonic()
        migrate(database_url(db_name))
        print(f"bench database {db_name} migrated in {time.monotonic() - t_migrate:.0f} s\n", flush=True)
        env = bench_env(database_url(db_name))
        env["NASWEB_BENCH_DATABASE_URL"] = database_url(db_name)
        for name in names:
            quick_args, full_args = ARGS.get(name, (["--quick"], []))
            if '"--quick"' in (ROOT / "bench" / f"{name}.py").read_text():
                quick_args = ["--quick"]  # it has a quick mode of its own now
            cmd = [sys.executable, str(ROOT / "bench" / f"{name}.py")] + (quick_args if args.quick else full_args)
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
            try:
                rc = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                proc.terminate()  # SIGTERM: the benchmark stops its servers and drops its databases
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                rc = "timeout"
            except BaseException:
                proc.terminate()
                proc.wait(30)
                raise
            seconds = time.monotonic() - t0
            summary.append({"benchmark": name, "status": "ok" if rc == 0 else f"failed ({rc})",
                            "seconds": round(seconds, 1)})
            print(f"[{name}: {'ok' if rc == 0 else f'FAILED ({rc})'} in {seconds:.0f} s]\n", flush=True)
    finally:
        drop_database(db_name)
        flush_bench_redis()
    total = time.monotonic() - started
    print("run_all: " + ", ".join(f"{s['benchmark']} {s['status']} {s['seconds']:.0f} s" for s in summary)
          + f"; total {total:.0f} s")
    write_results("run_all", {"machine": info, "quick": args.quick, "benchmarks": summary,
                              "total_seconds": round(total, 1)})
    if any(s["status"] != "ok" for s in summary):
        sys.exit(1)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.chdir(ROOT)
    main()
