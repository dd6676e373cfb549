"""Every search strategy against the digits cell table: lookups only, no training.

Each strategy runs a sequential search (one proposal per ask, as with a
single worker) for ``--queries`` queries from each of ``--seeds`` seeds,
through the same ask/tell loop the controller uses. A query's score is the
table's final validation accuracy; regret after q queries is the best
validation accuracy in the table minus the best one found so far. Random
search, measured in the same run, is the baseline of the first ratio
column; the exact expected regret of random search, computed from the
table, is the baseline of the second (it has no sampling noise, which
matters here: random search finds a best cell in most runs of 100 queries).

    python -m bench.tabular.compare                       # 20 seeds x 100 queries
    python -m bench.tabular.compare --seeds 3 --strategies random evolution
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

from searches.nas.cell import CellSpace
from searches.nas.registry import STRATEGIES, get_strategy
from searches.nas.strategy import Trial, strategy_rng

HERE = Path(__file__).resolve().parent
TABLE = HERE / "digits_cell729.json"
RESULTS = HERE.parent / "results" / "tabular_digits_cell729.json"
CHECKPOINTS = (25, 50, 100)


def load_table(path: Path = TABLE) -> tuple[CellSpace, dict]:
    table = json.loads(path.read_text())
    return CellSpace(**table["space_settings"]), table


def run_search(strategy, space, rows: dict, seed: int, queries: int, batch: int = 1) -> list[float]:
    """Validation accuracy of each query, in order. Every trial finishes before the next ask."""
    history: list[Trial] = []
    while len(history) < queries:
        n = min(batch, queries - len(history))
        archs = strategy.ask(space, history, n, strategy_rng(seed, len(history)))
        if not archs:
            break  # the space is exhausted
        for arch in archs:
            row = rows[space.arch_hash(arch)]
            history.append(Trial(arch, "finished", score=row["val_acc"],
                                 metrics={"val_acc": row["val_acc"], "params": row["params"]}))
    return [t.score for t in history]


def regret_curve(scores: list[float], best: float, length: int) -> list[float]:
    """Regret after 1..length queries (a search that stopped early keeps its last value)."""
    curve, best_found = [], float("-inf")
    for i in range(length):
        if i < len(scores):
            best_found = max(best_found, scores[i])
        curve.append(best - best_found)
    return curve


def expected_random_regret(values: list[float], queries: int) -> float:
    """Exact expected regret of random search without repeats after ``queries`` queries.

    With the values sorted best first, the best found is the i-th (1-based)
    when it was drawn and the i - 1 better ones were not, which happens with
    probability C(N - i, q - 1) / C(N, q). Free of the sampling noise of a
    few seeds, so a fair second baseline.
    """
    values = sorted(values, reverse=True)
    n, q = len(values), min(queries, len(values))
    return sum((values[0] - v) * math.comb(n - i, q - 1) / math.comb(n, q)
               for i, v in enumerate(values, start=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1, help="proposals per ask")
    parser.add_argument("--strategies", nargs="*", default=sorted(STRATEGIES))
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    space, table = load_table(args.table)
    rows = table["archs"]
    best = max(r["val_acc"] for r in rows.values())
    names = ["random"] + [n for n in args.strategies if n != "random"]
    checkpoints = [c for c in CHECKPOINTS if c <= args.queries] or [args.queries]

    results = {}
    for name in names:
        started = time.perf_counter()
        curves = [regret_curve(run_search(get_strategy(name), space, rows, seed, args.queries, args.batch),
                               best, args.queries)
                  for seed in range(args.seeds)]
        results[name] = {
            "settings": get_strategy(name).settings(),
            "seconds": round(time.perf_counter() - started, 1),
            "regret": {str(q): [c[q - 1] for c in curves] for q in checkpoints},
        }
        print(f"  {name}: {results[name]['seconds']} s", flush=True)

    last = str(checkpoints[-1])
    random_regret = statistics.fmean(results["random"]["regret"][last])
    values = [r["val_acc"] for r in rows.values()]
    expected = {q: expected_random_regret(values, q) for q in checkpoints}
    header = "".join(f"{'regret@' + str(q):>18}" for q in checkpoints)
    print(f"\n{len(rows)} cells, best val acc {best:.4f}; {args.seeds} seeds x {args.queries} queries, "
          f"batch {args.batch}; regret = mean ± std over seeds (val acc points)")
    print(f"{'strategy':<14}{header}{'/random@' + last:>14}{'/E[random]@' + last:>17}{'seconds':>9}")
    print(f"{'E[random]':<14}" + "".join(f"{expected[q]:>9.4f}{'':9}" for q in checkpoints)
          + f"{'':>14}{1:>17.2f}")
    for name in names:
        cells = ""
        for q in checkpoints:
            regrets = results[name]["regret"][str(q)]
            cells += f"{statistics.fmean(regrets):>9.4f} ± {statistics.pstdev(regrets):.4f}"
        mean = statistics.fmean(results[name]["regret"][last])
        ratio = mean / random_regret if random_regret > 0 else math.nan
        ratio_expected = mean / expected[checkpoints[-1]]
        results[name]["ratio_to_random"] = round(ratio, 3)
        results[name]["ratio_to_expected_random"] = round(ratio_expected, 3)
        print(f"{name:<14}{cells}{ratio:>14.2f}{ratio_expected:>17.2f}{results[name]['seconds']:>9.1f}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "table": str(args.table.name), "cells": len(rows), "best_val_acc": best,
        "expected_random_regret": {str(q): expected[q] for q in checkpoints}, "seeds": args.seeds, "queries": args.queries, "batch": args.batch, "strategies": results,
    }, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
