"""Every search strategy against a digits cell table: lookups only, no training.

Each strategy searches from each of ``--seeds`` seeds for ``--queries``
finished queries, through its own ``ask`` and the controller's rng
(``strategy_rng``), in two modes:

* one at a time: ask for one, it finishes, ask again (one worker);
* four at a time: four workers; at the start four are asked for, then each
  time the oldest running one finishes one more is asked for, with the other
  three still running in the history (as the controller runs them).

A query's score is the table's final validation accuracy; regret after q
queries is the table's best validation accuracy minus the best found in the
first q finished queries. Random search, measured in the same run, is the
baseline of the ratios. A warm-start row per learning strategy: regret at
25/50 queries (one at a time) of a search warm-started with the 100 results
of a random search over a related table (the three-op 729-cell table,
trained with another recipe), against the same strategy cold.

A table that is not complete (``build_table --partial``) is searched as the
space of the cells it holds: a cell it lacks counts as invalid, so every
strategy sees the same uniform sample of the full space.

    python -m bench.tabular.compare                           # 100 seeds, the 5-op table, README table
    python -m bench.tabular.compare --seeds 5 --strategies random local --no-readme
"""
from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from pathlib import Path

from bench.tabular.build_table import TABLES, read_table
from searches.nas.cell import CellSpace
from searches.nas.registry import STRATEGIES, get_strategy
from searches.nas.space import InvalidArchitecture
from searches.nas.strategy import Trial, strategy_rng

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = HERE.parent / "results" / "tabular_digits_cell15625.json"
CHECKPOINTS = (10, 25, 50, 100, 200)
WARM_CHECKPOINTS = (25, 50)
NOT_LEARNING = {"random", "grid"}


class TableSpace(CellSpace):
    """The cell space restricted to the cells a table holds (all of them when it is complete)."""

    def __init__(self, rows: dict, **settings):
        super().__init__(**settings)
        self.rows = rows

    def check(self, arch):
        super().check(arch)
        if self.arch_hash(arch) not in self.rows:
            raise InvalidArchitecture("not in the table")


def load_table(path: Path) -> tuple[TableSpace, dict]:
    table = read_table(path)
    return TableSpace(table["archs"], **table["space_settings"]), table


def record(space, rows: dict, arch: dict) -> Trial:
    h = space.arch_hash(arch)
    row = rows[h]
    return Trial(arch, "finished", score=row["val_acc"],
                 metrics={"val_acc": row["val_acc"], "params": row["params"]}, arch_hash=h)


def run_search(strategy, space, rows: dict, seed: int, queries: int, workers: int = 1,
               ask_times: list | None = None) -> list[float]:
    """Validation accuracies in the order the queries finish.

    ``workers`` trials run at once: the oldest running one finishes before
    each new ask, so every ask after the first sees ``workers - 1`` running.
    """
    history: list[Trial] = []
    finished: list[float] = []
    running: list[int] = []  # positions in history, oldest first
    while len(finished) < queries:
        free = min(workers - len(running), queries - len(finished) - len(running))
        if free > 0:
            started = time.perf_counter()
            archs = strategy.ask(space, history, free, strategy_rng(seed, len(history)))
            if ask_times is not None:
                ask_times.append(time.perf_counter() - started)
            for arch in archs:
                running.append(len(history))
                history.append(Trial(arch, "running", arch_hash=space.arch_hash(arch)))
            if not archs and not running:
                break  # the space is exhausted
        if running:
            position = running.pop(0)
            done = record(space, rows, history[position].arch)
            history[position] = done
            finished.append(done.score)
    return finished


def regret_curve(scores: list[float], best: float, length: int) -> list[float]:
    """Regret after 1..length queries (a search that stopped early keeps its last value)."""
    curve, best_found = [], float("-inf")
    for i in range(length):
        if i < len(scores):
            best_found = max(best_found, scores[i])
        curve.append(best - best_found)
    return curve


def summary(values: list[float]) -> dict:
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return {"mean": round(mean, 5), "se": round(se, 5)}


