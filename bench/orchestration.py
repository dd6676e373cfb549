"""Orchestration overhead per candidate, as the history grows: ours against Optuna's ask/tell.

Ours, per trial, through the real services on the bench database with the
real Celery broker (Redis 13; nobody consumes the messages, so broker
delivery to a worker process is not counted):
  proposal -> claim: ``services.search_advance`` (lock the search row, read
      the history, the strategy's ask, the candidate row, the training task
      enqueued and the events published after commit), then
      ``services.candidate_claim`` (the worker's conditional UPDATE): what
      stands between the strategy's proposal and the first training step;
  full cycle: the same plus ``services.candidate_finish`` (result row, event,
      the next advance enqueued), the bookkeeping one trial costs in all.
Optuna: ``study.ask(fixed_distributions)`` + ``study.tell(trial, value)``
with ``RDBStorage`` on the same Postgres (a throwaway database), the same
14 categorical parameters, one long-lived process.

Both use random sampling (ours: ``random``, which skips architectures
already in the history; Optuna: ``RandomSampler``), so the numbers are
bookkeeping, not a sampler's arithmetic. At each size N the history is first
filled to N - w trials by bulk inserts (setup, not timed), then w trials are
timed one by one after one untimed warm-up trial; the cost per trial is the
median of those w. The first, cold trial after the fill is shown too: for
Optuna it is the one that loads the whole study into its cache.

    .venv/bin/python bench/orchestration.py [--quick] [--sizes 100,1000,10000]
"""
from __future__ import annotations

import cProfile
import io
import pstats
import random
import time

from common import (Timer, base_parser, bench_database, bench_user, busy_warning, flush_bench_redis, machine,
                    median, rounded, setup_django, shown, table, throwaway_database, write_results)

SPACE_SETTINGS = {"max_blocks": 5}  # 14 decisions, millions of architectures: room for 10,000 distinct
FLAT_LIMIT = 2.0  # cost at the largest size over the smallest above this: "does not stay flat"


class Parts:
    """Wall time spent in named functions during the timed trials (wrappers, restored after)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.undo = []

    def wrap(self, owner, attr, label):
        original = getattr(owner, attr)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start

        setattr(owner, attr, timed)
        self.undo.append((owner, attr, original))

    def restore(self):
        for owner, attr, original in reversed(self.undo):
            setattr(owner, attr, original)


# --- ours ---------------------------------------------------------------------

class Ours:
    def __init__(self, owner, max_trials: int):
        from searches import services
        from searches.nas import get_space

        self.space = get_space("chain", SPACE_SETTINGS)
        self.search = services.search_create(
            owner=owner, name="bench orchestration", dataset="digits", space="chain",
            space_settings=SPACE_SETTINGS, strategy="random", max_candidates=max_trials + 10,
            epochs=1, parallel=1, seed=11)
        self.count = 0
        self.rng = random.Random(0)
        self.seen: set[str] = set()

    def fill_to(self, n: int) -> None:
        """Bench setup: finished candidates written in bulk, as a long search would have left them."""
        from django.utils import timezone

        from searches.models import Candidate

        rows, now = [], timezone.now()
        while self.count + len(rows) < n:
            arch = self.space.sample(self.rng)
            h = self.space.arch_hash(arch)
            if h in self.seen:
                continue
            self.seen.add(h)
            acc = self.rng.random()
            rows.append(Candidate(search=self.search, index=self.count + len(rows), arch=arch, arch_hash=h,
                                  genotype=self.space.genotype(arch)[:500], state=Candidate.State.FINISHED,
                                  worker="bench", epochs_done=1, best_val_accuracy=acc, final_val_accuracy=acc,
                                  test_accuracy=acc, param_count=1000, started_at=now, finished_at=now))
        Candidate.objects.bulk_create(rows, batch_size=2000)
        self.count = n

    def trial(self) -> tuple[float, float]:
        """One candidate's bookkeeping; returns (proposal -> claim, finish) in seconds."""
        from searches import services

        start = time.perf_counter()
        ids = services.search_advance(self.search.id)
        if len(ids) != 1:
            raise RuntimeError(f"search_advance created {len(ids)} candidates, expected 1")
        candidate = services.candidate_claim(ids[0], worker="bench-worker", device="cpu")
        claimed = time.perf_counter()
        services.candidate_finish(candidate, test_accuracy=0.5, test_macro_recall=0.5, test_macro_f1=0.5,
                                  confusion_matrix=[], checkpoint_path="", checkpoint_size=0, checkpoint_sha256="")
        self.count += 1
        self.seen.add(candidate.arch_hash)
        return claimed - start, time.perf_counter() - claimed

    def parts(self) -> Parts:
        from searches import events, selectors, services
        from searches.nas.strategy import RandomSearch
        from searches.services import controller

        parts = Parts()
        parts.wrap(controller, "search_history", "read history (ORM -> Trials)")  # where the controller calls it
        parts.wrap(RandomSearch, "ask", "strategy ask")
        parts.wrap(selectors, "state_counts", "state counts (GROUP BY)")
        parts.wrap(services.celery_app, "send_task", "Celery enqueue")
        parts.wrap(events, "_send", "events to Redis")
        parts.wrap(services, "candidate_claim", "claim")
        parts.wrap(services, "candidate_finish", "finish (incl. its enqueue, events)")
        return parts


