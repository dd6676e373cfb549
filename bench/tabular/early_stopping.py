"""Early-stopping rules replayed on a table's learning curves: epochs saved against regret lost.

A random search over the table (the same seeds as the compare command)
trains its candidates one after another; after every epoch the rule decides
from the candidate's validation curve so far and the curves of the earlier
candidates (as far as they got), exactly as the worker asks it. A stopped
candidate is pruned: its epochs after the stop are saved, and it no longer
counts as a result. Reported per rule: the share of training epochs saved
and the regret after ``--candidates`` candidates (best validation accuracy in
the table minus the best among the candidates trained to the end), next to
no early stopping.

    python -m bench.tabular.early_stopping --table bench/tabular/digits_cell729.json
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from bench.tabular.compare import TABLES, load_table
from searches.nas.early_stopping import get_early_stopping
from searches.nas.registry import get_strategy
from searches.nas.strategy import strategy_rng

RESULTS = Path(__file__).resolve().parent.parent / "results" / "tabular_early_stopping.json"
RULES = [("none", {}), ("median", {}), ("median", {"grace_epochs": 1}), ("asha", {}),
         ("asha", {"min_epochs": 2})]


def replay(rule, curves: list[list[float]]) -> tuple[int, list[bool]]:
    """Epochs trained and, per candidate, whether it ran to the end."""
    trained, completed, peers = 0, [], []
    for curve in curves:
        ran = len(curve)
        for k in range(1, len(curve) + 1):
            if k < len(curve) and rule.decide(curve[:k], peers).stop:
                ran = k
                break
        trained += ran
        completed.append(ran == len(curve))
        peers.append(curve[:ran])
    return trained, completed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, default=TABLES["cell15625"]["path"])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    space, table = load_table(args.table)
    rows = table["archs"]
    best = max(r["val_acc"] for r in rows.values())
    searches = []
    for seed in range(args.seeds):
        archs = get_strategy("random").ask(space, [], args.candidates, strategy_rng(seed, 0))
        searches.append([rows[space.arch_hash(a)] for a in archs])
    out = {}
    for name, settings in RULES:
        rule = get_early_stopping(name, settings)
        saved, regrets = [], []
        for found in searches:
            trained, completed = replay(rule, [r["val_curve"] for r in found])
            saved.append(1 - trained / sum(len(r["val_curve"]) for r in found))
            regrets.append(best - max((r["val_acc"] for r, c in zip(found, completed) if c), default=0.0))
        key = name + "".join(f" {k}={v}" for k, v in settings.items())
        out[key] = {"epochs_saved": round(statistics.fmean(saved), 3),
                    "regret": round(statistics.fmean(regrets), 5),
                    "regret_se": round(statistics.stdev(regrets) / len(regrets) ** 0.5, 5)}
        print(f"{key:<24} epochs saved {out[key]['epochs_saved']:6.1%}   regret "
              f"{out[key]['regret']:.4f} ± {out[key]['regret_se']:.4f}", flush=True)
    args.out.write_text(json.dumps({"table": args.table.name, "seeds": args.seeds,
                                    "candidates": args.candidates, "rules": out}, indent=1))


if __name__ == "__main__":
    main()
