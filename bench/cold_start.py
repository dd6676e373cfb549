"""First use after a restart: ours and Optuna's, each in a fresh Python process.

A long search is left in Postgres (N finished trials, bulk-inserted as
``bench/orchestration.py`` fills them), for ours and for Optuna (``RDBStorage``
on the same Postgres). Then, for each, a new Python process is started, as a
restarted controller is, and it times:

  start-up: the imports and set-up the process needs before its first trial
      (ours: ``django.setup()``; Optuna: ``import optuna`` + ``RDBStorage``);
  first trial: ours ``services.search_advance`` + ``candidate_claim`` +
      ``candidate_finish`` (what the control worker and the training worker do
      for one candidate; nothing is kept in memory between processes, the
      history comes from Postgres); Optuna ``load_study`` + ``ask`` + ``tell``;
  second trial: the same once more in that process (warm).

Each side runs ``--repeats`` fresh processes per size; the median is shown.

    .venv/bin/python bench/cold_start.py [--quick] [--sizes 1000,10000] [--repeats 3]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

T0 = time.perf_counter()  # before any import of the project or of Optuna

from common import (ROOT, base_parser, bench_database, bench_env, bench_user, busy_warning,  # noqa: E402
                    flush_bench_redis, machine, median, rounded, setup_django, shown, table, throwaway_database,
                    write_results)


def child_ours(db_url: str, search_id: int) -> dict:
    setup_django(db_url)
    from searches import services

    ready = time.perf_counter()
    trials = []
    for _ in range(2):
        start = time.perf_counter()
        ids = services.search_advance(search_id)
        if len(ids) != 1:
            raise RuntimeError(f"search_advance created {len(ids)} candidates, expected 1")
        candidate = services.candidate_claim(ids[0], worker="bench-restart", device="cpu")
        services.candidate_finish(candidate, test_accuracy=0.5, test_macro_recall=0.5, test_macro_f1=0.5,
                                  confusion_matrix=[], checkpoint_path="", checkpoint_size=0, checkpoint_sha256="")
        trials.append(time.perf_counter() - start)
    return {"startup_s": ready - T0, "first_s": trials[0], "second_s": trials[1]}


def child_optuna(url: str, study_name: str, distributions_json: str) -> dict:
    import random

    import optuna
    from optuna.distributions import json_to_distribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url)
    distributions = {k: json_to_distribution(v) for k, v in json.loads(distributions_json).items()}
    ready = time.perf_counter()
    trials, study = [], None
    for _ in range(2):
        start = time.perf_counter()
        if study is None:
            study = optuna.load_study(study_name=study_name, storage=storage,
                                      sampler=optuna.samplers.RandomSampler())
        trial = study.ask(distributions)
        study.tell(trial, random.random())
        trials.append(time.perf_counter() - start)
    return {"startup_s": ready - T0, "first_s": trials[0], "second_s": trials[1]}


def fresh_process(args: list[str], db_url: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], cwd=ROOT, env=bench_env(db_url),
                         capture_output=True, text=True, check=False, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, *rest = sys.argv[2:]
        result = child_ours(rest[0], int(rest[1])) if kind == "ours" else child_optuna(*rest)
        print(json.dumps(result))
        return
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=None, help="history sizes (default 1000,10000; quick 1000)")
    parser.add_argument("--repeats", type=int, default=None, help="fresh processes per side and size")
    args = parser.parse_args()
    sizes = [int(s) for s in (args.sizes or ("1000" if args.quick else "1000,10000")).split(",")]
    repeats = args.repeats or (2 if args.quick else 3)
    info = machine()
    from optuna.distributions import distribution_to_json

    from orchestration import OptunaRDB, Ours

    rows, results = [], []
    with bench_database() as db_url, throwaway_database() as optuna_url:
        setup_django(db_url)
        ours = Ours(bench_user("restart"), max(sizes) + 2 * repeats * len(sizes))
        theirs = OptunaRDB(optuna_url, ours.space)
        dists = json.dumps({k: distribution_to_json(d) for k, d in theirs.distributions.items()})
        from django.db import connections

        for size in sorted(sizes):
            ours.fill_to(size)
            theirs.fill_to(size)
            connections.close_all()
            runs = {"ours": [], "optuna": []}
            for _ in range(repeats):  # alternated, so load on the machine hits both alike
                runs["ours"].append(fresh_process(["ours", db_url, str(ours.search.id)], db_url))
                runs["optuna"].append(fresh_process(["optuna", theirs.url, theirs.study.study_name, dists], db_url))
            ours.count = theirs.count = size + 2 * repeats  # each fresh process added two trials
            from searches.models import Candidate

            ours.seen |= set(Candidate.objects.filter(search=ours.search).values_list("arch_hash", flat=True))
            r = {"history": size, "repeats": repeats}
            for side, measured in runs.items():
                for key in ("startup_s", "first_s", "second_s"):
                    r[f"{side}_{key[:-2]}_ms"] = 1000 * median([m[key] for m in measured])
            r["optuna_over_ours_first"] = r["optuna_first_ms"] / r["ours_first_ms"]
            r["optuna_over_ours_with_startup"] = ((r["optuna_startup_ms"] + r["optuna_first_ms"])
                                                  / (r["ours_startup_ms"] + r["ours_first_ms"]))
            results.append(r)
            rows.append([f"{size:,}", r["ours_startup_ms"], r["ours_first_ms"], r["ours_second_ms"],
                         r["optuna_startup_ms"], r["optuna_first_ms"], r["optuna_second_ms"],
                         r["optuna_over_ours_first"], r["optuna_over_ours_with_startup"]])
    flush_bench_redis()
    notes = [f"each side in a fresh Python process per measurement (median of {repeats}); start-up = imports and "
             "set-up before the first trial (ours: django.setup(); Optuna: import + RDBStorage)",
             "first trial: ours search_advance + candidate_claim + candidate_finish, the history read from "
             "Postgres; Optuna load_study + ask + tell; second = the next one in the same process",
             "random sampling on both sides (ours 'random', Optuna RandomSampler): bookkeeping, not a sampler"]
    warn = busy_warning()
    if warn:
        notes.append(warn)
    print(table("First use after a restart, each in a fresh process (ms)",
                ["history", "ours start-up", "ours first trial", "ours second", "Optuna start-up",
                 "Optuna first (load_study+ask+tell)", "Optuna second", "Optuna/ours first", "Optuna/ours incl. start-up"], rows, notes))
    path = write_results("cold_start", rounded({"machine": info, "quick": args.quick, "rows": results,
                                                "notes": notes}, 3), args.json)
    print(f"  wrote {shown(path)}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