# --- Optuna -------------------------------------------------------------------

class OptunaRDB:
    def __init__(self, url: str, space):
        import optuna
        from optuna.distributions import CategoricalDistribution

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.url = url.replace("postgres://", "postgresql+psycopg2://", 1)
        self.storage = optuna.storages.RDBStorage(self.url)
        self.study = optuna.create_study(storage=self.storage, sampler=optuna.samplers.RandomSampler(seed=0),
                                         direction="maximize")
        self.distributions = {d.name: CategoricalDistribution(d.choices) for d in space.decisions}
        self.count = 0
        self.pg_url = url

    def fill_to(self, n: int) -> None:
        """Bench setup: complete trials inserted with SQL into Optuna's own tables (as add_trials
        would leave them, only faster), then a fresh Study object, as a restarted process has."""
        import optuna
        import psycopg2
        from optuna.distributions import distribution_to_json

        if n <= self.count:
            return
        study_id = self.study._study_id
        params = [(name, len(d.choices), distribution_to_json(d)) for name, d in self.distributions.items()]
        conn = psycopg2.connect(self.pg_url)
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO trials (number, study_id, state, datetime_start, datetime_complete) "
                        "SELECT g, %s, 'COMPLETE', now(), now() FROM generate_series(%s, %s) AS g",
                        [study_id, self.count, n - 1])
            for name, k, dist_json in params:
                cur.execute("INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
                            "SELECT trial_id, %s, floor(random() * %s), %s FROM trials "
                            "WHERE study_id = %s AND number BETWEEN %s AND %s",
                            [name, k, dist_json, study_id, self.count, n - 1])
            cur.execute("INSERT INTO trial_values (trial_id, objective, value, value_type) "
                        "SELECT trial_id, 0, random(), 'FINITE' FROM trials "
                        "WHERE study_id = %s AND number BETWEEN %s AND %s", [study_id, self.count, n - 1])
        conn.close()
        self.count = n
        self.storage = optuna.storages.RDBStorage(self.url)
        self.study = optuna.load_study(study_name=self.study.study_name, storage=self.storage,
                                       sampler=optuna.samplers.RandomSampler(seed=n))

    def trial(self) -> float:
        start = time.perf_counter()
        trial = self.study.ask(self.distributions)
        self.study.tell(trial, random.random())
        self.count += 1
        return time.perf_counter() - start