def measure(name: str, settings: dict, space, rows, best, seeds, queries, workers, checkpoints) -> dict:
    started, ask_times = time.perf_counter(), []
    curves = [regret_curve(run_search(get_strategy(name, settings), space, rows, seed, queries, workers,
                                      ask_times), best, queries)
              for seed in range(seeds)]
    return {"seconds": round(time.perf_counter() - started, 1),
            "ask_ms_mean": round(1000 * statistics.fmean(ask_times), 3),
            "ask_ms_max": round(1000 * max(ask_times), 3),
            "regret": {str(q): summary([c[q - 1] for c in curves]) for q in checkpoints}}


def warm_start_trials(seed: int, count: int = 100) -> list[Trial]:
    """The results of a random search of ``count`` queries over the related (729-cell) table."""
    space, table = load_table(TABLES["cell729"]["path"])
    rows = table["archs"]
    history: list[Trial] = []
    for arch in get_strategy("random").ask(space, [], count, random.Random(f"warm:{seed}")):
        history.append(record(space, rows, arch))
    return [Trial(t.arch, t.state, t.score, t.metrics) for t in history]


def warm_rows(names, space, rows, best, seeds) -> dict:
    out = {}
    for name in names:
        curves = []
        for seed in range(seeds):
            strategy = get_strategy(name, {"warm_start": warm_start_trials(seed)})
            curves.append(regret_curve(run_search(strategy, space, rows, seed, max(WARM_CHECKPOINTS)),
                                       best, max(WARM_CHECKPOINTS)))
        out[name] = {str(q): summary([c[q - 1] for c in curves]) for q in WARM_CHECKPOINTS}
        print(f"  warm {name}: {out[name]}", flush=True)
    return out


def add_ratios(results: dict, checkpoints) -> None:
    for mode in results.values():
        base = mode["random"]["regret"]
        for entry in mode.values():
            entry["ratio_to_random"] = {
                q: (round(entry["regret"][q]["mean"] / base[q]["mean"], 3) if base[q]["mean"] > 0 else None)
                for q in map(str, checkpoints)}


LABELS = {name: cls.label or name for name, cls in STRATEGIES.items()}
HEADING = "### Strategy comparison on a tabular benchmark"


def cell(entry: dict, q: str) -> str:
    r = entry["regret"].get(q)
    return f"{r['mean']:.4f} ± {r['se']:.4f}" if r else ""


def readme_section(data: dict) -> str:
    """The README's strategy section, generated from the compare output."""
    one, four = data["modes"]["one"], data["modes"]["four"]
    qs = [str(q) for q in data["checkpoints"]]
    last = "100" if "100" in qs else qs[-1]
    table = data["table"]
    lines = [HEADING, "",
             f"`python -m bench.tabular.build_table --table cell15625` trains the cells of the full "
             f"five-op NAS-Bench-201 cell space on `digits` ({table['combinations']:,} encodings, "
             f"{table['distinct_cells']:,} distinct cells) with a fixed seed "
             f"(`bench/tabular/digits_cell15625.json.gz`; {table['cells']:,} cells trained, "
             f"{table['build_cpu_seconds'] / 3600:.1f} h of per-cell training time summed, on one "
             f"thread of a shared machine). "
             + ("" if table["complete"] else
                "**The table is a partial build** (a uniform sample of the space); the searches run "
                "over the cells it holds. ")
             + f"`python -m bench.tabular.compare` runs each strategy against it with lookups only, "
             f"{data['seeds']} seeds × {data['queries']} queries, and rewrites this section. Regret = best "
             f"validation accuracy in the table − best found (mean ± standard error over seeds); "
             f"÷ random = mean regret over random search's in the same run. Four at a time: the "
             f"controller's way with four workers, three still running at each ask. Ask time: mean "
             f"and largest single ask over the one-at-a-time runs (histories up to {data['queries']}), "
             f"wall clock, on the table's space (a partial table makes most samples and mutations "
             f"miss and retry) and on whatever machine ran it; `python -m bench.strategy_ask` "
             f"measures asks in CPU time at histories of 100 to 10,000. Defaults and their tuning, TPE "
             f"before and after, and early stopping on the table's curves: `docs/strategies.md`.",
             "",
             "| strategy | " + " | ".join(f"regret @{q}" for q in qs) + f" | ÷ random @{last} | "
             f"4 at a time @{last} | ÷ random @{last} | ask ms mean / max |",
             "|---" * (len(qs) + 5) + "|"]
    order = sorted(one, key=lambda n: (n != "random", one[n]["regret"][last]["mean"]))
    for name in order:
        ratio1, ratio4 = one[name]["ratio_to_random"][last], four[name]["ratio_to_random"][last]
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cell(one[name], q) for q in qs)
                     + f" | {_ratio(ratio1)} | {cell(four[name], last)} | {_ratio(ratio4)} | "
                     f"{one[name]['ask_ms_mean']:.2f} / {one[name]['ask_ms_max']:.1f} |")
    if data.get("warm"):
        lines += ["", "Warm start (one at a time): the search is given the 100 results of a random "
                  "search over the three-op 729-cell table (another recipe), mapped into this space.", "",
                  "| strategy | cold @25 | warm @25 | cold @50 | warm @50 |", "|---|---|---|---|---|"]
        for name, warm in data["warm"].items():
            lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(
                f"{cell(one[name], q)} | {warm[q]['mean']:.4f} ± {warm[q]['se']:.4f}" for q in ("25", "50")) + " |")
    return "\n".join(lines) + "\n"


