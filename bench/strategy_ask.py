"""Time of one ``ask`` per strategy as the history grows: 100, 1,000 and 10,000 trials.

The history is what the controller hands over: trials of the full five-op
cell space carrying their stored hash, mostly finished (scores are a fixed
function of the architecture), the last three running. Each strategy is
asked for one architecture ``--repeats`` times per history length, with
one more trial each time (after an untimed first ask, which fills the
caches as a controller's first ask does); the table shows the median and the largest ask in
CPU and wall milliseconds and the median CPU time as a ratio to random
search's, measured in the same run. The baseline row "TPE via Optuna (before)" is the previous TPE:
an Optuna study rebuilt from the whole history at every ask (only at the
two shorter histories; it is what the numpy TPE replaced).

The cell space (five ops) serves histories up to 1,000; 10,000 uses the
MobileNet space, since the cell space has only 10,372 distinct cells.

    python -m bench.strategy_ask                   # writes bench/results/strategy_ask.json
    python -m bench.strategy_ask --sizes 100 1000 --repeats 5
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from searches.nas.cell import CellSpace  # noqa: E402
from searches.nas.mobile import MobileSpace  # noqa: E402
from searches.nas.registry import STRATEGIES, get_strategy  # noqa: E402
from searches.nas.strategy import Trial, strategy_rng  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "strategy_ask.json"
SPACE = CellSpace(channels=4)
# 10,372 distinct cells: a history of 10,000 would nearly use the cell space up, and every
# strategy would then be timing its search for the last few cells. The MobileNet space has 3.8M.
LARGE_SPACE = MobileSpace()


def space_for(size: int):
    return SPACE if size <= 1000 else LARGE_SPACE


def make_history(size: int, seed: int = 0) -> list[Trial]:
    """``size`` distinct trials; the last three running, the rest finished."""
    space = space_for(size)
    rng, seen, history = random.Random(seed), set(), []
    while len(history) < size:
        arch = space.sample(rng)
        h = space.arch_hash(arch)
        if h in seen:
            continue
        seen.add(h)
        score = int(h[:6], 16) / 16 ** 6
        running = len(history) >= size - 3
        history.append(Trial(arch, "running" if running else "finished",
                             score=None if running else score, arch_hash=h))
    return history


def optuna_tpe_ask(history: list[Trial], rng: random.Random) -> dict:
    """The TPE ask before this change: a fresh Optuna study holding the whole history."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = [d.name for d in SPACE.decisions]
    dists = {d.name: CategoricalDistribution(tuple(range(len(d.choices)))) for d in SPACE.decisions}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = optuna.samplers.TPESampler(seed=rng.getrandbits(32), n_startup_trials=10, constant_liar=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for t in history:
        params = dict(zip(names, SPACE.encode(SPACE.canonical(t.arch))))
        study.add_trial(create_trial(value=t.score, params=params, distributions=dists) if t.finished else
                        create_trial(state=TrialState.RUNNING, params=params, distributions=dists))
    trial = study.ask(dists)
    return SPACE.decode([trial.params[n] for n in names])


def time_asks(ask, history, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of the asks at histories ``len - repeats + 1 .. len``, after one
    untimed ask at ``len - repeats``: each ask sees one more trial than the last, as in a running
    search. CPU time is the figure to trust on a shared machine (wall time includes waiting)."""
    wall, cpu = [], []
    for length in range(len(history) - repeats, len(history) + 1):
        started, started_cpu = time.perf_counter(), time.process_time()
        ask(history[:length], strategy_rng(0, length))
        if length > len(history) - repeats:
            wall.append(1000 * (time.perf_counter() - started))
            cpu.append(1000 * (time.process_time() - started_cpu))
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    names = ["random"] + sorted(n for n in STRATEGIES if n != "random")
    results: dict = {}
    for size in args.sizes:
        history = make_history(size)
        row = {}
        for name in names:
            strategy = get_strategy(name)
            row[name] = time_asks(lambda h, rng: strategy.ask(space_for(size), h, 1, rng), history, args.repeats)
        if size <= 1000:
            row["tpe_optuna_before"] = time_asks(optuna_tpe_ask, history, min(args.repeats, 3))
        base = statistics.median(row["random"][1])
        results[str(size)] = {name: {"median_ms": round(statistics.median(w), 3), "max_ms": round(max(w), 3),
                                     "cpu_median_ms": round(statistics.median(c), 3),
                                     "cpu_max_ms": round(max(c), 3),
                                     "cpu_ratio_to_random": round(statistics.median(c) / max(base, 1e-3), 2)}
                              for name, (w, c) in row.items()}
        print(f"history {size} ({space_for(size).name} space):   CPU ms median / max     wall ms median / max   CPU / random")
        for name, r in results[str(size)].items():
            print(f"  {name:<20}{r['cpu_median_ms']:>10.2f} / {r['cpu_max_ms']:<10.2f}{r['median_ms']:>10.2f} / "
                  f"{r['max_ms']:<10.2f}{r['cpu_ratio_to_random']:>8.1f}")
    args.out.write_text(json.dumps({"sizes": args.sizes, "repeats": args.repeats, "asks": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