def profile_of(ours: Ours, calls: int = 5, top: int = 10) -> list[str]:
    """cProfile of a few of our trials at the current history size: the top functions by own time."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        ours.trial()
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime")
    lines = []
    for (file, line, func), (cc, nc, tt, ct, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]:
        where = file.split("site-packages/")[-1].replace("/work/main/", "")
        lines.append(f"{1000 * tt / calls:7.2f} ms own, {1000 * ct / calls:7.2f} ms cum, {nc // calls:6d} calls  "
                     f"{func} ({where}:{line})")
    return lines


def main():
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=None, help="history sizes (default 100,1000,10000; quick 100,1000)")
    parser.add_argument("--window", type=int, default=None, help="timed trials per size")
    args = parser.parse_args()
    sizes = [int(s) for s in (args.sizes or ("100,1000" if args.quick else "100,1000,10000")).split(",")]
    window = args.window or (15 if args.quick else 40)
    info = machine()
    rows, results, profile = [], [], []
    with bench_database() as db_url, throwaway_database() as optuna_url:
        setup_django(db_url)
        ours = Ours(bench_user(), max(sizes))
        theirs = OptunaRDB(optuna_url, ours.space)
        for size in sorted(sizes):
            w = min(window, size // 2)
            with Timer() as fill_ours:
                ours.fill_to(size - w - 1)
            with Timer() as fill_theirs:
                theirs.fill_to(size - w - 1)
            ours_cold = sum(ours.trial())  # untimed warm-up, shown as the cold trial
            theirs_cold = theirs.trial()
            parts = ours.parts()
            try:
                timings = [ours.trial() for _ in range(w)]
            finally:
                parts.restore()
            optuna_times = [theirs.trial() for _ in range(w)]
            to_claim = [a for a, _ in timings]
            full = [a + b for a, b in timings]
            r = {"history": size, "timed_trials": w, "history_range": [size - w, size - 1],
                 "ours_proposal_to_claim_ms": 1000 * median(to_claim), "ours_full_cycle_ms": 1000 * median(full),
                 "optuna_ask_tell_ms": 1000 * median(optuna_times),
                 "ours_cold_ms": 1000 * ours_cold, "optuna_cold_ms": 1000 * theirs_cold,
                 "ours_parts_ms_per_trial": {k: 1000 * v / w for k, v in parts.seconds.items()},
                 "fill_seconds": {"ours": fill_ours.seconds, "optuna": fill_theirs.seconds}}
            r["optuna_over_ours_full"] = r["optuna_ask_tell_ms"] / r["ours_full_cycle_ms"]
            results.append(r)
            rows.append([f"{size:,}", r["ours_proposal_to_claim_ms"], r["ours_full_cycle_ms"],
                         r["optuna_ask_tell_ms"], r["optuna_over_ours_full"], r["ours_cold_ms"], r["optuna_cold_ms"]])
        first, last = results[0], results[-1]
        growth_ours = last["ours_full_cycle_ms"] / first["ours_full_cycle_ms"]
        growth_theirs = last["optuna_ask_tell_ms"] / first["optuna_ask_tell_ms"]
        flat = growth_ours <= FLAT_LIMIT
        if not flat:
            profile = profile_of(ours)
    flush_bench_redis()
    notes = [f"ms per trial, median of the timed trials at each history size (w = {window}, fewer at 100); "
             "Optuna/ours = Optuna ask+tell over our full cycle (above 1: ours is cheaper)",
             f"from {first['history']:,} to {last['history']:,} trials our full cycle grew {growth_ours:.1f}x, "
             f"Optuna's ask+tell {growth_theirs:.1f}x"]
    if flat:
        notes.append("ours stays flat (within 2x) as the history grows")
    else:
        notes.append("OURS DOES NOT STAY FLAT: search_advance reads the whole history on every call "
                     "(services.search_history + the strategy's ask over it + state_counts); at "
                     f"{last['history']:,} trials one trial costs {last['ours_full_cycle_ms']:.0f} ms "
                     f"against Optuna's {last['optuna_ask_tell_ms']:.0f} ms")
    parts_last = last["ours_parts_ms_per_trial"]
    notes.append(f"where our time goes at {last['history']:,} (ms/trial): " +
                 ", ".join(f"{k} {v:.2f}" for k, v in sorted(parts_last.items(), key=lambda kv: -kv[1])))
    if profile:
        notes.append(f"cProfile of our trial at {last['history']:,} (top by own time):")
        notes += [f"  {line}" for line in profile]
    notes.append("cold = the first trial after the bulk fill (Optuna loads the whole study into its cache then)")
    warn = busy_warning()
    if warn:
        notes.append(warn)
    print(table("Orchestration: per-trial bookkeeping as the history grows (ms per trial)",
                ["history", "ours propose->claim", "ours full cycle", "Optuna ask+tell", "Optuna/ours",
                 "ours cold", "Optuna cold"], rows, notes))
    path = write_results("orchestration", rounded({
        "machine": info, "quick": args.quick, "sizes": sizes, "rows": results, "flat": flat,
        "growth": {"ours": growth_ours, "optuna": growth_theirs}, "profile_at_largest": profile,
        "notes": notes}, 3), args.json)
    print(f"  wrote {shown(path)}")


if __name__ == "__main__":
    main()