def _ratio(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def write_readme(section: str, path: Path = ROOT / "README.md") -> None:
    text = path.read_text()
    start = text.index(HEADING)
    end = text.index("\n## ", start) + 1
    path.write_text(text[:start] + section + "\n" + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--strategies", nargs="*", default=sorted(STRATEGIES))
    parser.add_argument("--table", type=Path, default=TABLES["cell15625"]["path"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-warm", action="store_true", help="skip the warm-start rows")
    parser.add_argument("--warm-strategies", nargs="*", default=None,
                        help="strategies of the warm-start rows (default: the learning ones run)")
    parser.add_argument("--modes", nargs="*", default=["one", "four"], choices=["one", "four"])
    parser.add_argument("--merge", nargs="*", type=Path, default=None, metavar="JSON",
                        help="run nothing: merge the modes and warm rows of earlier outputs into --out "
                             "and rewrite the README section (for runs split across processes)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=JSON",
                        help='settings for one strategy instead of its defaults, e.g. evolution=\'{"sample": 10}\'')
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README section")
    args = parser.parse_args()

    if args.merge:
        parts = [json.loads(path.read_text()) for path in args.merge]
        data = {**parts[0], "modes": {}, "warm": {}}
        for part in parts:  # later parts win, strategy by strategy (a rerun replaces a row)
            for mode, rows_of_mode in part["modes"].items():
                data["modes"].setdefault(mode, {}).update(rows_of_mode)
            data["warm"].update(part.get("warm") or {})
        return finish(data, args)
    space, table = load_table(args.table)
    rows = table["archs"]
    best = max(r["val_acc"] for r in rows.values())
    names = ["random"] + [n for n in args.strategies if n != "random"]
    checkpoints = [c for c in CHECKPOINTS if c <= args.queries] or [args.queries]
    overrides = {item.split("=", 1)[0]: json.loads(item.split("=", 1)[1]) for item in args.set}
    results = {}
    for mode, workers in (("one", 1), ("four", 4)):
        if mode not in args.modes:
            continue
        results[mode] = {}
        for name in names:
            settings = overrides.get(name, {})
            results[mode][name] = measure(name, settings, space, rows, best, args.seeds, args.queries, workers,
                                          checkpoints)
            results[mode][name]["settings"] = get_strategy(name, settings).settings()
            print(f"  {mode} {name}: {results[mode][name]['seconds']} s, "
                  f"@{checkpoints[-1]} {results[mode][name]['regret'][str(checkpoints[-1])]}", flush=True)
    add_ratios(results, checkpoints)
    warm_names = args.warm_strategies or [n for n in names if n not in NOT_LEARNING]
    warm = {} if args.no_warm else warm_rows(warm_names, space, rows, best, args.seeds)
    data = {"table": {"file": args.table.name, "cells": len(rows), "complete": table.get("complete", True),
                      "combinations": table["combinations"],
                      "distinct_cells": table.get("distinct_cells", len(rows)),
                      "build_cpu_seconds": table.get("build_cpu_seconds", 0), "best_val_acc": best},
            "seeds": args.seeds, "queries": args.queries, "checkpoints": checkpoints,
            "modes": results, "warm": warm}
    finish(data, args)


def finish(data: dict, args) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1))
    if set(data["modes"]) == {"one", "four"}:
        section = readme_section(data)
        print("\n" + section)
        if not args.no_readme:
            write_readme(section)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
